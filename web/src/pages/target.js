import { useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { LineChart } from '../charts.js';
import { ErrorNotice, HealthBadge, isTerminal, Loading, PageHeading, StatusBadge } from '../components.js';
import { formatBytes, formatDuration, formatRelative, shortId } from '../format.js';
import { html } from '../html.js';
import { useNow, usePageTitle, useResource } from '../hooks.js';
import { LiveIndicator, useLiveFeed } from '../liveFeed.js';
import { can } from '../session.js';

function describeRetention(retention) {
  if (!retention) return 'keep every backup';
  const parts = [];
  if (retention.keepLast) parts.push(`last ${retention.keepLast}`);
  if (retention.daily) parts.push(`${retention.daily} daily`);
  if (retention.weekly) parts.push(`${retention.weekly} weekly`);
  if (retention.monthly) parts.push(`${retention.monthly} monthly`);
  return parts.length ? `keep ${parts.join(', ')}` : 'keep every backup';
}

function Settings({ target }) {
  return html`<section class="card" aria-labelledby="settings-title">
    <h2 id="settings-title">Settings</h2>
    <dl class="facts facts-wide">
      <div><dt>Store</dt><dd class="break mono">${target.storeUrl}</dd></div>
      <div><dt>Schedule</dt><dd>${target.schedule ? html`<code>${target.schedule.cron}</code> (${target.schedule.timezone})` : 'on demand only'}</dd></div>
      <div><dt>Retention</dt><dd>${describeRetention(target.retention)}</dd></div>
      <div><dt>Profile</dt><dd>${target.options?.profile ?? 'default'}</dd></div>
      <div><dt>Encryption</dt><dd>${
        target.options?.encryptTo?.length ? html`age, to <ul class="plain">${target.options.encryptTo.map((recipient) => html`<li class="mono break">${recipient}</li>`)}</ul>` : 'none'
      }</dd></div>
      <div><dt>Restore drills</dt><dd>${target.verification?.everyNth ? `every ${target.verification.everyNth} backups` : target.verification?.cron ? html`<code>${target.verification.cron}</code>` : 'on demand only'}</dd></div>
      <div><dt>Notifications</dt><dd>${
        target.notifications.length
          ? html`<ul class="plain">${target.notifications.map((channel) => html`<li>${channel.kind} on ${channel.on.join(', ')}${channel.signed ? ' (signed)' : ''}</li>`)}</ul>`
          : 'none'
      }</dd></div>
      <div><dt>Executed by</dt><dd>${target.executor ? `GitHub Actions (${target.executor.owner}/${target.executor.repo})` : 'Backstop workers'}</dd></div>
      <div><dt>Database</dt><dd class="muted">stored, never shown</dd></div>
    </dl>
  </section>`;
}

/** Complete backups in the store that no catalog row vouches for: kept until a person decides. */
function UnknownBackups({ name, unknown }) {
  const items = unknown.data?.items ?? [];
  if (items.length === 0) return null;
  return html`<div class="notice notice-info" role="status" id="unknown-backups">
    <strong>${items.length} complete backup(s) in this target's store are unknown to the catalog.</strong>
    They are kept: import them with <code>backstop import</code>, or delete them with <code>backstop prune --target ${name} --delete-unknown</code>.
    <ul class="plain">${items.map((item) => html`<li key=${item.prefix}><span class="mono break">${item.prefix}</span> <span class="muted">${item.detail}</span></li>`)}</ul>
  </div>`;
}

/** A target: its health, actions, charts of size and duration, recent runs and settings. */
export function TargetPage({ me, name }) {
  usePageTitle(name);
  const now = useNow();
  const path = `/api/v1/targets/${encodeURIComponent(name)}`;
  const target = useResource(() => api(path), [name]);
  const summary = useResource(async () => (await api('/api/v1/overview')).items.find((item) => item.name === name) ?? null, [name]);
  const history = useResource(() => api(`${path}/history?limit=100`), [name]);
  const runs = useResource(() => api(`/api/v1/runs?target=${encodeURIComponent(name)}&limit=10`), [name]);
  const unknown = useResource(() => api(`${path}/unknown-backups`), [name]);
  const [action, setAction] = useState({ busy: false, error: null });
  const pending = useRef(null);

  const connected = useLiveFeed((event) => {
    if (event.targetName !== name) return;
    clearTimeout(pending.current);
    pending.current = setTimeout(() => {
      void summary.reload();
      void runs.reload();
      if (event.status && isTerminal(event.status)) void history.reload();
    }, 200);
  });

  const act = async (work) => {
    setAction({ busy: true, error: null });
    try {
      await work();
      setAction({ busy: false, error: null });
    } catch (error) {
      setAction({ busy: false, error });
    }
  };

  if (target.error) return html`<${PageHeading}>${name}<//><${ErrorNotice} error=${target.error} title="This target could not be loaded" />`;
  if (!target.data) return html`<${PageHeading}>${name}<//><${Loading} />`;

  const s = summary.data;
  const newest = s?.newestBackup;
  const actions = html`
    ${
      can(me, 'operator')
        ? html`<button type="button" disabled=${action.busy}
          onClick=${() =>
            act(async () => {
              const run = await api('/api/v1/runs', { method: 'POST', body: { target: name } });
              location.hash = `#/runs/${run.id}`;
            })}>Back up now</button>
        ${
          newest
            ? html`<button type="button" disabled=${action.busy}
              onClick=${() =>
                act(async () => {
                  const drill = await api(`/api/v1/runs/${newest.id}/verify`, { method: 'POST' });
                  location.hash = `#/runs/${drill.id}`;
                })}>Verify newest backup</button>
            <a class="button button-quiet" href=${`#/runs/${newest.id}`}>Restore newest backup…</a>`
            : null
        }`
        : null
    }
    ${can(me, 'admin') ? html`<a class="button button-quiet" href=${`#/targets/${encodeURIComponent(name)}/edit`}>Edit</a>` : null}`;
  const points = (history.data?.items ?? []).map((point) => ({ at: Date.parse(point.finishedAt), status: point.status, bad: point.status !== 'succeeded' }));
  const sizes = (history.data?.items ?? []).map((point, index) => ({ ...points[index], value: point.status === 'succeeded' ? point.bytes : null }));
  const durations = (history.data?.items ?? []).map((point, index) => ({ ...points[index], value: point.status === 'cancelled' ? null : point.durationSeconds }));

  return html`
    <${PageHeading} actions=${actions}>${name}<//>
    <p class="target-health">${s ? html`<${HealthBadge} health=${s.health} /> ${s.healthReason}` : null} <${LiveIndicator} connected=${connected} /></p>
    <${ErrorNotice} error=${action.error} title="That did not work" />
    <${UnknownBackups} name=${name} unknown=${unknown} />
    ${
      s
        ? html`<dl class="facts facts-row card">
          <div><dt>Last run</dt><dd>${s.lastRun ? html`<a href=${`#/runs/${s.lastRun.id}`}><${StatusBadge} status=${s.lastRun.status} /></a> ${formatRelative(s.lastRun.finishedAt ?? s.lastRun.createdAt, now)}` : 'none yet'}</dd></div>
          <div><dt>Newest good backup</dt><dd>${newest ? html`${formatRelative(newest.finishedAt, now)} (${formatBytes(newest.bytes)})` : 'none'}</dd></div>
          <div><dt>Last verification</dt><dd>${s.lastVerification ? html`<${StatusBadge} status=${s.lastVerification.status} /> ${formatRelative(s.lastVerification.finishedAt, now)}` : 'never'}</dd></div>
          <div><dt>Next scheduled run</dt><dd>${s.nextScheduledAt ? formatRelative(s.nextScheduledAt, now) : 'on demand only'}</dd></div>
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
      <ul class="plain recent-runs">${(runs.data?.items ?? []).map(
        (run) => html`<li key=${run.id}>
        <${StatusBadge} status=${run.status} /> <a href=${`#/runs/${run.id}`} class="mono">${shortId(run.id)}</a>
        ${run.kind === 'verify' ? ' restore drill' : ' backup'} · ${formatRelative(run.createdAt, now)}
      </li>`,
      )}</ul>
      <p><a href=${`#/runs?target=${encodeURIComponent(name)}`}>All runs of ${name}</a></p>
    </section>
    <${Settings} target=${target.data} />`;
}
