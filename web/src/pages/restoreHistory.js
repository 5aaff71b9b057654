// @ts-check
import { api } from '../api.js';
import { ErrorNotice, RestoreBadge } from '../components.js';
import { formatDuration, formatRelative, formatTime, shortId } from '../format.js';
import { html } from '../html.js';
import { useResource } from '../hooks.js';

/** @typedef {import('../types').Restore} Restore */

/** @param {Restore} restore */
function durationOf(restore) {
  if (!restore.startedAt || !restore.finishedAt) return null;
  const seconds = (Date.parse(restore.finishedAt) - Date.parse(restore.startedAt)) / 1000;
  return seconds >= 0 ? seconds : null;
}

/**
 * A target's restores, newest first (GET /api/v1/targets/{name}/restores): each with its own
 * outcome, which a failed restore does not share with the backup it restored.
 * @param {{ name: string, reloadKey: number, now: number }} props
 */
export function RestoreHistory({ name, reloadKey, now }) {
  const restores = useResource(() => api(`/api/v1/targets/${encodeURIComponent(name)}/restores`), [name, reloadKey]);
  /** @type {Restore[]} */
  const items = restores.data?.items ?? [];
  return html`<section class="card" aria-labelledby="restores-title" id="restores">
    <h2 id="restores-title">Restores</h2>
    <${ErrorNotice} error=${restores.error} title="The restore history could not be loaded" />
    ${restores.data && items.length === 0 ? html`<p class="muted">No backup of this target has been restored yet.</p>` : null}
    ${
      items.length > 0
        ? html`<table class="restores-table stack-table">
          <thead><tr><th scope="col">Outcome</th><th scope="col">Backup</th><th scope="col">Started</th><th scope="col">Took</th><th scope="col">By</th><th scope="col">Details</th></tr></thead>
          <tbody>${items.map((restore) => {
            const took = durationOf(restore);
            return html`<tr key=${restore.id} data-restore-id=${restore.id}>
              <td data-label="Outcome"><${RestoreBadge} state=${restore.status} /></td>
              <td data-label="Backup"><a href=${`#/runs/${restore.runId}`} class="mono">${shortId(restore.runId)}</a></td>
              <td data-label="Started" title=${formatTime(restore.startedAt ?? restore.finishedAt)}>${formatRelative(restore.startedAt ?? restore.finishedAt, now)}</td>
              <td data-label="Took">${took === null ? (restore.status === 'running' ? 'still running' : '—') : formatDuration(took)}</td>
              <td data-label="By">${restore.requestedBy ?? 'the command line'}</td>
              <td data-label="Details" class="restore-detail">${restore.error ? html`<code>${restore.error.code}</code> ` : null}${restore.message ?? ''}</td>
            </tr>`;
          })}</tbody>
        </table>`
        : null
    }
  </section>`;
}
