// @ts-check
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorNotice, isTerminal, Loading, PageHeading, StatusBadge } from '../components.js';
import { formatBytes, formatDuration, formatRelative, shortId } from '../format.js';
import { html } from '../html.js';
import { useNow, usePageTitle, useResource } from '../hooks.js';
import { LiveIndicator, useLiveFeed } from '../liveFeed.js';
import { isLiveProgress, ProgressBar, runDurationSeconds, runSizeBytes } from '../progress.js';
import { runKinds, runStatuses } from '../serverConstants.js';

/** @typedef {import('../types').Run} Run */
/** @typedef {{ target: string, status: string, kind: string }} Filters */
/** @typedef {{ items: Run[], nextCursor: string | null }} RunPage */

const PAGE = 50;

/**
 * @param {Filters} filters
 * @param {string | null} [cursor]
 */
function runsQuery(filters, cursor) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value);
  if (cursor) query.set('cursor', cursor);
  return `/api/v1/runs?${query}`;
}

const kindWords = { backup: 'backup', verify: 'restore drill' };

/**
 * @param {Run} run
 * @param {Filters} filters
 */
function matches(run, filters) {
  return (!filters.target || run.targetName === filters.target) && (!filters.status || run.status === filters.status) && (!filters.kind || run.kind === filters.kind);
}

/** Runs, newest first, with filters in the URL; statuses change live from the feed of all runs. */
/** @param {{ me: import('../types').Me, query: URLSearchParams }} props */
export function RunsPage({ query }) {
  usePageTitle('Runs');
  const now = useNow(1_000);
  const filters = { target: query.get('target') ?? '', status: query.get('status') ?? '', kind: query.get('kind') ?? '' };
  const filterKey = JSON.stringify(filters);
  const targets = useResource(() => api('/api/v1/targets'), []);
  const runs = useResource(/** @returns {Promise<RunPage>} */ () => api(runsQuery(filters)), [filterKey]);
  const [more, setMore] = useState(/** @type {{ busy: boolean, error: any }} */ ({ busy: false, error: null }));
  const [announcement, setAnnouncement] = useState('');

  const connected = useLiveFeed(
    async (event) => {
      const known = runs.data?.items.some((run) => run.id === event.runId);
      if (known && event.status) {
        const status = /** @type {import('../types').RunStatus} */ (event.status);
        runs.setData((data) => data && { ...data, items: data.items.map((run) => (run.id === event.runId ? { ...run, status } : run)) });
        if (isTerminal(event.status) || event.kind === 'claimed') {
          // Times, error and artifact come with the run itself.
          const fresh = await api(`/api/v1/runs/${event.runId}`).catch(() => null);
          if (fresh) runs.setData((data) => data && { ...data, items: data.items.map((run) => (run.id === fresh.id ? fresh : run)) });
          setAnnouncement(`Run ${shortId(event.runId)} of ${event.targetName}: ${event.status.replace('_', ' ')}.`);
        }
      } else if (known && (event.kind === 'restored' || event.kind === 'restore_failed')) {
        // A restore of this backup ended: its progress goes with it.
        const fresh = await api(`/api/v1/runs/${event.runId}`).catch(() => null);
        if (fresh) runs.setData((data) => data && { ...data, items: data.items.map((run) => (run.id === fresh.id ? fresh : run)) });
      } else if (!known && event.kind === 'created') {
        const fresh = await api(`/api/v1/runs/${event.runId}`).catch(() => null);
        if (fresh && matches(fresh, filters)) {
          runs.setData((data) => (data && !data.items.some((run) => run.id === fresh.id) ? { ...data, items: [fresh, ...data.items] } : data));
          setAnnouncement(`New run ${shortId(fresh.id)} of ${fresh.targetName}: ${fresh.status}.`);
        }
      }
    },
    // (Re)connected: whatever happened while the stream was down is in a fresh list.
    () => runs.data !== undefined && runs.reload(),
    // Progress of the runs on screen, as it moves (a restore's too, on a finished backup).
    (live) => runs.setData((data) => data && { ...data, items: data.items.map((run) => (run.id === live.runId ? { ...run, progress: live.progress } : run)) }),
  );

  const setFilter = (/** @type {keyof Filters} */ name, /** @type {string} */ value) => {
    const next = new URLSearchParams({ ...filters, [name]: value });
    for (const [key, v] of [...next]) if (!v) next.delete(key);
    location.hash = `#/runs${[...next].length ? `?${next}` : ''}`;
  };

  const loadMore = async () => {
    setMore({ busy: true, error: null });
    try {
      /** @type {RunPage} */
      const page = await api(runsQuery(filters, runs.data?.nextCursor));
      runs.setData((data) => {
        const items = data?.items ?? [];
        return { items: [...items, ...page.items.filter((run) => !items.some((known) => known.id === run.id))], nextCursor: page.nextCursor };
      });
      setMore({ busy: false, error: null });
    } catch (error) {
      setMore({ busy: false, error });
    }
  };

  const select = (/** @type {keyof Filters} */ name, /** @type {string} */ label, /** @type {readonly string[]} */ options) => html`<div class="field">
    <label for=${`filter-${name}`}>${label}</label>
    <select id=${`filter-${name}`} value=${filters[name]} onChange=${(/** @type {any} */ event) => setFilter(name, event.currentTarget.value)}>
      <option value="">All</option>
      ${options.map((option) => html`<option value=${option}>${option.replace('_', ' ')}</option>`)}
    </select>
  </div>`;

  return html`
    <${PageHeading} actions=${html`<${LiveIndicator} connected=${connected} />`}>Runs<//>
    <form class="filters" role="search" aria-label="Filter runs" onSubmit=${(/** @type {Event} */ event) => event.preventDefault()}>
      ${select(
        'target',
        'Target',
        /** @type {import('../types').Target[]} */ (targets.data?.items ?? []).map((target) => target.name),
      )}
      ${select('status', 'Status', runStatuses)}
      ${select('kind', 'Kind', runKinds)}
    </form>
    <p class="visually-hidden" aria-live="polite">${announcement}</p>
    <${ErrorNotice} error=${runs.error} title="The runs could not be loaded" />
    ${runs.data === undefined && !runs.error ? html`<${Loading} />` : null}
    ${runs.data && runs.data.items.length === 0 ? html`<p>No runs${filterKey !== '{"target":"","status":"","kind":""}' ? ' match these filters' : ' yet'}.</p>` : null}
    ${
      runs.data && runs.data.items.length > 0
        ? html`<div class="table-wrap"><table class="runs-table">
          <caption class="visually-hidden">Runs, newest first</caption>
          <thead><tr><th scope="col">Status</th><th scope="col">Run</th><th scope="col">Target</th><th scope="col">Kind</th><th scope="col">Created</th><th scope="col">Duration</th><th scope="col">Size</th><th scope="col">Progress</th></tr></thead>
          <tbody>${runs.data.items.map(
            (run) => html`<tr key=${run.id} data-run=${run.id}>
            <td class="run-status"><${StatusBadge} status=${run.status} /></td>
            <td><a href=${`#/runs/${run.id}`} class="mono">${shortId(run.id)}</a></td>
            <td><a href=${`#/targets/${encodeURIComponent(run.targetName)}`}>${run.targetName}</a></td>
            <td class="run-kind">${kindWords[run.kind] ?? run.kind}</td>
            <td title=${run.createdAt}>${formatRelative(run.createdAt, now)}</td>
            <td class="run-duration">${formatDuration(runDurationSeconds(run, now))}</td>
            <td class="run-size" title=${runSizeBytes(run) === null ? '' : `${runSizeBytes(run)?.toLocaleString()} bytes stored`}>${runSizeBytes(run) === null ? '—' : formatBytes(runSizeBytes(run))}</td>
            <td class="run-progress">${isLiveProgress(run) ? html`<${ProgressBar} progress=${run.progress} compact />` : null}</td>
          </tr>`,
          )}</tbody>
        </table></div>
        ${runs.data.nextCursor ? html`<p><button type="button" class="button-quiet" onClick=${loadMore} disabled=${more.busy}>${more.busy ? 'Loading…' : 'Load older runs'}</button></p>` : null}
        <${ErrorNotice} error=${more.error} title="Older runs could not be loaded" />`
        : null
    }`;
}
