import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorNotice, isTerminal, Loading, PageHeading, RunError, StatusBadge } from '../components.js';
import { openEventStream } from '../eventStream.js';
import { formatBytes, formatDuration, formatRate, formatRelative, formatTime, shortId } from '../format.js';
import { html } from '../html.js';
import { useNow, usePageTitle, useResource } from '../hooks.js';
import { can } from '../session.js';
import { RestoreDialog } from './restoreDialog.js';

const phases = { connecting: 'connecting to the database', dumping: 'dumping', manifest: 'writing the manifest', done: 'finishing' };

/**
 * The bytes the previous good backup of the target dumped: a running backup's bar is an
 * estimate against it, said so on screen (pg_dump cannot know its total in advance).
 */
function useExpectedBytes(run) {
  const [expected, setExpected] = useState(null);
  const active = run && run.kind === 'backup' && !isTerminal(run.status);
  useEffect(() => {
    if (!active) return;
    api(`/api/v1/targets/${encodeURIComponent(run.targetName)}/history?limit=20`)
      .then((history) => {
        const previous = [...history.items].reverse().find((point) => point.status === 'succeeded' && point.dumpedBytes);
        setExpected(previous?.dumpedBytes ?? null);
      })
      .catch(() => setExpected(null));
  }, [active, run?.targetName]);
  return expected;
}

function ProgressPanel({ run, progress, expectedBytes }) {
  if (isTerminal(run.status) || run.kind !== 'backup') return null;
  const dumped = progress?.bytesDumped ?? 0;
  const fraction = expectedBytes ? Math.min(dumped / expectedBytes, 0.99) : null;
  const label = progress
    ? `${phases[progress.phase] ?? progress.phase}: ${formatBytes(dumped)} dumped, ${formatBytes(progress.bytesStored)} stored, ${formatRate(progress.rateBytesPerSecond)}`
    : run.status === 'queued'
      ? 'Waiting for a worker to pick this run up'
      : 'Starting';
  return html`<section class="card progress-card" aria-labelledby="progress-title">
    <h2 id="progress-title">Progress</h2>
    <progress id="run-progress" max="1" value=${fraction ?? undefined} aria-describedby="progress-text" data-bytes=${dumped}></progress>
    <p id="progress-text" class="progress-text">${label}${fraction !== null ? html` <span class="muted">(about ${Math.round(fraction * 100)}% of the previous backup's ${formatBytes(expectedBytes)})</span>` : null}</p>
    ${progress?.elapsedMs ? html`<p class="muted">Running for ${formatDuration(progress.elapsedMs / 1000)}; the runner reports at every heartbeat.</p>` : null}
  </section>`;
}

function ArtifactPanel({ artifact }) {
  if (!artifact) return null;
  const files = [...artifact.files, artifact.manifest];
  const total = files.reduce((sum, file) => sum + file.size, 0);
  return html`<section class="card" aria-labelledby="artifact-title">
    <h2 id="artifact-title">Files</h2>
    <p class="muted break">${artifact.storeUrl.replace(/\/?$/, '/')}${artifact.prefix}</p>
    <div class="table-wrap"><table class="files-table">
      <thead><tr><th scope="col">File</th><th scope="col">Size</th><th scope="col">SHA-256</th></tr></thead>
      <tbody>${files.map((file) => html`<tr key=${file.name}><td class="mono">${file.name}</td><td>${formatBytes(file.size)}</td><td class="mono hash">${file.sha256}</td></tr>`)}</tbody>
      <tfoot><tr><th scope="row">Total</th><td colspan="2">${formatBytes(total)} (${total.toLocaleString()} bytes)</td></tr></tfoot>
    </table></div>
  </section>`;
}

function Timeline({ events }) {
  return html`<section class="card" aria-labelledby="events-title">
    <h2 id="events-title">Events</h2>
    ${events.length === 0 ? html`<p class="muted">No events yet.</p>` : null}
    <ol class="timeline">${events.map(
      (event) => html`<li key=${event.id} data-kind=${event.kind} class=${/failed|reaped|error|mismatch/.test(event.kind) ? 'timeline-bad' : ''}>
      <time datetime=${event.at} title=${event.at}>${formatTime(event.at)}</time>
      <span class="event-kind">${event.kind.replaceAll('_', ' ')}</span>
      ${event.status ? html`<${StatusBadge} status=${event.status} />` : null}
      ${event.message ? html`<span class="event-message">${event.message}</span>` : null}
    </li>`,
    )}</ol>
  </section>`;
}

/** One run, live: status, progress, events, error, files; cancel, verify and restore for operators. */
export function RunPage({ me, id }) {
  const now = useNow(5_000);
  const run = useResource(() => api(`/api/v1/runs/${id}`), [id]);
  const [events, setEvents] = useState([]);
  const [progress, setProgress] = useState(null);
  const [action, setAction] = useState({ busy: false, error: null, notice: null });
  const [restoring, setRestoring] = useState(false);
  const [dialogOpen, setDialogOpen] = useState(false);
  const refresh = useRef(null);
  const data = run.data;
  usePageTitle(data ? `${data.kind === 'verify' ? 'Restore drill' : 'Backup'} of ${data.targetName}` : 'Run');
  const expectedBytes = useExpectedBytes(data);

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

  useEffect(() => {
    if (data?.progress && !isTerminal(data.status)) setProgress((current) => current ?? data.progress);
  }, [data]);

  // A restore runs in the background and reports as events of this (finished) run.
  useEffect(() => {
    if (!restoring) return;
    const timer = setInterval(async () => {
      const result = await api(`/api/v1/runs/${id}/events`).catch(() => null);
      if (!result) return;
      mergeEvents(result.items);
      const outcome = [...result.items].reverse().find((event) => event.kind === 'restored' || event.kind === 'restore_failed' || event.kind === 'restore_started');
      if (outcome && outcome.kind !== 'restore_started') {
        setRestoring(false);
        setAction({ busy: false, error: null, notice: outcome.kind === 'restored' ? `Restore finished: ${outcome.message}.` : null });
        if (outcome.kind === 'restore_failed') setAction({ busy: false, error: { message: outcome.message, code: outcome.data?.code }, notice: null });
      }
    }, 1000);
    return () => clearInterval(timer);
  }, [restoring, id]);

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

  const operator = can(me, 'operator');
  const goodBackup = data.kind === 'backup' && data.status === 'succeeded' && data.artifact;
  const actions = operator
    ? html`
        ${
          !isTerminal(data.status) && data.status !== 'cancelling'
            ? html`<button type="button" class="button-danger" disabled=${action.busy}
              onClick=${() => act(async () => run.setData(await api(`/api/v1/runs/${id}/cancel`, { method: 'POST' })))}>Cancel run</button>`
            : null
        }
        ${
          goodBackup
            ? html`<button type="button" disabled=${action.busy}
              onClick=${() =>
                act(async () => {
                  const drill = await api(`/api/v1/runs/${id}/verify`, { method: 'POST' });
                  location.hash = `#/runs/${drill.id}`;
                })}>Verify (restore drill)</button>
            <button type="button" disabled=${action.busy || restoring} onClick=${() => setDialogOpen(true)}>Restore…</button>`
            : null
        }`
    : null;
  const duration = data.startedAt ? ((data.finishedAt ? Date.parse(data.finishedAt) : now) - Date.parse(data.startedAt)) / 1000 : null;

  return html`
    <${PageHeading} actions=${actions}>
      ${data.kind === 'verify' ? 'Restore drill' : 'Backup'} of <a href=${`#/targets/${encodeURIComponent(data.targetName)}`}>${data.targetName}</a>
    <//>
    <p class="run-id">Run <span class="mono">${data.id}</span></p>
    <p class="run-status-line">Status: <span id="run-status" aria-live="polite" aria-atomic="true"><${StatusBadge} status=${data.status} /></span></p>
    <${ErrorNotice} error=${action.error} title="That did not work" />
    ${action.notice ? html`<p class="notice notice-info" role="status">${action.notice}</p>` : null}
    ${restoring ? html`<p class="notice notice-info" role="status">Restoring in the background; the result appears in the events below.</p>` : null}
    <${RunError} error=${data.error} />
    <${ProgressPanel} run=${data} progress=${progress} expectedBytes=${expectedBytes} />
    <section class="card" aria-labelledby="facts-title">
      <h2 id="facts-title">Details</h2>
      <dl class="facts facts-wide">
        <div><dt>Trigger</dt><dd>${data.trigger}</dd></div>
        <div><dt>Attempt</dt><dd>${data.attempt} of ${data.maxAttempts}</dd></div>
        <div><dt>Created</dt><dd><time datetime=${data.createdAt}>${formatTime(data.createdAt)}</time> <span class="muted">(${formatRelative(data.createdAt, now)})</span></dd></div>
        <div><dt>Started</dt><dd>${formatTime(data.startedAt)}</dd></div>
        <div><dt>Finished</dt><dd>${formatTime(data.finishedAt)}</dd></div>
        <div><dt>Duration</dt><dd>${formatDuration(duration)}</dd></div>
        ${data.claimedBy ? html`<div><dt>Executed by</dt><dd class="break">${data.claimedBy}</dd></div>` : null}
        ${data.subjectRunId ? html`<div><dt>Backup restored</dt><dd><a href=${`#/runs/${data.subjectRunId}`} class="mono">${shortId(data.subjectRunId)}</a></dd></div>` : null}
        ${data.verification ? html`<div><dt>Verification</dt><dd><${StatusBadge} status=${data.verification.status === 'passed' ? 'succeeded' : 'failed'} /> ${data.verification.status} ${data.verification.at ? formatRelative(data.verification.at, now) : ''}</dd></div>` : null}
        ${data.executor?.htmlUrl ? html`<div><dt>GitHub run</dt><dd><a href=${data.executor.htmlUrl} rel="noreferrer">${data.executor.htmlUrl}</a></dd></div>` : null}
      </dl>
    </section>
    <${ArtifactPanel} artifact=${data.artifact} />
    <${Timeline} events=${events} />
    ${
      goodBackup && operator
        ? html`<${RestoreDialog} run=${data} open=${dialogOpen}
          onClose=${() => setDialogOpen(false)}
          onStarted=${(message) => {
            setDialogOpen(false);
            setAction({ busy: false, error: null, notice: message });
            setRestoring(true);
          }} />`
        : null
    }`;
}
