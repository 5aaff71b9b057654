// @ts-check
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError } from '../api.js';
import { ErrorNotice, FieldError, Loading, PageHeading } from '../components.js';
import { plainMessage } from '../errorText.js';
import { html } from '../html.js';
import { usePageTitle } from '../hooks.js';
import { notificationEvents } from '../serverConstants.js';
import { can } from '../session.js';
import { ChannelFields, channelKindLabels, emptyChannel } from './channelFields.js';
import { addingChannel, bodyFrom, emptyForm, formFrom, generateSecret, placeFieldErrors, retentionFields } from './targetFormModel.js';

/** @typedef {import('../types').Target} Target */
/** @typedef {import('./targetFormModel.js').TargetForm} TargetForm */

/**
 * The signing secret of a webhook just created, shown once: the server never shows it again.
 * @param {{ name: string, secret: string }} props
 */
function SecretOnce({ name, secret }) {
  const [copied, setCopied] = useState(/** @type {'no' | 'yes' | 'failed'} */ ('no'));
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied('yes');
    } catch {
      // Without clipboard access (a page not served over HTTPS), the text is selected instead.
      /** @type {HTMLInputElement | null} */ (document.getElementById('webhook-secret'))?.select();
      setCopied('failed');
    }
  };
  return html`
    <${PageHeading}>Target ${name} saved<//>
    <section class="card" aria-labelledby="secret-title" id="secret-once">
      <h2 id="secret-title">The webhook's signing secret</h2>
      <p>Every delivery to the new webhook is signed with this secret. Copy it into the receiver now: <strong>it is not shown again</strong>.</p>
      <div class="field">
        <label for="webhook-secret">Signing secret</label>
        <input id="webhook-secret" class="mono" readonly value=${secret} onFocus=${(/** @type {any} */ event) => event.currentTarget.select()} />
      </div>
      <div class="actions">
        <button type="button" onClick=${copy}>Copy the secret</button>
        <span role="status" class="muted">${copied === 'yes' ? 'Copied.' : copied === 'failed' ? 'Selected: copy it with your keyboard.' : ''}</span>
      </div>
      <p class="help">A receiver checks the header X-Backstop-Signature, "sha256=" and the hex HMAC-SHA256 of the X-Backstop-Timestamp header, a dot and the request body, keyed with this secret.</p>
      <p><a class="button button-quiet" href=${`#/targets/${encodeURIComponent(name)}`}>Continue to ${name}</a></p>
    </section>`;
}

/**
 * Create a target, or edit one (`name` given): every field, each refusal of the API shown at
 * its field, all at once. Admins only; the API refuses anyone else anyway.
 * @param {{ me: import('../types').Me, name?: string }} props
 */
export function TargetFormPage({ me, name }) {
  const editing = Boolean(name);
  usePageTitle(editing ? `Edit ${name}` : 'New target');
  const [existing, setExisting] = useState(/** @type {Target | null} */ (null));
  const [form, setForm] = useState(emptyForm);
  const [state, setState] = useState(/** @type {{ busy: boolean, error: ApiError | Error | null, loadError: Error | null }} */ ({ busy: false, error: null, loadError: null }));
  const [saved, setSaved] = useState(/** @type {{ name: string, secret: string } | null} */ (null));
  const [shared, setShared] = useState(/** @type {import('../types').SharedChannel[]} */ ([]));

  useEffect(() => {
    if (!can(me, 'admin')) return;
    // The shared channels a target may use; without them the form still adds its own.
    api('/api/v1/channels')
      .then((/** @type {{ items: import('../types').SharedChannel[] }} */ answer) => setShared(answer.items))
      .catch(() => setShared([]));
  }, []);

  useEffect(() => {
    if (!editing) return;
    api(`/api/v1/targets/${encodeURIComponent(/** @type {string} */ (name))}`)
      .then((/** @type {Target} */ target) => {
        setExisting(target);
        setForm(formFrom(target));
      })
      .catch((error) => setState((current) => ({ ...current, loadError: error })));
  }, [name]);

  if (!can(me, 'admin')) {
    return html`<${PageHeading}>${editing ? `Edit ${name}` : 'New target'}<//><p>Only an admin token can ${editing ? 'change' : 'add'} targets.</p>`;
  }
  if (saved) return html`<${SecretOnce} name=${saved.name} secret=${saved.secret} />`;
  if (state.loadError) return html`<${PageHeading}>Edit ${name}<//><${ErrorNotice} error=${state.loadError} title="This target could not be loaded" />`;
  if (editing && !existing) return html`<${PageHeading}>Edit ${name}<//><${Loading} />`;

  /** @param {Partial<TargetForm>} patch */
  const update = (patch) => setForm((current) => ({ ...current, ...patch }));
  /** @param {keyof TargetForm} field */
  const set = (field) => (/** @type {any} */ event) => update({ [field]: event.currentTarget.type === 'checkbox' ? event.currentTarget.checked : event.currentTarget.value });
  const adding = addingChannel(form);
  const newChannelIndex = adding ? (existing?.notifications ?? []).filter((channel) => !form.removeChannels.includes(channel.id)).length : -1;
  const { byInput, unplaced } = state.error instanceof ApiError ? placeFieldErrors(state.error.fields, newChannelIndex) : { byInput: {}, unplaced: [] };
  const hasFieldErrors = Object.keys(byInput).length > 0;

  /** @param {Event} event */
  const submit = async (event) => {
    event.preventDefault();
    setState({ busy: true, error: null, loadError: null });
    const secret = adding && form.newChannel.kind === 'webhook' ? generateSecret() : null;
    try {
      const body = bodyFrom(form, existing, secret);
      /** @type {Target} */
      let target;
      if (!existing) target = await api('/api/v1/targets', { method: 'POST', body });
      else if (Object.keys(body).length === 0) target = existing;
      else target = await api(`/api/v1/targets/${encodeURIComponent(existing.name)}`, { method: 'PATCH', body });
      if (secret) setSaved({ name: target.name, secret });
      else location.hash = `#/targets/${encodeURIComponent(target.name)}`;
    } catch (error) {
      setState({ busy: false, error: /** @type {Error} */ (error), loadError: null });
      // The first field at fault takes focus, else the banner above the form.
      setTimeout(() => /** @type {HTMLElement | null} */ (document.querySelector('[aria-invalid="true"]') ?? document.getElementById('form-error'))?.focus(), 0);
    }
  };
  /** @param {string} eventName */
  const toggleEvent = (eventName) => {
    const on = form.newChannel.on.includes(eventName) ? form.newChannel.on.filter((e) => e !== eventName) : [...form.newChannel.on, eventName];
    update({ newChannel: { ...form.newChannel, on } });
  };
  /**
   * The attributes that tie an input to its help and its error.
   * @param {string} id
   * @param {string} [help]
   */
  const described = (id, help) => ({
    id,
    'aria-invalid': byInput[id] ? 'true' : undefined,
    'aria-describedby': [byInput[id] ? `${id}-error` : null, help ?? null].filter(Boolean).join(' ') || undefined,
  });
  /** @param {string} id */
  const error = (id) => html`<${FieldError} id=${`${id}-error`} message=${byInput[id]} />`;
  /** @param {string} id @param {keyof TargetForm} field @param {string} label @param {string} [help] */
  const checkbox = (id, field, label, help) => html`<div class="field field-check">
    <input type="checkbox" ...${described(id, help)} checked=${/** @type {boolean} */ (form[field])} onChange=${set(field)} />
    <label for=${id}>${label}</label>
    ${error(id)}
  </div>`;

  const banner =
    state.error && !hasFieldErrors
      ? html`<${ErrorNotice} error=${state.error} title="The target was not saved" />`
      : hasFieldErrors || unplaced.length > 0
        ? html`<div class="notice notice-error" role="alert">
            <strong>The target was not saved.</strong> ${hasFieldErrors ? 'Each field at fault says why.' : ''}
            ${unplaced.length > 0 ? html`<ul class="plain">${unplaced.map((problem) => html`<li><strong>${problem.field}:</strong> ${plainMessage({ message: problem.message })}</li>`)}</ul>` : null}
          </div>`
        : null;

  return html`
    <${PageHeading}>${editing ? `Edit ${name}` : 'New target'}<//>
    <form class="stack target-form" onSubmit=${submit} novalidate>
      <div id="form-error" tabindex="-1">${banner}</div>
      <fieldset>
        <legend>Database</legend>
        <div class="field">
          <label for="target-name">Name</label>
          <input required value=${form.name} onInput=${set('name')} autocomplete="off" spellcheck=${false} ...${described('target-name', 'target-name-help')} />
          ${error('target-name')}
          <p id="target-name-help" class="help">Lowercase letters, digits, ".", "_" and "-"; used in the store's folder names.${editing ? ' Renaming keeps earlier backups where they are.' : ''}</p>
        </div>
        <div class="field">
          <label for="target-database-url">Database URL${editing ? ' (leave blank to keep the stored one)' : ''}</label>
          <input type="password" required=${!editing} value=${form.databaseUrl} onInput=${set('databaseUrl')} autocomplete="off" spellcheck=${false}
            placeholder=${editing ? 'stored, never shown' : 'postgres://user:password@host:5432/database'} ...${described('target-database-url', 'target-database-url-help')} />
          ${error('target-database-url')}
          <p id="target-database-url-help" class="help">Write-only: stored in the catalog, never shown again.</p>
        </div>
        <div class="field">
          <label for="target-profile">Profile</label>
          <select value=${form.profile} onChange=${set('profile')} ...${described('target-profile')}>
            <option value="default">PostgreSQL (pg_dump, custom format)</option>
            <option value="supabase">Supabase (roles, schema and data files)</option>
            <option value="server">A whole server (its roles and every database; the URL names where it is read from)</option>
          </select>
          ${error('target-profile')}
        </div>
        ${form.profile === 'supabase' ? checkbox('target-with-storage', 'withStorage', 'Also copy the Supabase Storage files') : null}
      </fieldset>
      <fieldset>
        <legend>Where and how</legend>
        <div class="field">
          <label for="target-store">Store URL</label>
          <input value=${form.storeUrl} onInput=${set('storeUrl')} autocomplete="off" spellcheck=${false}
            placeholder=${editing ? '' : "the server's default store"} ...${described('target-store', 'target-store-help')} />
          ${error('target-store')}
          <p id="target-store-help" class="help">A folder on the server (file:///absolute/folder) or a bucket (s3://bucket/prefix?region=…); bucket credentials come from the server's environment.</p>
        </div>
        <div class="field-row">
          <div class="field">
            <label for="target-compression">Compression</label>
            <input value=${form.compression} onInput=${set('compression')} spellcheck=${false} placeholder="zstd" ...${described('target-compression', 'target-compression-help')} />
            ${error('target-compression')}
            <p id="target-compression-help" class="help">zstd, gzip or none, with an optional level (zstd:19).</p>
          </div>
          <div class="field field-narrow">
            <label for="target-max-attempts">Attempts</label>
            <input type="number" min="1" max="10" inputmode="numeric" value=${form.maxAttempts} onInput=${set('maxAttempts')} ...${described('target-max-attempts')} />
            ${error('target-max-attempts')}
          </div>
        </div>
        <div class="field">
          <label for="target-encrypt">Encryption recipients (age public keys, one per line)</label>
          <textarea rows="2" value=${form.encryptTo} onInput=${set('encryptTo')} spellcheck=${false} placeholder="age1…" ...${described('target-encrypt', 'target-encrypt-help')}></textarea>
          ${error('target-encrypt')}
          <p id="target-encrypt-help" class="help">Leave empty for no encryption. Only public keys here: restores and drills need the identity of one of them.</p>
        </div>
        ${checkbox('target-checksums', 'checksums', 'Record per-table content checksums (drills then compare contents, not only row counts)')}
        ${checkbox('target-exclusive', 'exclusive', 'One backup of this target at a time')}
        ${checkbox('target-checks', 'checks', 'Check that the database and the store can be reached before saving', 'target-checks-help')}
        <p id="target-checks-help" class="help">Leave it on unless only the machine that runs the backups can reach the database (a GitHub runner).</p>
      </fieldset>
      <fieldset>
        <legend>Schedule</legend>
        <div class="field-row">
          <div class="field">
            <label for="target-cron">Cron expression</label>
            <input value=${form.cron} onInput=${set('cron')} spellcheck=${false} placeholder="0 3 * * *" ...${described('target-cron', 'target-cron-help')} />
            ${error('target-cron')}
          </div>
          <div class="field">
            <label for="target-timezone">Time zone</label>
            <input value=${form.timezone} onInput=${set('timezone')} spellcheck=${false} ...${described('target-timezone')} />
            ${error('target-timezone')}
          </div>
        </div>
        <p id="target-cron-help" class="help">Five fields (minute hour day month weekday) or @daily; leave empty to back up on demand only.</p>
        ${editing ? checkbox('target-paused', 'paused', 'Paused: queue no scheduled backups or drills (backing up by hand still works)') : null}
      </fieldset>
      <fieldset>
        <legend>Retention</legend>
        <div class="field-row">
          ${retentionFields.map(
            ([key, label]) => html`<div class="field field-narrow">
            <label for=${`target-retention-${key}`}>${label}</label>
            <input type="number" min="0" inputmode="numeric" value=${form.retention[key]} ...${described(`target-retention-${key}`)}
              onInput=${(/** @type {any} */ event) => update({ retention: { ...form.retention, [key]: event.currentTarget.value } })} />
            ${error(`target-retention-${key}`)}
          </div>`,
          )}
        </div>
        <p class="help">Backups kept by each rule; all empty keeps every backup. The newest backup is never deleted.</p>
      </fieldset>
      <fieldset>
        <legend>Restore drills</legend>
        <div class="field-row">
          <div class="field field-narrow">
            <label for="target-verify-every">Every Nth backup</label>
            <input type="number" min="1" inputmode="numeric" value=${form.verifyEvery} onInput=${set('verifyEvery')} ...${described('target-verify-every')} />
            ${error('target-verify-every')}
          </div>
          <div class="field">
            <label for="target-verify-cron">Or on a schedule (cron)</label>
            <input value=${form.verifyCron} onInput=${set('verifyCron')} spellcheck=${false} placeholder="0 5 * * 0" ...${described('target-verify-cron')} />
            ${error('target-verify-cron')}
          </div>
          <div class="field">
            <label for="target-verify-timezone">Zone of the drill schedule</label>
            <input value=${form.verifyTimezone} onInput=${set('verifyTimezone')} spellcheck=${false} placeholder="UTC" ...${described('target-verify-timezone')} />
            ${error('target-verify-timezone')}
          </div>
        </div>
        ${checkbox('target-verify-checksums', 'verifyChecksums', 'Compare content checksums too (needs them recorded)')}
      </fieldset>
      <fieldset>
        <legend>Restores by operators</legend>
        <div class="field">
          <label for="target-restore-to">Databases operators may restore into (one per line)</label>
          <textarea rows="2" value=${form.restoreTo} onInput=${set('restoreTo')} spellcheck=${false} placeholder="db.internal:5432/app_restored" ...${described('target-restore-to', 'target-restore-to-help')}></textarea>
          ${error('target-restore-to')}
          <p id="target-restore-to-help" class="help">HOST:PORT/DATABASE, each part exact or * for any. Admins restore anywhere.</p>
        </div>
      </fieldset>
      <fieldset>
        <legend>Executed by</legend>
        ${checkbox('target-github', 'github', 'Run backups in GitHub Actions instead of Backstop workers')}
        ${
          form.github
            ? html`<div class="field-row">${
                /** @type {const} */ ([
                  ['owner', 'Owner'],
                  ['repo', 'Repository'],
                  ['workflow', 'Workflow file'],
                  ['ref', 'Branch or tag'],
                ]).map(
                  ([key, label]) => html`<div class="field">
              <label for=${`target-executor-${key}`}>${label}</label>
              <input value=${form.executor[key]} spellcheck=${false} ...${described(`target-executor-${key}`)}
                onInput=${(/** @type {any} */ event) => update({ executor: { ...form.executor, [key]: event.currentTarget.value } })} />
              ${error(`target-executor-${key}`)}
            </div>`,
                )
              }</div>`
            : null
        }
      </fieldset>
      <fieldset>
        <legend>Notifications</legend>
        ${(existing?.notifications ?? []).map(
          (channel) => html`<div class="field field-check" key=${channel.id}>
          <input id=${`remove-${channel.id}`} type="checkbox" checked=${form.removeChannels.includes(channel.id)}
            onChange=${(/** @type {any} */ event) => update({ removeChannels: event.currentTarget.checked ? [...form.removeChannels, channel.id] : form.removeChannels.filter((id) => id !== channel.id) })} />
          <label for=${`remove-${channel.id}`}>Remove the ${channel.kind === 'shared' ? `shared channel ${channel.channel}` : `${channel.kind} channel`} (on ${channel.on.map((event) => event.replace('_', ' ')).join(', ')}${channel.kind === 'shared' ? '' : '; its secrets are stored, never shown'})</label>
        </div>`,
        )}
        <div class="field-row">
          <div class="field field-narrow">
            <label for="channel-kind">New channel</label>
            <select id="channel-kind" value=${form.newChannel.kind} aria-invalid=${byInput['channel-kind'] ? 'true' : undefined}
              onChange=${(/** @type {any} */ event) => update({ newChannel: { ...emptyChannel(event.currentTarget.value), channel: '', on: form.newChannel.on } })}>
              ${channelKindLabels.map(([kind, label]) => html`<option value=${kind}>${label}</option>`)}
              <option value="shared">A shared channel (Channels page)</option>
            </select>
            ${error('channel-kind')}
          </div>
          ${
            form.newChannel.kind === 'shared'
              ? html`<div class="field">
            <label for="channel-shared">Shared channel</label>
            <select value=${form.newChannel.channel} onChange=${(/** @type {any} */ event) => update({ newChannel: { ...form.newChannel, channel: event.currentTarget.value } })}
              ...${described('channel-shared', 'channel-shared-help')}>
              <option value="">Choose one…</option>
              ${shared.map((channel) => html`<option value=${channel.name}>${channel.name} (${channel.kind})</option>`)}
            </select>
            ${error('channel-shared')}
            <p id="channel-shared-help" class="help">${shared.length ? 'One mailbox or chat for many targets: its settings live on the Channels page.' : html`No shared channels yet: add one on the <a href="#/channels">Channels page</a>.`}</p>
          </div>`
              : null
          }
        </div>
        ${
          form.newChannel.kind === 'shared'
            ? null
            : html`<${ChannelFields} prefix="channel" values=${form.newChannel} errors=${byInput}
          onChange=${(/** @type {import('./channelFields.js').ChannelValues} */ values) => update({ newChannel: { ...form.newChannel, ...values } })} />`
        }
        <div class="checks" role="group" aria-label="Events that notify the new channel">
          ${notificationEvents.map(
            (eventName) => html`<span class="field-check">
            <input id=${`channel-on-${eventName}`} type="checkbox" checked=${form.newChannel.on.includes(eventName)} onChange=${() => toggleEvent(eventName)} />
            <label for=${`channel-on-${eventName}`}>${eventName.replace('_', ' ')}</label>
          </span>`,
          )}
        </div>
        ${error('channel-on')}
      </fieldset>
      <div class="actions">
        <button type="submit" disabled=${state.busy}>${state.busy ? 'Saving…' : editing ? 'Save changes' : 'Create target'}</button>
        <a class="button button-quiet" href=${editing ? `#/targets/${encodeURIComponent(/** @type {string} */ (name))}` : '#/targets'}>Cancel</a>
      </div>
    </form>`;
}
