// @ts-check
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';
import { ErrorNotice, FieldError } from '../components.js';
import { plainMessage } from '../errorText.js';
import { formatTime } from '../format.js';
import { html } from '../html.js';

/** @typedef {import('../types').Run} Run */
/** @typedef {import('../types').RestoreWindow} RestoreWindow */

/** The dialog's fields, by the request field the API names when it refuses one. */
const fieldIds = /** @type {const} */ ({ at: 'restore-at', databaseUrl: 'restore-url', identity: 'restore-identity', privilegedRole: 'restore-privileged', clean: 'restore-clean' });

/**
 * Restore a backup into a database the user names, or, given `pointInTime`, a continuous
 * target as it was at a point of its window (default: the latest). Restoring overwrites data,
 * so the user confirms by typing the target's name; the database URL is sent once and never
 * shown again. A privileged destination role is accepted only when the user types its name.
 * An encrypted backup the server holds no identity for needs the identity pasted here.
 * @param {{ run?: Run, pointInTime?: { target: string, window: RestoreWindow }, open: boolean, onClose: () => void, onStarted: (message: string, restoreId: string) => void }} props
 */
export function RestoreDialog({ run, pointInTime, open, onClose, onStarted }) {
  const dialog = useRef(/** @type {HTMLDialogElement | null} */ (null));
  const [at, setAt] = useState('latest');
  const [databaseUrl, setDatabaseUrl] = useState('');
  const [clean, setClean] = useState(false);
  const [identity, setIdentity] = useState('');
  const [privilegedRole, setPrivilegedRole] = useState('');
  const [confirmation, setConfirmation] = useState('');
  const [state, setState] = useState(/** @type {{ busy: boolean, error: ApiError | Error | null }} */ ({ busy: false, error: null }));
  const identityRequired = run?.actions?.restore.identityRequired === true;
  const targetName = pointInTime?.target ?? run?.targetName ?? '';

  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (open && !element.open) {
      setAt('latest');
      setDatabaseUrl('');
      setConfirmation('');
      setIdentity('');
      setPrivilegedRole('');
      setClean(false);
      setState({ busy: false, error: null });
      element.showModal();
    }
    if (!open && element.open) element.close();
  }, [open]);

  const confirmed = confirmation.trim() === targetName && databaseUrl.trim() !== '' && (!identityRequired || identity.trim() !== '') && (!pointInTime || at.trim() !== '');
  /** @param {Event} event */
  const submit = async (event) => {
    event.preventDefault();
    if (!confirmed) return;
    setState({ busy: true, error: null });
    try {
      /** @type {Record<string, unknown>} */
      const body = { databaseUrl: databaseUrl.trim(), clean, jobs: 1 };
      if (identity.trim()) body.identity = identity.trim();
      if (privilegedRole.trim()) body.privilegedRole = privilegedRole.trim();
      if (pointInTime) body.at = at.trim();
      const path = pointInTime ? `/api/v1/targets/${encodeURIComponent(pointInTime.target)}/restore` : `/api/v1/runs/${run?.id}/restore`;
      const started = await api(path, { method: 'POST', body });
      setState({ busy: false, error: null });
      onStarted(started.message, started.restoreId);
    } catch (error) {
      setState({ busy: false, error: /** @type {Error} */ (error) });
    }
  };
  // A refusal that names a field is shown at that field; the rest above the buttons.
  /** @type {Record<string, string>} */
  const atField = {};
  if (state.error instanceof ApiError) {
    for (const problem of state.error.fields) if (problem.field in fieldIds) atField[problem.field] = plainMessage({ code: state.error.code, message: problem.message });
  }
  const general = state.error && Object.keys(atField).length === 0 ? state.error : null;
  /** @param {keyof typeof fieldIds} field */
  const described = (field) => (atField[field] ? `${fieldIds[field]}-error` : undefined);

  return html`<dialog ref=${dialog} class="dialog" aria-labelledby="restore-title" onClose=${onClose}>
    <form onSubmit=${submit} class="stack" novalidate>
      <h2 id="restore-title">${pointInTime ? 'Restore to a point in time' : 'Restore this backup'}</h2>
      ${
        pointInTime
          ? html`<p>The newest base backup of <strong>${targetName}</strong> before the point is restored and checked, then the changes streamed after it are replayed up to the last transaction committed at or before the point. The database should be empty unless you choose to replace its objects.</p>
            <div class="field">
              <label for="restore-at">Point in time</label>
              <input id="restore-at" type="text" autocomplete="off" spellcheck=${false} required
                aria-invalid=${atField.at ? 'true' : undefined} aria-describedby=${described('at') ?? 'restore-at-help'}
                value=${at} onInput=${(/** @type {InputEvent & { currentTarget: HTMLInputElement }} */ event) => setAt(event.currentTarget.value)} />
              <${FieldError} id="restore-at-error" message=${atField.at} />
              <div class="help" id="restore-at-help">
                <p><code>latest</code>, an LSN such as <code>0/16B3748</code>, or a time with its offset such as <code>${pointInTime.window.to?.at ?? '2026-12-06T12:30:00Z'}</code>, within:</p>
                <ul class="plain">${pointInTime.window.ranges.map(
                  (range) =>
                    html`<li key=${range.from.runId}>${formatTime(range.from.at)} to ${formatTime(range.to.at)} <span class="mono">(${range.from.at} to ${range.to.at})</span></li>`,
                )}</ul>
              </div>
            </div>`
          : html`<p>The backup of <strong>${targetName}</strong> is checked against its manifest, restored with pg_restore, and every table's row count compared. The database should be empty unless you choose to replace its objects.</p>`
      }
      <div class="field">
        <label for="restore-url">Database URL to restore into</label>
        <input id="restore-url" type="text" autocomplete="off" spellcheck=${false} required placeholder="postgres://user:password@host:5432/empty_db"
          aria-invalid=${atField.databaseUrl ? 'true' : undefined} aria-describedby=${described('databaseUrl') ?? 'restore-url-help'}
          value=${databaseUrl} onInput=${(/** @type {InputEvent & { currentTarget: HTMLInputElement }} */ event) => setDatabaseUrl(event.currentTarget.value)} />
        <${FieldError} id="restore-url-error" message=${atField.databaseUrl} />
        <p class="help" id="restore-url-help">Sent to the server for this restore only; never stored or shown again.</p>
      </div>
      <div class="field field-check">
        <input id="restore-clean" type="checkbox" checked=${clean} onChange=${(/** @type {Event & { currentTarget: HTMLInputElement }} */ event) => setClean(event.currentTarget.checked)} />
        <label for="restore-clean">Replace objects that already exist (drop and recreate them)</label>
      </div>
      <div class="field">
        <label for="restore-identity">age identity${identityRequired ? '' : ' (only for an encrypted backup the server cannot decrypt)'}</label>
        <textarea id="restore-identity" rows="2" autocomplete="off" spellcheck=${false} placeholder="AGE-SECRET-KEY-1…" required=${identityRequired}
          aria-invalid=${atField.identity ? 'true' : undefined} aria-describedby=${described('identity') ?? (identityRequired ? 'restore-identity-help' : undefined)}
          value=${identity} onInput=${(/** @type {InputEvent & { currentTarget: HTMLTextAreaElement }} */ event) => setIdentity(event.currentTarget.value)}></textarea>
        <${FieldError} id="restore-identity-error" message=${atField.identity} />
        ${identityRequired ? html`<p class="help" id="restore-identity-help">This backup is encrypted and the server holds no identity for it: paste the identity of one of its recipients. It is used for this restore only.</p>` : null}
      </div>
      <div class="field">
        <label for="restore-privileged">Accept a privileged role (optional)</label>
        <input id="restore-privileged" type="text" autocomplete="off" spellcheck=${false} placeholder="postgres"
          aria-invalid=${atField.privilegedRole ? 'true' : undefined} aria-describedby=${described('privilegedRole') ?? 'restore-privileged-help'}
          value=${privilegedRole} onInput=${(/** @type {InputEvent & { currentTarget: HTMLInputElement }} */ event) => setPrivilegedRole(event.currentTarget.value)} />
        <${FieldError} id="restore-privileged-error" message=${atField.privilegedRole} />
        <p class="help" id="restore-privileged-help">The backup's own code runs as the URL's role. A superuser (or a role that can run programs or read files on the server) is refused unless you type its name here; better, use a role that owns the database and nothing more.</p>
      </div>
      <div class="field">
        <label for="restore-confirm">Type <strong>${targetName}</strong> to confirm</label>
        <input id="restore-confirm" type="text" autocomplete="off" spellcheck=${false} value=${confirmation}
          onInput=${(/** @type {InputEvent & { currentTarget: HTMLInputElement }} */ event) => setConfirmation(event.currentTarget.value)} />
      </div>
      <${ErrorNotice} error=${general} title="The restore was refused" />
      <div class="actions">
        <button type="submit" class="button-danger" disabled=${!confirmed || state.busy}>${state.busy ? 'Starting…' : 'Restore'}</button>
        <button type="button" class="button-quiet" onClick=${() => dialog.current?.close()}>Cancel</button>
      </div>
    </form>
  </dialog>`;
}
