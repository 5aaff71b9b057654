import { html } from './html.js';
import { explainError } from './errorText.js';

export const terminalStatuses = ['succeeded', 'failed', 'cancelled', 'timed_out'];

export function isTerminal(status) {
  return terminalStatuses.includes(status);
}

/** A run status as a coloured badge; the text is the status itself, `timed_out` as "timed out". */
export function StatusBadge({ status }) {
  if (!status) return html`<span class="status status-none">—</span>`;
  return html`<span class="status status-${status}" data-status=${status}>${status.replace('_', ' ')}</span>`;
}

export const healthLabels = { ok: 'OK', failing: 'Failing', stale: 'Stale', never: 'No backup yet' };

export function HealthBadge({ health }) {
  return html`<span class="health health-${health}" data-health=${health}>${healthLabels[health] ?? health}</span>`;
}

/** An API error (or any error) as an alert that says what to do. */
export function ErrorNotice({ error, title = 'Something went wrong' }) {
  if (!error) return null;
  return html`<div class="notice notice-error" role="alert">
    <strong>${title}.</strong> ${error.message}${error.code && !String(error.code).startsWith('HTTP_') ? html` <code>${error.code}</code>` : null}
  </div>`;
}

/** A run's error: plain words first, then the exact message and code. */
export function RunError({ error }) {
  if (!error) return null;
  return html`<div class="notice notice-error run-error" role="status">
    <p class="run-error-plain">${explainError(error)}</p>
    <p class="run-error-detail"><code>${error.code}</code> ${error.message}</p>
  </div>`;
}

export function Loading({ what = 'Loading' }) {
  return html`<p class="loading" role="status">${what}…</p>`;
}

export function PageHeading({ children, actions }) {
  return html`<div class="page-heading">
    <h1 tabindex="-1" id="page-title">${children}</h1>
    ${actions ? html`<div class="actions">${actions}</div>` : null}
  </div>`;
}
