// @ts-check
import { html } from './html.js';
import { explainError, plainMessage } from './errorText.js';
import { terminalStatuses } from './serverConstants.js';

/** @typedef {import('./types').ActionVerdict} ActionVerdict */
/** @typedef {import('./types').RunErrorInfo} RunErrorInfo */
/** @typedef {import('./types').RunEvent} RunEvent */
/** @typedef {import('preact').ComponentChildren} ComponentChildren */

/** @param {string | null | undefined} status */
export function isTerminal(status) {
  return /** @type {readonly string[]} */ (terminalStatuses).includes(status ?? '');
}

/**
 * A run status as a coloured badge; the text is the status itself, `timed_out` as "timed out".
 * @param {{ status: string | null | undefined }} props
 */
export function StatusBadge({ status }) {
  if (!status) return html`<span class="status status-none">—</span>`;
  return html`<span class="status status-${status}" data-status=${status}>${status.replace('_', ' ')}</span>`;
}

/** What a restore's events and records say, as a badge of its own: a restore's outcome is not its backup's. */
const restoreBadges = /** @type {const} */ ({
  restore_started: ['restoring', 'running'],
  running: ['restoring', 'running'],
  restored: ['restored', 'succeeded'],
  restore_failed: ['restore failed', 'failed'],
  failed: ['restore failed', 'failed'],
});

/**
 * A restore's state as a badge: red when it failed, whatever the backup's own status.
 * @param {{ state: string }} props
 */
export function RestoreBadge({ state }) {
  const [label, colour] = restoreBadges[/** @type {keyof typeof restoreBadges} */ (state)] ?? [state, 'none'];
  return html`<span class="status status-${colour}" data-restore=${state}>${label}</span>`;
}

/**
 * The badge of one event of a run: restore events carry their own outcome (their `status`
 * is the backup's, which a failed restore does not change); other events the run's status.
 * @param {{ event: RunEvent }} props
 */
export function EventBadge({ event }) {
  if (event.kind in restoreBadges) return html`<${RestoreBadge} state=${event.kind} />`;
  return event.status ? html`<${StatusBadge} status=${event.status} />` : null;
}

export const healthLabels = /** @type {Record<string, string>} */ ({ ok: 'OK', failing: 'Failing', stale: 'Stale', never: 'No backup yet' });

/** @param {{ health: string }} props */
export function HealthBadge({ health }) {
  return html`<span class="health health-${health}" data-health=${health}>${healthLabels[health] ?? health}</span>`;
}

/**
 * An API error (or any error) as an alert that says what to do, in the dashboard's words.
 * @param {{ error: ({ code?: string, message?: string } | Error) | null | undefined, title?: string }} props
 */
export function ErrorNotice({ error, title = 'Something went wrong' }) {
  if (!error) return null;
  const code = 'code' in error ? error.code : undefined;
  return html`<div class="notice notice-error" role="alert">
    <strong>${title}.</strong> ${plainMessage(error)}${code && !String(code).startsWith('HTTP_') && code !== 'NETWORK' ? html` <code>${code}</code>` : null}
  </div>`;
}

/**
 * A run's error: plain words first, then the exact message and code.
 * @param {{ error: RunErrorInfo | null }} props
 */
export function RunError({ error }) {
  if (!error) return null;
  return html`<div class="notice notice-error run-error" role="status">
    <p class="run-error-plain">${explainError(error)}</p>
    <p class="run-error-detail wrap-anywhere"><code>${error.code}</code> ${error.message}</p>
  </div>`;
}

/** @param {{ what?: string }} props */
export function Loading({ what = 'Loading' }) {
  return html`<p class="loading" role="status">${what}…</p>`;
}

/** @param {{ children: ComponentChildren, actions?: ComponentChildren }} props */
export function PageHeading({ children, actions }) {
  return html`<div class="page-heading">
    <h1 tabindex="-1" id="page-title">${children}</h1>
    ${actions ? html`<div class="actions">${actions}</div>` : null}
  </div>`;
}

/**
 * @typedef {object} Action
 * @property {string} id           unique on the page: names the button and its reason
 * @property {string} label
 * @property {ActionVerdict | undefined} verdict  the server's: absent while it is not known
 * @property {() => void} [onClick]
 * @property {string} [href]       a link rather than a button
 * @property {boolean} [danger]
 * @property {boolean} [quiet]
 */

/**
 * Buttons for what can be done, as the server says: an action it does not allow is a disabled
 * button whose reason is written under the row (and read with the button).
 * @param {{ actions: Action[], busy?: boolean }} props
 */
export function ActionBar({ actions, busy = false }) {
  const blocked = actions.filter((action) => action.verdict && !action.verdict.allowed);
  return html`<div class="action-bar">
    <div class="actions">${actions.map((action) => {
      const allowed = action.verdict?.allowed === true;
      const className = action.danger ? 'button-danger' : action.quiet ? 'button-quiet' : undefined;
      const describedBy = action.verdict && !action.verdict.allowed ? `${action.id}-reason` : undefined;
      if (action.href && allowed) return html`<a id=${action.id} class=${`button ${className ?? ''}`} href=${action.href}>${action.label}</a>`;
      return html`<button type="button" id=${action.id} class=${className} disabled=${!allowed || busy} aria-describedby=${describedBy}
        onClick=${action.onClick}>${action.label}</button>`;
    })}</div>
    ${
      blocked.length > 0
        ? html`<ul class="action-reasons">${blocked.map(
            (action) => html`<li id=${`${action.id}-reason`} data-blocked-by=${action.verdict && !action.verdict.allowed ? action.verdict.blockedBy : undefined}>
          <strong>${action.label.replace(/…$/, '')}:</strong> ${action.verdict && !action.verdict.allowed ? action.verdict.reason : ''}</li>`,
          )}</ul>`
        : null
    }
  </div>`;
}

/**
 * The message of a field at fault, under its input (the input names it with aria-describedby).
 * @param {{ id: string, message: string | undefined }} props
 */
export function FieldError({ id, message }) {
  return message ? html`<p id=${id} class="field-error" data-field-error>${message}</p>` : null;
}
