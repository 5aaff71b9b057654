// @ts-check
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorNotice, Loading, PageHeading } from '../components.js';
import { formatRelative, shortId } from '../format.js';
import { html } from '../html.js';
import { useNow, usePageTitle, useResource } from '../hooks.js';
import { auditActions } from '../serverConstants.js';

/** @typedef {import('../types').AuditEntry} AuditEntry */
/** @typedef {{ since: string, action: string, actor: string }} Filters */
/** @typedef {{ items: AuditEntry[], nextCursor: string | null }} AuditPageData */

const PAGE = 50;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const periods = [
  ['', 'Any time'],
  ['1h', 'Last hour'],
  ['24h', 'Last 24 hours'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
];
const actionGroups = [...new Set(auditActions.map((action) => action.split('.')[0] ?? action))].filter((group) => !auditActions.includes(/** @type {any} */ (group)));

/**
 * @param {Filters} filters
 * @param {string | null} [cursor]
 */
function auditQuery(filters, cursor) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  for (const [key, value] of Object.entries(filters)) if (value) query.set(key, value);
  if (cursor) query.set('cursor', cursor);
  return `/api/v1/audit?${query}`;
}

/** @param {AuditEntry['actor']} actor */
function actorText(actor) {
  const kind = { user: 'User', token: 'Token', cli: 'CLI user', system: 'Backstop' }[actor.kind] ?? actor.kind;
  return `${kind} ${actor.name}${'role' in actor && actor.role ? ` (${actor.role})` : ''}`;
}

/** @param {AuditEntry} entry */
function subjectCell(entry) {
  if (!entry.subject) return '—';
  if (entry.action.startsWith('run.') && UUID.test(entry.subject)) return html`<a href=${`#/runs/${entry.subject}`} class="mono">${shortId(entry.subject)}</a>`;
  if (entry.action.startsWith('target.') && entry.action !== 'target.delete' && entry.outcome === 'succeeded' && !entry.details.renamedTo) {
    return html`<a href=${`#/targets/${encodeURIComponent(entry.subject)}`}>${entry.subject}</a>`;
  }
  return entry.subject;
}

/** @param {AuditEntry['details']} details */
function detailsText(details) {
  return Object.entries(details)
    .map(([key, value]) => `${key}: ${Array.isArray(value) ? value.join(', ') || '(none)' : String(value)}`)
    .join('; ');
}

/**
 * The audit trail for admins: who did what, when, from where, and how it ended, newest first,
 * with filters in the URL.
 * @param {{ me: import('../types').Me, query: URLSearchParams }} props
 */
export function AuditPage({ me, query }) {
  usePageTitle('Audit trail');
  const now = useNow(15_000);
  const filters = { since: query.get('since') ?? '', action: query.get('action') ?? '', actor: query.get('actor') ?? '' };
  const filterKey = JSON.stringify(filters);
  const entries = useResource(
    /** @returns {Promise<AuditPageData>} */ () => (me.role === 'admin' ? api(auditQuery(filters)) : Promise.resolve({ items: [], nextCursor: null })),
    [filterKey],
  );
  const [more, setMore] = useState(/** @type {{ busy: boolean, error: any }} */ ({ busy: false, error: null }));
  const [actorDraft, setActorDraft] = useState(filters.actor);

  if (me.role !== 'admin') {
    return html`<${PageHeading}>Audit trail<//><p>Only admins can read the audit trail.</p>`;
  }

  const setFilters = (/** @type {Partial<Filters>} */ change) => {
    const next = new URLSearchParams({ ...filters, ...change });
    for (const [key, value] of [...next]) if (!value) next.delete(key);
    location.hash = `#/audit${[...next].length ? `?${next}` : ''}`;
  };

  const loadMore = async () => {
    setMore({ busy: true, error: null });
    try {
      /** @type {AuditPageData} */
      const page = await api(auditQuery(filters, entries.data?.nextCursor));
      entries.setData((data) => ({ items: [...(data?.items ?? []), ...page.items], nextCursor: page.nextCursor }));
      setMore({ busy: false, error: null });
    } catch (error) {
      setMore({ busy: false, error });
    }
  };

  return html`
    <${PageHeading} actions=${html`<button type="button" class="button-quiet" onClick=${() => entries.reload()}>Refresh</button>`}>Audit trail<//>
    <p class="hint">Every action of a person or a token, as the catalog recorded it. Entries are never changed or deleted.</p>
    <form
      class="filters"
      role="search"
      aria-label="Filter the audit trail"
      onSubmit=${(/** @type {Event} */ event) => {
        event.preventDefault();
        setFilters({ actor: actorDraft.trim() });
      }}
    >
      <div class="field">
        <label for="audit-since">When</label>
        <select id="audit-since" value=${filters.since} onChange=${(/** @type {any} */ event) => setFilters({ since: event.currentTarget.value })}>
          ${periods.map(([value, label]) => html`<option value=${value}>${label}</option>`)}
        </select>
      </div>
      <div class="field">
        <label for="audit-action">Action</label>
        <select id="audit-action" value=${filters.action} onChange=${(/** @type {any} */ event) => setFilters({ action: event.currentTarget.value })}>
          <option value="">All</option>
          ${actionGroups.map((group) => html`<option value=${group}>${group} (all)</option>`)}
          ${auditActions.map((action) => html`<option value=${action}>${action}</option>`)}
        </select>
      </div>
      <div class="field">
        <label for="audit-actor">Who (name or id)</label>
        <input id="audit-actor" type="search" value=${actorDraft} onInput=${(/** @type {any} */ event) => setActorDraft(event.currentTarget.value)} onChange=${(/** @type {any} */ event) => setFilters({ actor: event.currentTarget.value.trim() })} />
      </div>
    </form>
    <${ErrorNotice} error=${entries.error} title="The audit trail could not be loaded" />
    ${entries.data === undefined && !entries.error ? html`<${Loading} />` : null}
    ${entries.data && entries.data.items.length === 0 ? html`<p>No entries${filterKey !== '{"since":"","action":"","actor":""}' ? ' match these filters' : ' yet'}.</p>` : null}
    ${
      entries.data && entries.data.items.length > 0
        ? html`<div class="table-wrap"><table class="audit-table">
          <caption class="visually-hidden">Audit entries, newest first</caption>
          <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">From</th><th scope="col">Action</th><th scope="col">Subject</th><th scope="col">Outcome</th><th scope="col">Details</th></tr></thead>
          <tbody>${entries.data.items.map(
            (entry) => html`<tr key=${entry.id} data-audit=${entry.id} data-action=${entry.action}>
            <td title=${entry.at}>${formatRelative(entry.at, now)}</td>
            <td class="audit-actor">${actorText(entry.actor)}</td>
            <td class="audit-from">${entry.actor.client}${entry.actor.address ? html` <span class="mono">${entry.actor.address}</span>` : null}</td>
            <td class="audit-action mono">${entry.action}</td>
            <td class="audit-subject">${subjectCell(entry)}</td>
            <td class="audit-outcome" data-outcome=${entry.outcome}>${entry.outcome}${entry.errorCode ? html` <span class="mono">${entry.errorCode}</span>` : null}</td>
            <td class="audit-details">${detailsText(entry.details)}</td>
          </tr>`,
          )}</tbody>
        </table></div>
        ${entries.data.nextCursor ? html`<p><button type="button" class="button-quiet" onClick=${loadMore} disabled=${more.busy}>${more.busy ? 'Loading…' : 'Load older entries'}</button></p>` : null}
        <${ErrorNotice} error=${more.error} title="Older entries could not be loaded" />`
        : null
    }`;
}
