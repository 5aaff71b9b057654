import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorNotice } from '../components.js';
import { html } from '../html.js';

/**
 * Restore a backup into a database the user names. Restoring overwrites data, so the user
 * confirms by typing the target's name; the database URL is sent once and never shown again.
 * A privileged destination role is accepted only when the user types its name.
 */
export function RestoreDialog({ run, open, onClose, onStarted }) {
  const dialog = useRef(null);
  const [databaseUrl, setDatabaseUrl] = useState('');
  const [clean, setClean] = useState(false);
  const [identity, setIdentity] = useState('');
  const [privilegedRole, setPrivilegedRole] = useState('');
  const [confirmation, setConfirmation] = useState('');
  const [state, setState] = useState({ busy: false, error: null });

  useEffect(() => {
    const element = dialog.current;
    if (open && !element.open) {
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

  const confirmed = confirmation.trim() === run.targetName && databaseUrl.trim() !== '';
  const submit = async (event) => {
    event.preventDefault();
    if (!confirmed) return;
    setState({ busy: true, error: null });
    try {
      const body = { databaseUrl: databaseUrl.trim(), clean, jobs: 1 };
      if (identity.trim()) body.identity = identity.trim();
      if (privilegedRole.trim()) body.privilegedRole = privilegedRole.trim();
      const started = await api(`/api/v1/runs/${run.id}/restore`, { method: 'POST', body });
      setState({ busy: false, error: null });
      onStarted(started.message);
    } catch (error) {
      setState({ busy: false, error });
    }
  };

  return html`<dialog ref=${dialog} class="dialog" aria-labelledby="restore-title" onClose=${onClose}>
    <form onSubmit=${submit} class="stack">
      <h2 id="restore-title">Restore this backup</h2>
      <p>The backup of <strong>${run.targetName}</strong> is checked against its manifest, restored with <code>pg_restore</code>, and every table's row count compared. The database should be empty unless you choose to replace its objects.</p>
      <div class="field">
        <label for="restore-url">Database URL to restore into</label>
        <input id="restore-url" type="text" autocomplete="off" spellcheck="false" required placeholder="postgres://user:password@host:5432/empty_db"
          value=${databaseUrl} onInput=${(event) => setDatabaseUrl(event.currentTarget.value)} />
        <p class="help">Sent to the server for this restore only; never stored or shown again.</p>
      </div>
      <div class="field field-check">
        <input id="restore-clean" type="checkbox" checked=${clean} onChange=${(event) => setClean(event.currentTarget.checked)} />
        <label for="restore-clean">Replace objects that already exist (drop and recreate them)</label>
      </div>
      <div class="field">
        <label for="restore-identity">age identity (only for an encrypted backup)</label>
        <textarea id="restore-identity" rows="2" autocomplete="off" spellcheck="false" placeholder="AGE-SECRET-KEY-1…"
          value=${identity} onInput=${(event) => setIdentity(event.currentTarget.value)}></textarea>
      </div>
      <div class="field">
        <label for="restore-privileged">Accept a privileged role (optional)</label>
        <input id="restore-privileged" type="text" autocomplete="off" spellcheck="false" placeholder="postgres"
          value=${privilegedRole} onInput=${(event) => setPrivilegedRole(event.currentTarget.value)} />
        <p class="help">The backup's own code runs as the URL's role. A superuser (or a role that can run programs or read files on the server) is refused unless you type its name here; better, use a role that owns the database and nothing more.</p>
      </div>
      <div class="field">
        <label for="restore-confirm">Type <strong>${run.targetName}</strong> to confirm</label>
        <input id="restore-confirm" type="text" autocomplete="off" spellcheck="false" value=${confirmation} onInput=${(event) => setConfirmation(event.currentTarget.value)} />
      </div>
      <${ErrorNotice} error=${state.error} title="The restore was refused" />
      <div class="actions">
        <button type="submit" class="button-danger" disabled=${!confirmed || state.busy}>${state.busy ? 'Starting…' : 'Restore'}</button>
        <button type="button" class="button-quiet" onClick=${() => dialog.current.close()}>Cancel</button>
      </div>
    </form>
  </dialog>`;
}
