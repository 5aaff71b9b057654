// @ts-check
import { useEffect, useRef, useState } from 'preact/hooks';
// biome-ignore lint/correctness/noUnusedImports: ApiError names the type of the errors caught below, in JSDoc
import { api, ApiError } from '../api.js';
import { ActionBar, ErrorNotice, FieldError } from '../components.js';
import { plainMessage } from '../errorText.js';
import { formatBytes, formatTime, shortId } from '../format.js';
import { html } from '../html.js';

/** @typedef {import('../types').Target} Target */
/** @typedef {import('../types').TargetTest} TargetTest */
/** @typedef {import('../types').DeletedTarget} DeletedTarget */

/** @type {Record<string, string>} */
const checkLabels = {
  'store-url': 'Store URL understood',
  database: 'Database reached',
  'pg-dump': 'A fitting pg_dump found',
  'store-write': 'Store writable',
};

/**
 * What "Test connection" found, check by check, in the order they ran.
 * @param {{ result: TargetTest }} props
 */
function TestResult({ result }) {
  return html`<div class=${`notice ${result.ok ? 'notice-ok' : 'notice-error'}`} role="status" id="test-result">
    <p><strong>${result.ok ? 'Every check passed.' : 'A check failed.'}</strong>
      ${result.serverVersion ? ` PostgreSQL ${result.serverVersion}.` : ''}${result.pgDump ? ` pg_dump ${result.pgDump.version}.` : ''}</p>
    <ul class="checks-list">${result.checks.map(
      (check) => html`<li data-check=${check.name} data-ok=${String(check.ok)}>
      <span aria-hidden="true">${check.ok ? '✓' : '✗'}</span> <strong>${checkLabels[check.name] ?? check.name}</strong>${check.ok ? '' : ' — failed'}:
      ${check.error ? plainMessage(check.error) : check.detail}
    </li>`,
    )}</ul>
  </div>`;
}

/**
 * A modal form: opens when `open`, closes on cancel or Escape.
 * @param {{ id: string, title: string, open: boolean, onClose: () => void, children: import('preact').ComponentChildren }} props
 */
function Dialog({ id, title, open, onClose, children }) {
  const dialog = useRef(/** @type {HTMLDialogElement | null} */ (null));
  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (open && !element.open) element.showModal();
    if (!open && element.open) element.close();
  }, [open]);
  return html`<dialog ref=${dialog} class="dialog" id=${id} aria-labelledby=${`${id}-title`} onClose=${onClose}>
    <h2 id=${`${id}-title`}>${title}</h2>
    ${children}
  </dialog>`;
}

/**
 * A dialog's one text field and its submission: reset whenever the dialog opens; `work` gets
 * the trimmed value on submit, and a refusal is kept to show.
 * @param {boolean} open
 * @param {string} initial
 * @param {(value: string) => Promise<void>} work
 */
function useDialogForm(open, initial, work) {
  const [value, setValue] = useState(initial);
  const [state, setState] = useState(/** @type {{ busy: boolean, error: ApiError | null }} */ ({ busy: false, error: null }));
  useEffect(() => {
    if (open) {
      setValue(initial);
      setState({ busy: false, error: null });
    }
  }, [open]);
  /** @param {Event} event */
  const submit = async (event) => {
    event.preventDefault();
    setState({ busy: true, error: null });
    try {
      await work(value.trim());
    } catch (error) {
      setState({ busy: false, error: /** @type {ApiError} */ (error) });
    }
  };
  return { value, setValue, state, submit };
}

/**
 * Rename: the new name is checked by the server (a name taken is refused at the field).
 * @param {{ target: Target, open: boolean, onClose: () => void, onRenamed: (name: string) => void }} props
 */
function RenameDialog({ target, open, onClose, onRenamed }) {
  const {
    value: name,
    setValue: setName,
    state,
    submit,
  } = useDialogForm(open, target.name, async (value) => {
    const renamed = await api(`/api/v1/targets/${encodeURIComponent(target.name)}`, { method: 'PATCH', body: { name: value } });
    onRenamed(renamed.name);
  });
  const fieldMessage = state.error?.fields?.find((problem) => problem.field === 'name')?.message ?? (state.error?.code === 'TARGET_EXISTS' ? plainMessage(state.error) : undefined);
  return html`<${Dialog} id="rename-dialog" title=${`Rename ${target.name}`} open=${open} onClose=${onClose}>
    <form class="stack" onSubmit=${submit} novalidate>
      <p>New backups go into a folder of the new name. Backups taken before stay where they are, listed under the target as before.</p>
      <div class="field">
        <label for="rename-name">New name</label>
        <input id="rename-name" value=${name} autocomplete="off" spellcheck=${false} aria-invalid=${fieldMessage ? 'true' : undefined}
          aria-describedby=${fieldMessage ? 'rename-name-error' : 'rename-name-help'} onInput=${(/** @type {any} */ event) => setName(event.currentTarget.value)} />
        <${FieldError} id="rename-name-error" message=${fieldMessage} />
        <p class="help" id="rename-name-help">Lowercase letters, digits, ".", "_" and "-".</p>
      </div>
      <${ErrorNotice} error=${fieldMessage ? null : state.error} title="The target was not renamed" />
      <div class="actions">
        <button type="submit" disabled=${state.busy || name.trim() === '' || name.trim() === target.name}>${state.busy ? 'Renaming…' : 'Rename'}</button>
        <button type="button" class="button-quiet" onClick=${onClose}>Cancel</button>
      </div>
    </form>
  <//>`;
}

/**
 * Delete, after typing the target's name. Its backups stay in the store; the answer lists them.
 * @param {{ target: Target, open: boolean, onClose: () => void, onDeleted: (result: DeletedTarget) => void }} props
 */
function DeleteDialog({ target, open, onClose, onDeleted }) {
  const {
    value: confirmation,
    setValue: setConfirmation,
    state,
    submit,
  } = useDialogForm(open, '', async () => {
    /** @type {DeletedTarget | undefined} */
    const answer = await api(`/api/v1/targets/${encodeURIComponent(target.name)}`, { method: 'DELETE' });
    onDeleted(answer ?? { deleted: target.name, keptBackups: [], storeUrl: target.storeUrl });
  });
  return html`<${Dialog} id="delete-dialog" title=${`Delete ${target.name}`} open=${open} onClose=${onClose}>
    <form class="stack" onSubmit=${submit} novalidate>
      <p>The target, its schedule and its run history go. Its backups stay in the store, and are listed once it is deleted: adding the target again and importing them brings them back.</p>
      <div class="field">
        <label for="delete-confirm">Type <strong>${target.name}</strong> to confirm</label>
        <input id="delete-confirm" value=${confirmation} autocomplete="off" spellcheck=${false} onInput=${(/** @type {any} */ event) => setConfirmation(event.currentTarget.value)} />
      </div>
      <${ErrorNotice} error=${state.error} title="The target was not deleted" />
      <div class="actions">
        <button type="submit" class="button-danger" disabled=${state.busy || confirmation.trim() !== target.name}>${state.busy ? 'Deleting…' : 'Delete'}</button>
        <button type="button" class="button-quiet" onClick=${onClose}>Cancel</button>
      </div>
    </form>
  <//>`;
}

/**
 * What is left after a delete: where the kept backups are.
 * @param {{ result: DeletedTarget }} props
 */
export function DeletedNotice({ result }) {
  return html`<div class="notice notice-info" role="status" id="deleted-target">
    <p><strong>Target ${result.deleted} was deleted.</strong> ${
      result.keptBackups.length === 0
        ? 'It had no backups in its store.'
        : html`Its ${result.keptBackups.length} backup${result.keptBackups.length === 1 ? ' stays' : 's stay'} in <span class="mono wrap-anywhere">${result.storeUrl}</span>:`
    }</p>
    ${
      result.keptBackups.length > 0
        ? html`<ul class="plain kept-backups">${result.keptBackups.map(
            (backup) => html`<li key=${backup.runId}>
          <span class="mono wrap-anywhere">${(backup.storeUrl ?? result.storeUrl).replace(/\/*$/, '/')}${backup.prefix}</span> <span class="muted">(backup ${shortId(backup.runId)}, ${formatTime(backup.finishedAt)}, ${formatBytes(backup.sizeBytes)})</span>
        </li>`,
          )}</ul>`
        : null
    }
    <p><a href="#/">Back to the overview</a></p>
  </div>`;
}

/**
 * The target's life: test its connection (each check), pause or resume its schedule, edit,
 * rename, delete; each as far as the server allows it.
 * @param {{ target: Target, onChanged: () => void, onRenamed: (name: string) => void, onDeleted: (result: DeletedTarget) => void }} props
 */
export function TargetLifecycle({ target, onChanged, onRenamed, onDeleted }) {
  const [state, setState] = useState(/** @type {{ busy: boolean, error: ApiError | null, test: TargetTest | null }} */ ({ busy: false, error: null, test: null }));
  const [dialog, setDialog] = useState(/** @type {'rename' | 'delete' | null} */ (null));
  const path = `/api/v1/targets/${encodeURIComponent(target.name)}`;
  const actions = target.actions;
  /** @param {() => Promise<void>} work */
  const act = async (work) => {
    setState((current) => ({ ...current, busy: true, error: null }));
    try {
      await work();
      setState((current) => ({ ...current, busy: false }));
    } catch (error) {
      setState((current) => ({ ...current, busy: false, error: /** @type {ApiError} */ (error) }));
    }
  };
  const test = () =>
    act(async () => {
      setState((current) => ({ ...current, test: null }));
      /** @type {TargetTest} */
      const result = await api(`${path}/test`, { method: 'POST' });
      setState((current) => ({ ...current, test: result }));
    });
  const setPaused = (/** @type {boolean} */ paused) =>
    act(async () => {
      await api(path, { method: 'PATCH', body: { paused } });
      onChanged();
    });
  return html`<section class="card" aria-labelledby="manage-title" id="manage">
    <h2 id="manage-title">Manage</h2>
    <p>${
      target.paused
        ? html`<span class="status status-cancelled" data-paused="true">schedule paused</span> No scheduled backups or drills are queued; backing up by hand still works.`
        : target.schedule
          ? 'The schedule is running.'
          : 'Backed up on demand only.'
    }</p>
    <${ActionBar} busy=${state.busy} actions=${[
      { id: 'action-test', label: state.busy && !state.test ? 'Testing…' : 'Test connection', verdict: actions?.test, onClick: test },
      target.paused
        ? { id: 'action-resume', label: 'Resume schedule', verdict: actions?.pause, onClick: () => setPaused(false) }
        : { id: 'action-pause', label: 'Pause schedule', verdict: actions?.pause, onClick: () => setPaused(true) },
      { id: 'action-edit', label: 'Edit', quiet: true, verdict: actions?.edit, href: `#/targets/${encodeURIComponent(target.name)}/edit` },
      { id: 'action-rename', label: 'Rename…', quiet: true, verdict: actions?.edit, onClick: () => setDialog('rename') },
      { id: 'action-delete', label: 'Delete…', danger: true, verdict: actions?.delete, onClick: () => setDialog('delete') },
    ]} />
    <${ErrorNotice} error=${state.error} title="That did not work" />
    ${state.test ? html`<${TestResult} result=${state.test} />` : null}
    ${
      actions?.edit.allowed
        ? html`<${RenameDialog} target=${target} open=${dialog === 'rename'} onClose=${() => setDialog(null)} onRenamed=${(/** @type {string} */ name) => {
            setDialog(null);
            onRenamed(name);
          }} />`
        : null
    }
    ${
      actions?.delete.allowed
        ? html`<${DeleteDialog} target=${target} open=${dialog === 'delete'} onClose=${() => setDialog(null)} onDeleted=${(/** @type {DeletedTarget} */ result) => {
            setDialog(null);
            onDeleted(result);
          }} />`
        : null
    }
  </section>`;
}
