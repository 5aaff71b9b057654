// @ts-check
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { ActionBar, ErrorNotice, EventBadge, isTerminal, Loading, PageHeading, RunError, StatusBadge } from '../components.js';
import { openEventStream } from '../eventStream.js';
import { formatDuration, formatRelative, formatTime, shortId } from '../format.js';
import { html } from '../html.js';
import { useNow, usePageTitle, useResource } from '../hooks.js';
import { isLiveProgress, ProgressBar } from '../progress.js';
import { RestoreDialog } from './restoreDialog.js';
import { ArtifactPanel } from './runFiles.js';

/** @typedef {import('../types').Run} Run */
/** @typedef {import('../types').RunEvent} RunEvent */
/** @typedef {import('../types').Progress} Progress */

/**
 * The work under way on this run, live: its backup or drill while the run is active, or a
 * restore of its backup (which the catalog shows while it runs, then the events tell how it
 * ended). Every figure (total, percent, rate, time left) is the server's.
 */
/** @param {{ run: Run, progress: Progress | null }} props */
function ProgressPanel({ run, progress }) {
  const live = isLiveProgress({ status: run.status, progress });
  if (!live && isTerminal(run.status)) return null;
  const waiting = run.status === 'queued' || run.status === 'dispatched' ? 'Waiting for a worker to pick this run up' : 'Starting';
  return html`<section class="card progress-card" aria-labelledby="progress-title">
    <h2 id="progress-title">${progress?.operation === 'restore' ? 'Restore in progress' : 'Progress'}</h2>
    ${
      live
        ? html`<${ProgressBar} progress=${progress} id="run-progress" />`
        : html`<progress id="run-progress" class="progress-bar" max="1" aria-describedby="progress-text"></progress><p id="progress-text" class="progress-text">${waiting}</p>`
    }
  </section>`;
}

/** @param {{ events: RunEvent[] }} props */
function Timeline({ events }) {
  return html`<section class="card" aria-labelledby="events-title">
    <h2 id="events-title">Events</h2>
    ${events.length === 0 ? html`<p class="muted">No events yet.</p>` : null}
    <ol class="timeline">${events.map(
      (event) => html`<li key=${event.id} data-kind=${event.kind} class=${/failed|reaped|error|mismatch/.test(event.kind) ? 'timeline-bad' : ''}>
      <time datetime=${event.at} title=${event.at}>${formatTime(event.at)}</time>
      <span class="event-kind">${event.kind.replaceAll('_', ' ')}</span>
      <${EventBadge} event=${event} />
      ${event.message ? html`<span class="event-message">${event.message}</span>` : null}
    </li>`,
    )}</ol>
  </section>`;
}

/**
 * How long a run took, from the catalog's own start and finish times (one clock): a run still
 * going has no duration yet, rather than one measured against this browser's clock.
 * @param {Run} run
 */
function durationOf(run) {
  if (!run.startedAt || !run.finishedAt) return null;
  const seconds = (Date.parse(run.finishedAt) - Date.parse(run.startedAt)) / 1000;
  return seconds >= 0 ? seconds : null;
}

/**
 * One run, live: status, progress, events, error, files; cancel, verify and restore as far as
 * the server says they can succeed.
 * @param {{ me: import('../types').Me, id: string }} props
 */
export function RunPage({ id }) {
  const now = useNow(5_000);
  const run = useResource(() => api(`/api/v1/runs/${id}`), [id]);
  const [events, setEvents] = useState(/** @type {RunEvent[]} */ ([]));
  const [progress, setProgress] = useState(/** @type {Progress | null} */ (null));
  const [action, setAction] = useState(/** @type {{ busy: boolean, error: any, notice: string | null }} */ ({ busy: false, error: null, notice: null }));
  const [restoring, setRestoring] = useState(/** @type {string | null} */ (null));
  const [dialogOpen, setDialogOpen] = useState(false);
  const refresh = useRef(/** @type {ReturnType<typeof setTimeout> | undefined} */ (undefined));
  /** @type {Run | undefined} */
  const data = run.data;
  usePageTitle(data ? `${data.kind === 'verify' ? 'Restore drill' : 'Backup'} of ${data.targetName}` : 'Run');

  /** @param {RunEvent[]} incoming */
  const mergeEvents = (incoming) =>
    setEvents((current) => {
      const seen = new Set(current.map((event) => event.id));
      const added = incoming.filter((event) => !seen.has(event.id));
      return added.length === 0 ? current : [...current, ...added].sort((a, b) => a.id - b.id);
    });

  // The run's events, live. Every event may change the run, so the run is read again (once
  // for a burst); the status on screen is always the catalog's, never a guess.
  useEffect(() => {
    const refreshSoon = () => {
      clearTimeout(refresh.current);
      refresh.current = setTimeout(() => run.reload(), 50);
    };
    const stream = openEventStream(`/api/v1/runs/${id}/events`, {
      onEvent: ({ event, data: payload }) => {
        if (event === 'progress') setProgress(payload.progress);
        else if (event === 'message') {
          mergeEvents([payload]);
          refreshSoon();
        }
      },
      onEnd: () => refreshSoon(),
    });
    return () => {
      stream.close();
      clearTimeout(refresh.current);
    };
  }, [id]);

  // The run as read (at load, after every event) carries its progress too: the newer of the two wins.
  useEffect(() => {
    if (!data) return;
    if (isLiveProgress(data)) setProgress((current) => (current && (current.updatedAt ?? '') > (data.progress.updatedAt ?? '') ? current : data.progress));
    else setProgress((current) => (current?.operation === 'restore' ? null : current));
  }, [data]);

  // A restore runs in the background and reports as events of this (finished) run, carrying
  // its restore id: only this restore's outcome ends the wait.
  useEffect(() => {
    if (!restoring) return;
    const timer = setInterval(async () => {
      // The restore's progress comes with the run; this run's stream may have ended long ago.
      const [result, fresh] = await Promise.all([api(`/api/v1/runs/${id}/events`).catch(() => null), api(`/api/v1/runs/${id}`).catch(() => null)]);
      if (fresh) run.setData(fresh);
      if (!result) return;
      mergeEvents(result.items);
      const outcome = /** @type {RunEvent[]} */ (result.items).find((event) => (event.kind === 'restored' || event.kind === 'restore_failed') && event.data?.restoreId === restoring);
      if (!outcome) return;
      setRestoring(null);
      if (outcome.kind === 'restored') setAction({ busy: false, error: null, notice: `Restore finished: ${outcome.message}.` });
      else setAction({ busy: false, error: { message: outcome.message ?? 'The restore failed.', code: outcome.data?.code }, notice: null });
    }, 1000);
    return () => clearInterval(timer);
  }, [restoring, id]);

  /** @param {() => Promise<void>} work */
  const act = async (work) => {
    setAction({ busy: true, error: null, notice: null });
    try {
      await work();
      setAction((current) => ({ ...current, busy: false }));
    } catch (error) {
      setAction({ busy: false, error, notice: null });
    }
  };

  if (run.error && !data) return html`<${PageHeading}>Run ${shortId(id)}<//><${ErrorNotice} error=${run.error} title="This run could not be loaded" />`;
  if (!data) return html`<${PageHeading}>Run ${shortId(id)}<//><${Loading} />`;

  const actions = data.actions;
  /** @type {import('../components.js').Action[]} */
  const buttons = [];
  if (!isTerminal(data.status)) {
    buttons.push({
      id: 'action-cancel',
      label: 'Cancel run',
      danger: true,
      verdict: actions?.cancel,
      onClick: () => act(async () => run.setData({ ...(await api(`/api/v1/runs/${id}/cancel`, { method: 'POST' })), actions })),
    });
  }
  if (data.kind === 'backup' && data.status === 'succeeded') {
    buttons.push(
      {
        id: 'action-verify',
        label: 'Verify (restore drill)',
        verdict: actions?.verify,
        onClick: () =>
          act(async () => {
            const drill = await api(`/api/v1/runs/${id}/verify`, { method: 'POST' });
            location.hash = `#/runs/${drill.id}`;
          }),
      },
      {
        id: 'action-restore',
        label: 'Restore…',
        verdict: restoring ? { allowed: false, blockedBy: 'state', reason: 'A restore of this backup is under way.' } : actions?.restore,
        onClick: () => setDialogOpen(true),
      },
    );
  }
  const duration = durationOf(data);

  return html`
    <${PageHeading} actions=${buttons.length > 0 ? html`<${ActionBar} actions=${buttons} busy=${action.busy} />` : null}>
      ${data.kind === 'verify' ? 'Restore drill' : 'Backup'} of <a href=${`#/targets/${encodeURIComponent(data.targetName)}`}>${data.targetName}</a>
    <//>
    <p class="run-id">Run <span class="mono wrap-anywhere">${data.id}</span></p>
    <p class="run-status-line">Status: <span id="run-status" aria-live="polite" aria-atomic="true"><${StatusBadge} status=${data.status} /></span></p>
    <${ErrorNotice} error=${action.error} title="That did not work" />
    ${action.notice ? html`<p class="notice notice-info" role="status">${action.notice}</p>` : null}
    ${restoring ? html`<p class="notice notice-info" role="status">Restoring in the background; the result appears in the events below.</p>` : null}
    <${RunError} error=${data.error} />
    <${ProgressPanel} run=${data} progress=${progress} />
    <section class="card" aria-labelledby="facts-title">
      <h2 id="facts-title">Details</h2>
      <dl class="facts facts-wide">
        <div><dt>Trigger</dt><dd>${data.trigger}</dd></div>
        <div><dt>Attempt</dt><dd>${data.attempt} of ${data.maxAttempts}</dd></div>
        <div><dt>Created</dt><dd><time datetime=${data.createdAt}>${formatTime(data.createdAt)}</time> <span class="muted">(${formatRelative(data.createdAt, now)})</span></dd></div>
        <div><dt>Started</dt><dd>${formatTime(data.startedAt)}</dd></div>
        <div><dt>Finished</dt><dd>${formatTime(data.finishedAt)}</dd></div>
        <div><dt>Duration</dt><dd id="run-duration">${duration !== null ? formatDuration(duration) : data.startedAt && !data.finishedAt ? 'still running' : '—'}</dd></div>
        ${data.claimedBy ? html`<div><dt>Executed by</dt><dd class="wrap-anywhere">${data.claimedBy}</dd></div>` : null}
        ${data.subjectRunId ? html`<div><dt>Backup restored</dt><dd><a href=${`#/runs/${data.subjectRunId}`} class="mono">${shortId(data.subjectRunId)}</a></dd></div>` : null}
        ${data.verification ? html`<div><dt>Verification</dt><dd><${StatusBadge} status=${data.verification.status === 'passed' ? 'succeeded' : 'failed'} /> ${data.verification.status} ${data.verification.at ? formatRelative(data.verification.at, now) : ''}</dd></div>` : null}
        ${data.executor?.htmlUrl ? html`<div><dt>GitHub run</dt><dd><a href=${data.executor.htmlUrl} rel="noreferrer" class="wrap-anywhere">${data.executor.htmlUrl}</a></dd></div>` : null}
      </dl>
    </section>
    <${ArtifactPanel} run=${data} />
    <${Timeline} events=${events} />
    ${
      data.kind === 'backup' && data.status === 'succeeded' && actions?.restore.allowed
        ? html`<${RestoreDialog} run=${data} open=${dialogOpen}
          onClose=${() => setDialogOpen(false)}
          onStarted=${(/** @type {string} */ message, /** @type {string} */ restoreId) => {
            setDialogOpen(false);
            setAction({ busy: false, error: null, notice: message });
            setRestoring(restoreId);
          }} />`
        : null
    }`;
}
