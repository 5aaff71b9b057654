import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorNotice, isTerminal, Loading, PageHeading, StatusBadge } from '../components.js';
import { formatDuration, formatRelative, shortId } from '../format.js';
import { html } from '../html.js';
import { useNow, usePageTitle, useResource } from '../hooks.js';
import { LiveIndicator, useLiveFeed } from '../liveFeed.js';

const statuses = ['queued', 'dispatched', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled', 'timed_out'];
const PAGE = 50;

function runsQuery(filters, cursor) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value);
  if (cursor) query.set('cursor', cursor);
  return `/api/v1/runs?${query}`;
}

function durationOf(run) {
  if (!run.startedAt) return null;
  const end = run.finishedAt ? Date.parse(run.finishedAt) : Date.now();
  return (end - Date.parse(run.startedAt)) / 1000;
}

function matches(run, filters) {
  return (!filters.target || run.targetName === filters.target) && (!filters.status || run.status === filters.status) && (!filters.kind || run.kind === filters.kind);
}

/** Runs, newest first, with filters in the URL; statuses change live from the feed of all runs. */
export function RunsPage({ query }) {
  usePageTitle('Runs');
  const now = useNow(5_000);
  const filters = { target: query.get('target') ?? '', status: query.get('status') ?? '', kind: query.get('kind') ?? '' };
  const filterKey = JSON.stringify(filters);
  const targets = useResource(() => api('/api/v1/targets'), []);
  const runs = useResource(() => api(runsQuery(filters)), [filterKey]);
  const [more, setMore] = useState({ busy: false, error: null });
  const [announcement, setAnnouncement] = useState('');

  const connected = useLiveFeed(
    async (event) => {
      const known = runs.data?.items.some((run) => run.id === event.runId);
      if (known && event.status) {
        runs.setData((data) => ({ ...data, items: data.items.map((run) => (run.id === event.runId ? { ...run, status: event.status } : run)) }));
        if (isTerminal(event.status) || event.kind === 'claimed') {
          // Times, error and artifact come with the run itself.
          const fresh = await api(`/api/v1/runs/${event.runId}`).catch(() => null);
          if (fresh) runs.setData((data) => ({ ...data, items: data.items.map((run) => (run.id === fresh.id ? fresh : run)) }));
          setAnnouncement(`Run ${shortId(event.runId)} of ${event.targetName}: ${event.status.replace('_', ' ')}.`);
        }
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
  );

  const setFilter = (name, value) => {
    const next = new URLSearchParams({ ...filters, [name]: value });
    for (const [key, v] of [...next]) if (!v) next.delete(key);
    location.hash = `#/runs${[...next].length ? `?${next}` : ''}`;
  };

  const loadMore = async () => {
    setMore({ busy: true, error: null });
    try {
      const page = await api(runsQuery(filters, runs.data.nextCursor));
      runs.setData((data) => ({ items: [...data.items, ...page.items.filter((run) => !data.items.some((known) => known.id === run.id))], nextCursor: page.nextCursor }));
      setMore({ busy: false, error: null });
    } catch (error) {
      setMore({ busy: false, error });
    }
  };

  const select = (name, label, options) => html`<div class="field">
    <label for=${`filter-${name}`}>${label}</label>
    <select id=${`filter-${name}`} value=${filters[name]} onChange=${(event) => setFilter(name, event.currentTarget.value)}>
      <option value="">All</option>
      ${options.map((option) => html`<option value=${option}>${option.replace('_', ' ')}</option>`)}
    </select>
  </div>`;

  return html`
    <${PageHeading} actions=${html`<${LiveIndicator} connected=${connected} />`}>Runs<//>
    <form class="filters" role="search" aria-label="Filter runs" onSubmit=${(event) => event.preventDefault()}>
      ${select(
        'target',
        'Target',
        (targets.data?.items ?? []).map((target) => target.name),
      )}
      ${select('status', 'Status', statuses)}
      ${select('kind', 'Kind', ['backup', 'verify'])}
    </form>
    <p class="visually-hidden" aria-live="polite">${announcement}</p>
    <${ErrorNotice} error=${runs.error} title="The runs could not be loaded" />
    ${runs.data === undefined && !runs.error ? html`<${Loading} />` : null}
    ${runs.data && runs.data.items.length === 0 ? html`<p>No runs${filterKey !== '{"target":"","status":"","kind":""}' ? ' match these filters' : ' yet'}.</p>` : null}
    ${
      runs.data && runs.data.items.length > 0
        ? html`<div class="table-wrap"><table class="runs-table">
          <caption class="visually-hidden">Runs, newest first</caption>
          <thead><tr><th scope="col">Status</th><th scope="col">Run</th><th scope="col">Target</th><th scope="col">Kind</th><th scope="col">Created</th><th scope="col">Duration</th></tr></thead>
          <tbody>${runs.data.items.map(
            (run) => html`<tr key=${run.id} data-run=${run.id}>
            <td class="run-status"><${StatusBadge} status=${run.status} /></td>
            <td><a href=${`#/runs/${run.id}`} class="mono">${shortId(run.id)}</a></td>
            <td><a href=${`#/targets/${encodeURIComponent(run.targetName)}`}>${run.targetName}</a></td>
            <td>${run.kind === 'verify' ? 'restore drill' : 'backup'}</td>
            <td title=${run.createdAt}>${formatRelative(run.createdAt, now)}</td>
            <td>${formatDuration(durationOf(run))}</td>
          </tr>`,
          )}</tbody>
        </table></div>
        ${runs.data.nextCursor ? html`<p><button type="button" class="button-quiet" onClick=${loadMore} disabled=${more.busy}>${more.busy ? 'Loading…' : 'Load older runs'}</button></p>` : null}
        <${ErrorNotice} error=${more.error} title="Older runs could not be loaded" />`
        : null
    }`;
}
