// @ts-check
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { LineChart } from '../charts.js';
import { ActionBar, ErrorNotice, HealthBadge, isTerminal, Loading, PageHeading, StatusBadge } from '../components.js';
import { formatBytes, formatDuration, formatRelative, shortId } from '../format.js';
import { withoutCliHints } from '../errorText.js';
import { html } from '../html.js';
import { useNow, usePageTitle, useResource } from '../hooks.js';
import { LiveIndicator, useLiveFeed } from '../liveFeed.js';
import { ContinuityPanel } from './continuity.js';
import { RestoreDialog } from './restoreDialog.js';
import { RestoreHistory } from './restoreHistory.js';
import { DeletedNotice, TargetLifecycle } from './targetLifecycle.js';
import { TargetSettings } from './targetSettings.js';

/** @typedef {import('../types').Target} Target */
/** @typedef {import('../types').OverviewItem} OverviewItem */
/** @typedef {import('../types').HistoryPoint} HistoryPoint */
/** @typedef {import('../types').Run} Run */
/** @typedef {import('../types').UnknownBackup} UnknownBackup */
/** @typedef {import('../types').DeletedTarget} DeletedTarget */

/**
 * Complete backups in the store that no catalog row vouches for: kept until a person decides.
 * @param {{ unknown: { data?: { items: UnknownBackup[] } } }} props
 */
function UnknownBackups({ unknown }) {
  const items = unknown.data?.items ?? [];
  if (items.length === 0) return null;
  return html`<div class="notice notice-info" role="status" id="unknown-backups">
    <strong>${items.length} complete backup(s) in this target's store are unknown to the catalog.</strong>
    They are kept until an administrator imports them into the catalog or deletes them.
    <ul class="plain">${items.map((item) => html`<li key=${item.prefix}><span class="mono wrap-anywhere">${item.prefix}</span> <span class="muted">${item.detail}</span></li>`)}</ul>
  </div>`;
}

/**
 * What should have happened and did not (GET /api/v1/targets/{name} `alarms`): each with when
 * it began and what to do, until it clears.
 * @param {{ alarms: import('../types').AlarmRecord[] | undefined, now: number }} props
 */
function ActiveAlarms({ alarms, now }) {
  if (!alarms || alarms.length === 0) return null;
  return html`<div class="notice notice-error" role="alert" id="active-alarms">
    <strong>${alarms.length === 1 ? 'An alarm is active' : `${alarms.length} alarms are active`}</strong>
    <ul class="plain">${alarms.map(
      (alarm) => html`<li key=${alarm.id} data-alarm=${alarm.kind}>
        <span class="mono">${alarm.kind}</span>, since ${formatRelative(alarm.since, now)}: ${alarm.what}
        <br /><span class="muted">What to do: ${alarm.whatToDo}</span>
      </li>`,
    )}</ul>
  </div>`;
}

/**
 * A target: its health, actions, charts of size and duration, recent runs, restores, settings
 * and its life (test, pause, edit, rename, delete).
 * @param {{ me: import('../types').Me, name: string }} props
 */
export function TargetPage({ name }) {
  usePageTitle(name);
  const now = useNow();
  const path = `/api/v1/targets/${encodeURIComponent(name)}`;
  const target = useResource(() => api(path), [name]);
  const summary = useResource(async () => /** @type {OverviewItem[]} */ ((await api('/api/v1/overview')).items).find((item) => item.name === name) ?? null, [name]);
  const history = useResource(() => api(`${path}/history?limit=100`), [name]);
  const runs = useResource(() => api(`/api/v1/runs?target=${encodeURIComponent(name)}&limit=10`), [name]);
  const unknown = useResource(() => api(`${path}/unknown-backups`), [name]);
  const [action, setAction] = useState(/** @type {{ busy: boolean, error: any }} */ ({ busy: false, error: null }));
  const [restoresKey, setRestoresKey] = useState(0);
  const [pointDialogOpen, setPointDialogOpen] = useState(false);
  const [started, setStarted] = useState(/** @type {string | null} */ (null));
  const [deleted, setDeleted] = useState(/** @type {DeletedTarget | null} */ (null));
  const pending = useRef(/** @type {ReturnType<typeof setTimeout> | undefined} */ (undefined));

  // Events that arrive together are answered by one reload; what any of them calls for is
  // remembered until then (the last one alone would drop a restore's outcome followed by
  // another event, and the history would show it running).
  const due = useRef({ restores: false, history: false });
  const connected = useLiveFeed((event) => {
    if (event.targetName !== name) return;
    if (event.kind.startsWith('restore')) due.current.restores = true;
    if (event.status && isTerminal(event.status)) due.current.history = true;
    clearTimeout(pending.current);
    pending.current = setTimeout(() => {
      const { restores, history: historyDue } = due.current;
      due.current = { restores: false, history: false };
      void summary.reload();
      void runs.reload();
      void target.reload();
      if (restores) setRestoresKey((key) => key + 1);
      if (historyDue) void history.reload();
    }, 200);
  });

  // A continuous target's window and recovery point move without any run event: read again now and then.
  const continuous = Boolean(target.data?.continuity);
  const reloadTarget = target.reload;
  useEffect(() => {
    if (!continuous) return;
    const timer = setInterval(() => void reloadTarget(), 15_000);
    return () => clearInterval(timer);
  }, [continuous, reloadTarget]);

  /** @param {() => Promise<void>} work */
  const act = async (work) => {
    setAction({ busy: true, error: null });
    try {
      await work();
      setAction({ busy: false, error: null });
    } catch (error) {
      setAction({ busy: false, error });
    }
  };

  if (deleted) return html`<${PageHeading}>${name}<//><${DeletedNotice} result=${deleted} />`;
  if (target.error) return html`<${PageHeading}>${name}<//><${ErrorNotice} error=${target.error} title="This target could not be loaded" />`;
  if (!target.data) return html`<${PageHeading}>${name}<//><${Loading} />`;

  /** @type {Target} */
  const data = target.data;
  /** @type {OverviewItem | null | undefined} */
  const s = summary.data;
  const newest = s?.newestBackup;
  const actions = data.actions;
  const heading = html`<${ActionBar} busy=${action.busy} actions=${[
    {
      id: 'action-backup',
      label: 'Back up now',
      verdict: actions?.backup,
      onClick: () =>
        act(async () => {
          const run = await api('/api/v1/runs', { method: 'POST', body: { target: name } });
          location.hash = `#/runs/${run.id}`;
        }),
    },
    {
      id: 'action-verify-newest',
      label: 'Verify newest backup',
      verdict: actions?.verifyNewest,
      onClick: () =>
        act(async () => {
          const drill = await api(`/api/v1/runs/${/** @type {NonNullable<typeof newest>} */ (newest).id}/verify`, { method: 'POST' });
          location.hash = `#/runs/${drill.id}`;
        }),
    },
    {
      id: 'action-restore-newest',
      label: 'Restore newest backup…',
      quiet: true,
      verdict: newest ? actions?.restoreNewest : { allowed: false, blockedBy: 'state', reason: 'No backup of this target has succeeded yet.' },
      href: newest ? `#/runs/${newest.id}` : undefined,
    },
  ]} />`;
  /** @type {HistoryPoint[]} */
  const historyItems = history.data?.items ?? [];
  const points = historyItems.map((point) => ({ at: Date.parse(point.finishedAt), status: point.status, bad: point.status !== 'succeeded' }));
  const sizes = historyItems.map((point, index) => ({ ...points[index], value: point.status === 'succeeded' ? point.bytes : null }));
  const durations = historyItems.map((point, index) => ({ ...points[index], value: point.status === 'cancelled' ? null : point.durationSeconds }));

  return html`
    <${PageHeading} actions=${heading}>${name}<//>
    <p class="target-health">${s ? html`<${HealthBadge} health=${s.health} /> ${s.healthReason}` : null}${data.paused ? html` <span class="status status-cancelled">schedule paused</span>` : null} <${LiveIndicator} connected=${connected} /></p>
    <${ErrorNotice} error=${action.error} title="That did not work" />
    <${ActiveAlarms} alarms=${data.alarms} now=${now} />
    <${UnknownBackups} unknown=${unknown} />
    ${started ? html`<p class="notice notice-info" role="status" id="restore-started">${started} The outcome appears under Restores.</p>` : null}
    ${
      s
        ? html`<dl class="facts facts-row card">
          <div><dt>Last run</dt><dd>${s.lastRun ? html`<a href=${`#/runs/${s.lastRun.id}`}><${StatusBadge} status=${s.lastRun.status} /></a> ${formatRelative(s.lastRun.finishedAt ?? s.lastRun.createdAt, now)}` : 'none yet'}</dd></div>
          <div><dt>Newest good backup</dt><dd>${newest ? html`${formatRelative(newest.finishedAt, now)} (${formatBytes(newest.bytes)})` : 'none'}</dd></div>
          <div><dt>Last verification</dt><dd>${s.lastVerification ? html`<${StatusBadge} status=${s.lastVerification.status} /> ${formatRelative(s.lastVerification.finishedAt, now)}` : 'never'}</dd></div>
          <div><dt>Next scheduled run</dt><dd>${data.paused ? 'paused' : s.nextScheduledAt ? formatRelative(s.nextScheduledAt, now) : 'on demand only'}</dd></div>
        </dl>`
        : null
    }
    <section class="card charts" aria-labelledby="charts-title">
      <h2 id="charts-title">Backups over time</h2>
      <${ErrorNotice} error=${history.error} title="The history could not be loaded" />
      <div class="chart-grid">
        <${LineChart} id="chart-size" title="Backup size (stored)" points=${sizes} format=${formatBytes} />
        <${LineChart} id="chart-duration" title="Backup duration" points=${durations} format=${formatDuration} />
      </div>
    </section>
    <section class="card" aria-labelledby="recent-title">
      <h2 id="recent-title">Recent runs</h2>
      ${runs.data?.items.length === 0 ? html`<p class="muted">No runs yet.</p>` : null}
      <ul class="plain recent-runs">${
        /** @type {Run[]} */ (runs.data?.items ?? []).map(
          (run) => html`<li key=${run.id}>
        <${StatusBadge} status=${run.status} /> <a href=${`#/runs/${run.id}`} class="mono">${shortId(run.id)}</a>
        ${run.kind === 'verify' ? ' restore drill' : ' backup'} · ${formatRelative(run.createdAt, now)}
      </li>`,
        )
      }</ul>
      <p><a href=${`#/runs?target=${encodeURIComponent(name)}`}>All runs of ${name}</a></p>
    </section>
    ${
      data.continuity
        ? html`<${ContinuityPanel} target=${data} continuity=${data.continuity}
          actions=${html`<${ActionBar} actions=${[
            { id: 'action-restore-point', label: 'Restore to a point in time…', verdict: actions?.restorePointInTime, onClick: () => setPointDialogOpen(true) },
          ]} />`} />
        <${RestoreDialog} pointInTime=${{ target: name, window: data.continuity.window }} open=${pointDialogOpen}
          onClose=${() => setPointDialogOpen(false)}
          onStarted=${(/** @type {string} */ message) => {
            setPointDialogOpen(false);
            setStarted(withoutCliHints(message));
            setRestoresKey((key) => key + 1);
          }} />`
        : null
    }
    <${RestoreHistory} name=${name} reloadKey=${restoresKey} now=${now} />
    <${TargetSettings} target=${data} />
    <${TargetLifecycle} target=${data}
      onChanged=${() => target.reload()}
      onRenamed=${(/** @type {string} */ renamed) => {
        location.hash = `#/targets/${encodeURIComponent(renamed)}`;
      }}
      onDeleted=${setDeleted} />`;
}
