// @ts-check
import { useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';
import { ErrorNotice, FieldError, Loading, PageHeading } from '../components.js';
import { html } from '../html.js';
import { usePageTitle, useResource } from '../hooks.js';
import { can } from '../session.js';
import { ChannelFields, channelBody, channelKindLabels, channelValues, emptyChannel, healthText } from './channelFields.js';

/** @typedef {import('../types').SharedChannel} SharedChannel */
/** @typedef {import('../types').TestNotification} TestNotification */
/** @typedef {import('./channelFields.js').ChannelValues} ChannelValues */

/**
 * One shared channel in the list: how it is doing, who uses it, and a test, an edit and a
 * removal (admins; this page is theirs).
 * @param {{ channel: SharedChannel, onEdit: () => void, onChanged: () => void }} props
 */
function ChannelRow({ channel, onEdit, onChanged }) {
  const [state, setState] = useState(/** @type {{ busy: boolean, error: Error | null, result: TestNotification | null }} */ ({ busy: false, error: null, result: null }));
  const path = `/api/v1/channels/${encodeURIComponent(channel.name)}`;
  const test = async () => {
    setState({ busy: true, error: null, result: null });
    try {
      setState({ busy: false, error: null, result: await api(`${path}/test`, { method: 'POST' }) });
      onChanged();
    } catch (error) {
      setState({ busy: false, error: /** @type {Error} */ (error), result: null });
    }
  };
  const remove = async () => {
    setState({ busy: true, error: null, result: null });
    try {
      await api(path, { method: 'DELETE' });
      onChanged();
    } catch (error) {
      setState({ busy: false, error: /** @type {Error} */ (error), result: null });
    }
  };
  const failing = Boolean(channel.health.failingSince);
  return html`<tr data-channel=${channel.name}>
    <td data-label="Name"><strong>${channel.name}</strong></td>
    <td data-label="Kind">${channelKindLabels.find(([kind]) => kind === channel.kind)?.[1] ?? channel.kind}</td>
    <td data-label="Used by">${channel.usedBy.length ? channel.usedBy.map((name, index) => html`${index ? ', ' : ''}<a href=${`#/targets/${encodeURIComponent(name)}`}>${name}</a>`) : html`<span class="muted">no target</span>`}</td>
    <td data-label="Status" class=${failing ? 'channel-bad' : ''}>${healthText(channel.health)}</td>
    <td data-label="Actions">
      <button type="button" class="button-quiet button-small" disabled=${state.busy} onClick=${test}>${state.busy ? 'Sending…' : 'Send test'}</button>
      <button type="button" class="button-quiet button-small" onClick=${onEdit}>Edit</button>
      <button type="button" class="button-quiet button-small" disabled=${state.busy || channel.usedBy.length > 0}
        title=${channel.usedBy.length > 0 ? 'Used by a target: remove it there first' : undefined} onClick=${remove}>Remove</button>
      ${
        state.result
          ? html`<p class=${state.result.delivered ? 'channel-result channel-ok' : 'channel-result channel-bad'} role="status">${
              state.result.delivered
                ? `Delivered${state.result.status ? ` (the service answered ${state.result.status})` : ''}.`
                : `Not delivered: ${state.result.error ?? 'no answer'}.`
            }</p>`
          : null
      }
      <${ErrorNotice} error=${state.error} title="That did not work" />
    </td>
  </tr>`;
}

/**
 * Add a channel, or change one (`editing`): its secrets are never shown, and left blank they stay.
 * @param {{ editing: SharedChannel | null, onSaved: () => void, onCancel: () => void }} props
 */
function ChannelForm({ editing, onSaved, onCancel }) {
  const [name, setName] = useState(editing?.name ?? '');
  const [values, setValues] = useState(/** @type {ChannelValues} */ (editing ? channelValues(editing.settings) : emptyChannel()));
  const [state, setState] = useState(/** @type {{ busy: boolean, error: Error | null }} */ ({ busy: false, error: null }));
  /** @type {Record<string, string>} */
  const errors = {};
  const problems = state.error instanceof ApiError ? state.error.fields : [];
  for (const problem of problems) errors[problem.field === 'name' ? 'channel-form-name' : `channel-form-${problem.field}`] = problem.message;
  const submit = async (/** @type {Event} */ event) => {
    event.preventDefault();
    setState({ busy: true, error: null });
    try {
      const body = channelBody(values);
      if (editing) await api(`/api/v1/channels/${encodeURIComponent(editing.name)}`, { method: 'PATCH', body });
      else await api('/api/v1/channels', { method: 'POST', body: { name: name.trim(), ...body } });
      setState({ busy: false, error: null });
      onSaved();
    } catch (error) {
      setState({ busy: false, error: /** @type {Error} */ (error) });
    }
  };
  return html`<section class="card" aria-labelledby="channel-form-title">
    <h2 id="channel-form-title">${editing ? `Change ${editing.name}` : 'Add a channel'}</h2>
    <form class="stack" onSubmit=${submit} novalidate>
      ${state.error && problems.length === 0 ? html`<${ErrorNotice} error=${state.error} title="The channel was not saved" />` : null}
      ${problems.length > 0 ? html`<div class="notice notice-error" role="alert"><strong>The channel was not saved.</strong> Each field at fault says why.</div>` : null}
      <div class="field-row">
        ${
          editing
            ? null
            : html`<div class="field">
          <label for="channel-form-name">Name</label>
          <input id="channel-form-name" value=${name} autocomplete="off" spellcheck=${false} placeholder="ops-mail"
            aria-invalid=${errors['channel-form-name'] ? 'true' : undefined} onInput=${(/** @type {any} */ event) => setName(event.currentTarget.value)} />
          <${FieldError} id="channel-form-name-error" message=${errors['channel-form-name']} />
        </div>`
        }
        <div class="field">
          <label for="channel-form-kind">Kind</label>
          <select id="channel-form-kind" value=${values.kind} onChange=${(/** @type {any} */ event) => setValues({ ...emptyChannel(event.currentTarget.value) })}>
            ${channelKindLabels.map(([kind, label]) => html`<option value=${kind}>${label}</option>`)}
          </select>
        </div>
      </div>
      <${ChannelFields} prefix="channel-form" values=${values} onChange=${setValues} errors=${errors} editing=${Boolean(editing) && editing?.kind === values.kind} />
      <div class="actions">
        <button type="submit" disabled=${state.busy}>${state.busy ? 'Saving…' : editing ? 'Save changes' : 'Add the channel'}</button>
        ${editing ? html`<button type="button" class="button-quiet" onClick=${onCancel}>Cancel</button>` : null}
      </div>
    </form>
  </section>`;
}

/**
 * Shared notification channels: e-mail, Discord, Telegram, Teams, ntfy, Slack and webhooks
 * that targets use by name. Admins only, as in the API.
 * @param {{ me: import('../types').Me }} props
 */
export function ChannelsPage({ me }) {
  usePageTitle('Channels');
  const admin = can(me, 'admin');
  const channels = useResource(() => (admin ? api('/api/v1/channels') : Promise.resolve({ items: [] })), [admin]);
  const [editing, setEditing] = useState(/** @type {SharedChannel | null} */ (null));
  const [formKey, setFormKey] = useState(0);
  if (!admin) return html`<${PageHeading}>Channels<//><p>Only an admin token can see and change notification channels.</p>`;
  const saved = () => {
    setEditing(null);
    setFormKey((key) => key + 1);
    void channels.reload();
  };
  /** @type {SharedChannel[]} */
  const items = channels.data?.items ?? [];
  return html`
    <${PageHeading}>Channels<//>
    <p>Where notifications go. A target uses a channel by name (in its form, under Notifications), so one mailbox or chat serves many targets; its passwords, tokens and URLs are stored and never shown again.</p>
    <${ErrorNotice} error=${channels.error} title="The channels could not be loaded" />
    ${channels.data === undefined && !channels.error ? html`<${Loading} />` : null}
    ${channels.data && items.length === 0 ? html`<p>No shared channels yet.</p>` : null}
    ${
      items.length
        ? html`<table class="stack-table channels-table">
          <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Used by</th><th scope="col">Status</th><th scope="col">Actions</th></tr></thead>
          <tbody>${items.map(
            (channel) => html`<${ChannelRow} key=${channel.id} channel=${channel} onEdit=${() => setEditing(channel)} onChanged=${() => void channels.reload()} />`,
          )}</tbody>
        </table>`
        : null
    }
    <${ChannelForm} key=${editing ? `edit-${editing.name}` : `new-${formKey}`} editing=${editing} onSaved=${saved} onCancel=${() => setEditing(null)} />`;
}
