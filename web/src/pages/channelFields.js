// @ts-check
import { FieldError } from '../components.js';
import { html } from '../html.js';
import { channelKinds } from '../serverConstants.js';

/**
 * The settings of a notification channel as form fields, per kind, shared by the channels
 * page and the target form; and the request fields made from them. Secrets are write-only:
 * their inputs start blank, and a blank secret on edit keeps the stored one.
 */

/** @typedef {import('../types').ChannelSettingsView} ChannelSettingsView */

/** @type {Record<import('../serverConstants.js').ChannelKind, string>} */
const kindLabels = {
  email: 'E-mail (SMTP)',
  discord: 'Discord',
  telegram: 'Telegram',
  teams: 'Microsoft Teams',
  ntfy: 'ntfy',
  slack: 'Slack',
  webhook: 'Webhook',
};

/** Every kind with its label, in the server's order. */
export const channelKindLabels = channelKinds.map((kind) => /** @type {const} */ ([kind, kindLabels[kind]]));

/**
 * @typedef {object} ChannelValues
 * @property {string} kind
 * @property {string} url
 * @property {string} token
 * @property {string} botToken
 * @property {string} chatId
 * @property {string} apiUrl
 * @property {string} host
 * @property {string} port
 * @property {string} security
 * @property {string} username
 * @property {string} password
 * @property {string} from
 * @property {string} to
 */

/** @param {string} [kind] @returns {ChannelValues} */
export function emptyChannel(kind = 'email') {
  return { kind, url: '', token: '', botToken: '', chatId: '', apiUrl: '', host: '', port: '', security: 'starttls', username: '', password: '', from: '', to: '' };
}

/** The form values of a stored channel: what is shown of it (its secrets stay blank). @param {ChannelSettingsView} settings */
export function channelValues(settings) {
  return {
    ...emptyChannel(settings.kind),
    chatId: settings.chatId ?? '',
    apiUrl: settings.apiUrl ?? '',
    host: settings.host ?? '',
    port: settings.port === undefined ? '' : String(settings.port),
    security: settings.security ?? 'starttls',
    username: settings.username ?? '',
    from: settings.from ?? '',
    to: (settings.to ?? []).join('\n'),
  };
}

/**
 * The settings to send: what is filled in for the kind (a blank secret is left out: kept).
 * @param {ChannelValues} values
 * @returns {Record<string, unknown>}
 */
export function channelBody(values) {
  /** @type {Record<string, unknown>} */
  const body = { kind: values.kind };
  const put = (/** @type {string} */ key, /** @type {string} */ value) => {
    if (value.trim() !== '') body[key] = value.trim();
  };
  if (['webhook', 'slack', 'discord', 'teams', 'ntfy'].includes(values.kind)) put('url', values.url);
  if (values.kind === 'ntfy') put('token', values.token);
  if (values.kind === 'telegram') {
    put('botToken', values.botToken);
    put('chatId', values.chatId);
    put('apiUrl', values.apiUrl);
  }
  if (values.kind === 'email') {
    put('host', values.host);
    if (values.port.trim() !== '') body.port = /^\d+$/.test(values.port.trim()) ? Number(values.port.trim()) : values.port.trim();
    body.security = values.security;
    put('username', values.username);
    put('password', values.password);
    put('from', values.from);
    const to = values.to.split(/[\s,;]+/).filter(Boolean);
    if (to.length > 0) body.to = to;
  }
  return body;
}

/** Whether anything that says where to send was filled in (a new channel is being added). @param {ChannelValues} values */
export function channelStarted(values) {
  return [values.url, values.botToken, values.chatId, values.host, values.from, values.to].some((value) => value.trim() !== '');
}

/**
 * The inputs of one kind. Ids are `${prefix}-${setting}`, so an API error at `…url` lands at `${prefix}-url`.
 * @param {{ prefix: string, values: ChannelValues, onChange: (values: ChannelValues) => void, errors: Record<string, string>, editing?: boolean }} props
 */
export function ChannelFields({ prefix, values, onChange, errors, editing = false }) {
  const keep = editing ? ' (blank keeps the stored one)' : '';
  /**
   * @param {keyof ChannelValues} key
   * @param {string} label
   * @param {{ secret?: boolean, placeholder?: string, help?: string, type?: string, multiline?: boolean }} [options]
   */
  const input = (key, label, options = {}) => {
    const id = `${prefix}-${key}`;
    const helpId = options.help ? `${id}-help` : null;
    const describedBy = [errors[id] ? `${id}-error` : null, helpId].filter(Boolean).join(' ') || undefined;
    const common = {
      id,
      value: values[key],
      autocomplete: 'off',
      spellcheck: false,
      placeholder: options.placeholder ?? '',
      'aria-invalid': errors[id] ? 'true' : undefined,
      'aria-describedby': describedBy,
      onInput: (/** @type {any} */ event) => onChange({ ...values, [key]: event.currentTarget.value }),
    };
    return html`<div class="field">
      <label for=${id}>${label}${options.secret ? ` (write-only${keep})` : ''}</label>
      ${options.multiline ? html`<textarea rows="2" ...${common}></textarea>` : html`<input type=${options.secret ? 'password' : (options.type ?? 'text')} ...${common} />`}
      <${FieldError} id=${`${id}-error`} message=${errors[id]} />
      ${options.help ? html`<p class="help" id=${helpId}>${options.help}</p>` : null}
    </div>`;
  };
  switch (values.kind) {
    case 'email':
      return html`<div class="field-row">
          ${input('host', 'SMTP server', { placeholder: 'smtp.example.com' })}
          ${input('port', 'Port', { placeholder: values.security === 'tls' ? '465' : values.security === 'none' ? '25' : '587', type: 'number' })}
          <div class="field">
            <label for=${`${prefix}-security`}>Security</label>
            <select id=${`${prefix}-security`} value=${values.security} onChange=${(/** @type {any} */ event) => onChange({ ...values, security: event.currentTarget.value })}>
              <option value="starttls">STARTTLS (required)</option>
              <option value="tls">TLS from the start</option>
              <option value="none">None (a local relay only)</option>
            </select>
          </div>
        </div>
        <div class="field-row">
          ${input('username', 'SMTP user')}
          ${input('password', 'SMTP password', { secret: true })}
        </div>
        ${input('from', 'From', { placeholder: 'backstop@example.com' })}
        ${input('to', 'To (one address per line)', { multiline: true, placeholder: 'ops@example.com' })}`;
    case 'telegram':
      return html`${input('botToken', 'Bot token', { secret: true, help: 'From @BotFather: 123456:ABC…' })}
        ${input('chatId', 'Chat id', { placeholder: '-1001234567890 or @channelname' })}
        ${input('apiUrl', 'Bot API address', { placeholder: 'https://api.telegram.org', help: 'Leave blank for Telegram itself.' })}`;
    case 'ntfy':
      return html`${input('url', 'Its URL', { secret: true, placeholder: 'https://ntfy.sh/your-topic', help: 'The topic URL: anyone who knows a public topic can read it, so it is kept secret.' })}
        ${input('token', 'Access token', { secret: true, help: 'For a protected topic (tk_…); blank for none.' })}`;
    default:
      return input('url', 'Its URL', {
        secret: true,
        placeholder: 'https://…',
        help:
          values.kind === 'webhook'
            ? 'A new webhook gets a signing secret, shown once after saving.'
            : values.kind === 'teams'
              ? 'The URL of a Teams workflow "When a Teams webhook request is received".'
              : values.kind === 'discord'
                ? "The channel's webhook URL (Integrations → Webhooks)."
                : "Slack's incoming-webhook URL.",
      });
  }
}

/**
 * How a channel's deliveries are going, in words.
 * @param {import('../types').ChannelHealth | undefined} health
 */
export function healthText(health) {
  if (!health) return '';
  if (health.failingSince) return `Failing since ${new Date(health.failingSince).toLocaleString()}: ${health.lastError ?? 'unknown error'}`;
  if (health.lastDeliveredAt) return `Working: last delivered ${new Date(health.lastDeliveredAt).toLocaleString()}`;
  return 'Nothing sent yet';
}
