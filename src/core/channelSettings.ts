import { z } from 'zod';
import { BackstopError, type FieldProblem } from './errors.ts';
import { invalidInput } from './inputProblems.ts';
import { isHttpUrl } from './notificationChannels.ts';

/**
 * What a notification channel is: its kind and the settings that kind needs, the same whether
 * the channel belongs to one target or is a shared, named channel many targets use. Some
 * settings are secrets (a webhook URL is a credential: whoever holds it posts to the channel):
 * they are stored, sent to the service, and never returned, printed or logged.
 */

export const channelKinds = ['webhook', 'slack', 'email', 'discord', 'telegram', 'teams', 'ntfy'] as const;
export type ChannelKind = (typeof channelKinds)[number];

export const smtpSecurityModes = ['starttls', 'tls', 'none'] as const;
export type SmtpSecurity = (typeof smtpSecurityModes)[number];

/** Where Telegram's Bot API is when a channel does not say (a test points it at a local server). */
export const TELEGRAM_API_URL = 'https://api.telegram.org';

/** A shared channel's name: what targets refer to it by. */
export const channelNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, { error: 'must be 1 to 63 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit' });

/** A channel's settings as stored (secrets included). */
export interface ChannelSettings {
  kind: ChannelKind;
  /** webhook, slack, discord, teams: the URL to POST to; ntfy: the topic URL. Secret. */
  url?: string;
  /** webhook: HMAC signing secret. Secret. */
  secret?: string;
  /** ntfy: access token sent as `Authorization: Bearer`. Secret. */
  token?: string;
  /** telegram: the bot token. Secret. */
  botToken?: string;
  /** telegram: the chat (id or @channelname). */
  chatId?: string;
  /** telegram: the Bot API's base URL (default https://api.telegram.org). */
  apiUrl?: string;
  /** email: SMTP server. */
  host?: string;
  port?: number;
  security?: SmtpSecurity;
  username?: string;
  /** email: SMTP password. Secret. */
  password?: string;
  from?: string;
  to?: string[];
}

/** The settings that are secrets: write-only everywhere. */
export const secretSettings = ['url', 'secret', 'token', 'botToken', 'password'] as const;
export type SecretSetting = (typeof secretSettings)[number];

/** What each kind needs (after a merge with what is stored). */
const requiredSettings: Record<ChannelKind, (keyof ChannelSettings)[]> = {
  webhook: ['url'],
  slack: ['url'],
  discord: ['url'],
  teams: ['url'],
  ntfy: ['url'],
  telegram: ['botToken', 'chatId'],
  email: ['host', 'from', 'to'],
};

/** What each kind may have; anything else is refused so a typo is not silently ignored. */
const allowedSettings: Record<ChannelKind, (keyof ChannelSettings)[]> = {
  webhook: ['url', 'secret'],
  slack: ['url'],
  discord: ['url'],
  teams: ['url'],
  ntfy: ['url', 'token'],
  telegram: ['botToken', 'chatId', 'apiUrl'],
  email: ['host', 'port', 'security', 'username', 'password', 'from', 'to'],
};

/** URL-valued settings and how a person would call them in a message. */
export const urlSettingNames: Partial<Record<ChannelKind, string>> = {
  webhook: 'webhook URL',
  slack: 'Slack incoming-webhook URL',
  discord: 'Discord webhook URL',
  teams: 'Teams workflow URL',
  ntfy: 'ntfy topic URL',
};

/** A channel URL must be http(s); the URL itself is a secret and is not repeated in the message. */
export function assertHttpUrl(raw: string, what: string): void {
  if (!isHttpUrl(raw)) {
    throw new BackstopError('INVALID_INPUT', `The ${what} is not an http:// or https:// URL. Pass the full URL, e.g. https://hooks.example.com/backstop.`);
  }
}

const httpUrl = (what: string) =>
  z
    .string()
    .min(1)
    .max(2048)
    .superRefine((value, ctx) => {
      try {
        assertHttpUrl(value, what);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message, input: value });
      }
    });

const emailAddress = z
  .string()
  .max(320)
  .regex(/^[^\s@<>,;"]+@[^\s@<>,;"]+$/, { error: 'must be an e-mail address such as ops@example.com' });

/**
 * The settings a caller may send, every one optional: which are needed depends on the kind and
 * on what is already stored (a secret left out keeps the stored one; `null` removes an
 * optional one). `checkChannelSettings` says what is missing once merged.
 */
export const channelSettingsFields = {
  url: httpUrl('channel URL')
    .optional()
    .meta({ writeOnly: true, description: 'Secret, never returned. webhook, slack, discord, teams: the URL to POST to; ntfy: the topic URL (https://ntfy.sh/TOPIC).' }),
  secret: z.string().min(16).max(256).nullable().optional().meta({ writeOnly: true, description: 'Secret, never returned: signs webhook deliveries. null removes it.' }),
  token: z.string().min(1).max(512).nullable().optional().meta({ writeOnly: true, description: 'Secret, never returned: ntfy access token (Authorization: Bearer). null removes it.' }),
  botToken: z
    .string()
    .regex(/^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$/, { error: 'must be a Telegram bot token such as 123456:ABC-DEF… (from @BotFather)' })
    .optional()
    .meta({ writeOnly: true, description: 'Secret, never returned: the Telegram bot token.' }),
  chatId: z
    .string()
    .regex(/^(-?[0-9]{1,20}|@[A-Za-z0-9_]{4,64})$/, { error: 'must be a chat id (digits, - for groups) or @channelname' })
    .optional()
    .meta({ description: 'telegram: the chat to post to.' }),
  apiUrl: httpUrl('Telegram API URL')
    .nullable()
    .optional()
    .meta({ description: `telegram: the Bot API's base URL (default ${TELEGRAM_API_URL}). null restores the default.` }),
  host: z
    .string()
    .regex(/^[A-Za-z0-9.:[\]-]{1,253}$/, { error: 'must be a host name or address' })
    .optional()
    .meta({ description: 'email: the SMTP server.' }),
  port: z.number().int().min(1).max(65535).optional().meta({ description: 'email: SMTP port (default 587 for starttls, 465 for tls, 25 for none).' }),
  security: z
    .enum(smtpSecurityModes)
    .optional()
    .meta({ description: 'email: starttls (default: upgrade required), tls (implicit TLS, port 465) or none (plain text, local relays only).' }),
  username: z.string().min(1).max(256).nullable().optional().meta({ description: 'email: SMTP user name (with password). null removes it.' }),
  password: z.string().min(1).max(512).nullable().optional().meta({ writeOnly: true, description: 'Secret, never returned: SMTP password. null removes it.' }),
  from: emailAddress.optional().meta({ description: 'email: the sender address.' }),
  to: z.array(emailAddress).min(1).max(50).optional().meta({ description: 'email: recipients.' }),
};

export const channelSettingsInput = z.strictObject({ kind: z.enum(channelKinds), ...channelSettingsFields });
export type ChannelSettingsInput = z.input<typeof channelSettingsInput>;
type ParsedSettings = z.output<typeof channelSettingsInput>;

/**
 * The settings to store from the ones given and the stored ones: a setting left out keeps its
 * stored value when the kind is unchanged, null removes it. Reports every missing or foreign
 * setting at once, each at `prefix` + its name.
 */
export function mergeChannelSettings(input: ParsedSettings, stored: ChannelSettings | null, prefix = ''): ChannelSettings {
  const base: Partial<ChannelSettings> = stored && stored.kind === input.kind ? { ...stored } : {};
  const merged: Record<string, unknown> = { ...base, kind: input.kind };
  for (const [key, value] of Object.entries(input)) {
    if (key === 'kind' || value === undefined) continue;
    if (value === null) delete merged[key];
    else merged[key] = value;
  }
  const settings = merged as unknown as ChannelSettings;
  const problems: FieldProblem[] = [];
  for (const key of Object.keys(input) as (keyof ChannelSettings)[]) {
    if (key !== 'kind' && input[key as keyof ParsedSettings] !== undefined && input[key as keyof ParsedSettings] !== null && !allowedSettings[input.kind].includes(key)) {
      problems.push({ field: `${prefix}${key}`, message: `does not apply to a ${input.kind} channel` });
    }
  }
  for (const key of requiredSettings[input.kind]) {
    if (settings[key] === undefined) problems.push({ field: `${prefix}${key}`, message: `is required for a ${input.kind} channel` });
  }
  if (settings.kind === 'email' && (settings.username === undefined) !== (settings.password === undefined)) {
    problems.push({ field: `${prefix}${settings.username === undefined ? 'username' : 'password'}`, message: 'SMTP authentication needs both a username and a password' });
  }
  if (problems.length > 0) throw invalidInput(problems);
  // Only what the kind may have is kept: a kind changed from webhook to email drops the URL.
  return Object.fromEntries(
    Object.entries(settings).filter(([key]) => key === 'kind' || allowedSettings[settings.kind].includes(key as keyof ChannelSettings)),
  ) as unknown as ChannelSettings;
}

/** What is shown of a channel's settings: everything but the secrets, and which secrets are set (never their values). */
export type ChannelSettingsView = Omit<ChannelSettings, SecretSetting> & { secretsSet: SecretSetting[] };

export function channelSettingsView(settings: ChannelSettings): ChannelSettingsView {
  const view: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(settings)) {
    if (!(secretSettings as readonly string[]).includes(key) && value !== undefined) view[key] = value;
  }
  return { ...(view as Omit<ChannelSettingsView, 'secretsSet'>), secretsSet: secretSettings.filter((key) => settings[key] !== undefined) };
}

/** The secret values of a channel, longest first: what an error text must never contain. */
export function channelSecretValues(settings: ChannelSettings): string[] {
  return secretSettings
    .map((key) => settings[key])
    .filter((value): value is string => typeof value === 'string' && value.length > 0)
    .sort((a, b) => b.length - a.length);
}

/** The URL-like settings of a channel that the outbound guard judges when they are set. */
export function channelEndpoints(settings: Pick<ChannelSettings, 'kind' | 'url' | 'apiUrl' | 'host'>): { url: string; what: string }[] {
  const endpoints: { url: string; what: string }[] = [];
  if (settings.url !== undefined) endpoints.push({ url: settings.url, what: urlSettingNames[settings.kind] ?? 'channel URL' });
  if (settings.apiUrl) endpoints.push({ url: settings.apiUrl, what: 'Telegram API URL' });
  if (settings.host !== undefined)
    endpoints.push({ url: `smtp://${settings.host.includes(':') && !settings.host.startsWith('[') ? `[${settings.host}]` : settings.host}`, what: 'SMTP server' });
  return endpoints;
}
