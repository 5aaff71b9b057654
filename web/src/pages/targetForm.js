import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorNotice, Loading, PageHeading } from '../components.js';
import { html } from '../html.js';
import { usePageTitle } from '../hooks.js';
import { can } from '../session.js';

const notificationEvents = ['failed', 'timed_out', 'recovered', 'succeeded', 'cancelled', 'verify_failed'];
const retentionFields = [
  ['keepLast', 'Keep the last'],
  ['daily', 'Daily'],
  ['weekly', 'Weekly'],
  ['monthly', 'Monthly'],
];

function emptyForm() {
  return {
    name: '',
    databaseUrl: '',
    storeUrl: '',
    profile: 'default',
    encryptTo: '',
    cron: '',
    timezone: 'UTC',
    retention: { keepLast: '', daily: '', weekly: '', monthly: '' },
    removeChannels: [],
    newChannel: { kind: 'webhook', url: '', on: ['failed', 'timed_out', 'recovered'] },
  };
}

function formFrom(target) {
  const retention = target.retention ?? {};
  return {
    ...emptyForm(),
    name: target.name,
    storeUrl: target.storeUrl,
    profile: target.options?.profile ?? 'default',
    encryptTo: (target.options?.encryptTo ?? []).join('\n'),
    cron: target.schedule?.cron ?? '',
    timezone: target.schedule?.timezone ?? 'UTC',
    retention: Object.fromEntries(retentionFields.map(([key]) => [key, retention[key] === undefined ? '' : String(retention[key])])),
  };
}

/**
 * The request body from the form. Secrets are write-only: the database URL and channel URLs
 * are never read back, so a blank URL on edit means "keep the stored one", and existing
 * channels are sent by id alone.
 */
function bodyFrom(form, existing) {
  const body = {};
  if (!existing) body.name = form.name.trim();
  if (form.databaseUrl.trim()) body.databaseUrl = form.databaseUrl.trim();
  if (form.storeUrl.trim()) body.storeUrl = form.storeUrl.trim();
  const encryptTo = form.encryptTo.split(/[\s,]+/).filter(Boolean);
  body.options = { ...(existing?.options ?? {}), profile: form.profile, encryptTo };
  body.schedule = form.cron.trim() ? { cron: form.cron.trim(), timezone: form.timezone.trim() || 'UTC' } : null;
  const retention = {};
  for (const [key] of retentionFields) {
    const raw = String(form.retention[key]).trim();
    if (raw !== '') retention[key] = Number(raw);
  }
  body.retention = Object.keys(retention).length ? retention : null;
  // `notifications` replaces the list, so it is sent only when it changes; kept channels go by
  // id alone and keep their stored URL and secret.
  const adding = form.newChannel.url.trim() !== '';
  if (adding || form.removeChannels.length > 0) {
    body.notifications = (existing?.notifications ?? []).filter((channel) => !form.removeChannels.includes(channel.id)).map(({ id, kind, on }) => ({ id, kind, on }));
    if (adding) body.notifications.push({ kind: form.newChannel.kind, url: form.newChannel.url.trim(), on: form.newChannel.on });
  }
  return body;
}

/** Create a target, or edit one (`name` given). Admins only; the API refuses anyone else anyway. */
export function TargetFormPage({ me, name }) {
  const editing = Boolean(name);
  usePageTitle(editing ? `Edit ${name}` : 'New target');
  const [existing, setExisting] = useState(null);
  const [form, setForm] = useState(emptyForm);
  const [state, setState] = useState({ busy: false, error: null, loadError: null });

  useEffect(() => {
    if (!editing) return;
    api(`/api/v1/targets/${encodeURIComponent(name)}`)
      .then((target) => {
        setExisting(target);
        setForm(formFrom(target));
      })
      .catch((error) => setState((current) => ({ ...current, loadError: error })));
  }, [name]);

  if (!can(me, 'admin')) {
    return html`<${PageHeading}>${editing ? `Edit ${name}` : 'New target'}<//><p>Only an admin token can ${editing ? 'change' : 'add'} targets.</p>`;
  }
  if (state.loadError) return html`<${PageHeading}>Edit ${name}<//><${ErrorNotice} error=${state.loadError} title="This target could not be loaded" />`;
  if (editing && !existing) return html`<${PageHeading}>Edit ${name}<//><${Loading} />`;

  const set = (field) => (event) => setForm({ ...form, [field]: event.currentTarget.value });
  const submit = async (event) => {
    event.preventDefault();
    setState({ busy: true, error: null, loadError: null });
    try {
      const saved = editing
        ? await api(`/api/v1/targets/${encodeURIComponent(name)}`, { method: 'PATCH', body: bodyFrom(form, existing) })
        : await api('/api/v1/targets', { method: 'POST', body: bodyFrom(form, null) });
      location.hash = `#/targets/${encodeURIComponent(saved.name)}`;
    } catch (error) {
      setState({ busy: false, error, loadError: null });
      document.getElementById('form-error')?.focus();
    }
  };
  const toggleEvent = (eventName) => {
    const on = form.newChannel.on.includes(eventName) ? form.newChannel.on.filter((e) => e !== eventName) : [...form.newChannel.on, eventName];
    setForm({ ...form, newChannel: { ...form.newChannel, on } });
  };

  return html`
    <${PageHeading}>${editing ? `Edit ${name}` : 'New target'}<//>
    <form class="stack target-form" onSubmit=${submit} novalidate>
      <div id="form-error" tabindex="-1"><${ErrorNotice} error=${state.error} title="The target was not saved" /></div>
      <fieldset>
        <legend>Database</legend>
        ${
          editing
            ? null
            : html`<div class="field">
              <label for="target-name">Name</label>
              <input id="target-name" required value=${form.name} onInput=${set('name')} autocomplete="off" spellcheck="false" aria-describedby="target-name-help" />
              <p id="target-name-help" class="help">Lowercase letters, digits, ".", "_" and "-"; used in the store's folder names.</p>
            </div>`
        }
        <div class="field">
          <label for="target-database-url">Database URL${editing ? ' (leave blank to keep the stored one)' : ''}</label>
          <input id="target-database-url" type="password" required=${!editing} value=${form.databaseUrl} onInput=${set('databaseUrl')} autocomplete="off" spellcheck="false"
            placeholder=${editing ? 'stored, never shown' : 'postgres://user:password@host:5432/database'} aria-describedby="target-database-url-help" />
          <p id="target-database-url-help" class="help">Write-only: stored in the catalog, never shown again.</p>
        </div>
        <div class="field">
          <label for="target-profile">Profile</label>
          <select id="target-profile" value=${form.profile} onChange=${set('profile')}>
            <option value="default">PostgreSQL (pg_dump, custom format)</option>
            <option value="supabase">Supabase (roles, schema and data files)</option>
          </select>
        </div>
      </fieldset>
      <fieldset>
        <legend>Where and how</legend>
        <div class="field">
          <label for="target-store">Store URL</label>
          <input id="target-store" value=${form.storeUrl} onInput=${set('storeUrl')} autocomplete="off" spellcheck="false"
            placeholder=${editing ? '' : "the server's default store"} aria-describedby="target-store-help" />
          <p id="target-store-help" class="help"><code>file:///absolute/folder</code> or <code>s3://bucket/prefix?region=…</code>; S3 credentials come from the server's environment.</p>
        </div>
        <div class="field">
          <label for="target-encrypt">Encryption recipients (age public keys, one per line)</label>
          <textarea id="target-encrypt" rows="2" value=${form.encryptTo} onInput=${set('encryptTo')} spellcheck="false" placeholder="age1…"></textarea>
          <p class="help">Leave empty for no encryption. Only public keys here; the identity is needed to restore.</p>
        </div>
      </fieldset>
      <fieldset>
        <legend>Schedule</legend>
        <div class="field-row">
          <div class="field">
            <label for="target-cron">Cron expression</label>
            <input id="target-cron" value=${form.cron} onInput=${set('cron')} spellcheck="false" placeholder="0 3 * * *" aria-describedby="target-cron-help" />
          </div>
          <div class="field">
            <label for="target-timezone">Time zone</label>
            <input id="target-timezone" value=${form.timezone} onInput=${set('timezone')} spellcheck="false" />
          </div>
        </div>
        <p id="target-cron-help" class="help">Five fields (minute hour day month weekday) or @daily; leave empty to back up on demand only.</p>
      </fieldset>
      <fieldset>
        <legend>Retention</legend>
        <div class="field-row">
          ${retentionFields.map(
            ([key, label]) => html`<div class="field field-narrow">
            <label for=${`target-retention-${key}`}>${label}</label>
            <input id=${`target-retention-${key}`} type="number" min="0" inputmode="numeric" value=${form.retention[key]}
              onInput=${(event) => setForm({ ...form, retention: { ...form.retention, [key]: event.currentTarget.value } })} />
          </div>`,
          )}
        </div>
        <p class="help">Backups kept by each rule; all empty keeps every backup. The newest backup is never deleted.</p>
      </fieldset>
      <fieldset>
        <legend>Notifications</legend>
        ${(existing?.notifications ?? []).map(
          (channel) => html`<div class="field field-check" key=${channel.id}>
          <input id=${`remove-${channel.id}`} type="checkbox" checked=${form.removeChannels.includes(channel.id)}
            onChange=${(event) => setForm({ ...form, removeChannels: event.currentTarget.checked ? [...form.removeChannels, channel.id] : form.removeChannels.filter((id) => id !== channel.id) })} />
          <label for=${`remove-${channel.id}`}>Remove the ${channel.kind} channel (on ${channel.on.join(', ')}; its URL is stored, never shown)</label>
        </div>`,
        )}
        <div class="field-row">
          <div class="field field-narrow">
            <label for="channel-kind">New channel</label>
            <select id="channel-kind" value=${form.newChannel.kind} onChange=${(event) => setForm({ ...form, newChannel: { ...form.newChannel, kind: event.currentTarget.value } })}>
              <option value="webhook">Webhook</option>
              <option value="slack">Slack</option>
            </select>
          </div>
          <div class="field">
            <label for="channel-url">Its URL (write-only)</label>
            <input id="channel-url" type="password" autocomplete="off" value=${form.newChannel.url} placeholder="https://…"
              onInput=${(event) => setForm({ ...form, newChannel: { ...form.newChannel, url: event.currentTarget.value } })} />
          </div>
        </div>
        <div class="checks" role="group" aria-label="Events that notify the new channel">
          ${notificationEvents.map(
            (eventName) => html`<span class="field-check">
            <input id=${`channel-on-${eventName}`} type="checkbox" checked=${form.newChannel.on.includes(eventName)} onChange=${() => toggleEvent(eventName)} />
            <label for=${`channel-on-${eventName}`}>${eventName.replace('_', ' ')}</label>
          </span>`,
          )}
        </div>
      </fieldset>
      <div class="actions">
        <button type="submit" disabled=${state.busy}>${state.busy ? 'Saving…' : editing ? 'Save changes' : 'Create target'}</button>
        <a class="button button-quiet" href=${editing ? `#/targets/${encodeURIComponent(name)}` : '#/targets'}>Cancel</a>
      </div>
    </form>`;
}
