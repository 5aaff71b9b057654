import { createHmac } from 'node:crypto';
import { TELEGRAM_API_URL, type ChannelSettings } from './channelSettings.ts';
import { formatBytes } from './formatBytes.ts';
import { messageText, type NotificationMessage, type PayloadView, type Severity } from './notificationMessage.ts';

/**
 * The HTTP request each HTTP channel makes for one notification, as each service's published
 * API wants it (decided here, sent by the notifier through the outbound guard):
 * - webhook: Backstop's own signed JSON (the payload itself);
 * - Slack incoming webhook: `{text}`;
 * - Discord execute-webhook: `{content, embeds, allowed_mentions}`;
 * - Telegram Bot API: `POST {apiUrl}/bot<token>/sendMessage` with `{chat_id, text, parse_mode: "HTML"}`;
 * - Teams workflow webhook: `{type: "message", attachments: [Adaptive Card]}`;
 * - ntfy: `POST <topic URL>` with the text as body and Title, Priority, Tags, Click headers.
 */

export interface ChannelRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"): what a receiver recomputes. */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

const slackEmoji: Record<string, string> = {
  failed: ':x:',
  timed_out: ':hourglass:',
  cancelled: ':no_entry_sign:',
  recovered: ':white_check_mark:',
  succeeded: ':white_check_mark:',
  test: ':information_source:',
  verify_failed: ':warning:',
};
const severityEmoji: Record<Severity, string> = { error: ':x:', warning: ':warning:', ok: ':white_check_mark:', info: ':information_source:' };

const escapeSlack = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** The first line of a Slack message for a payload (Slack's text escaping applied). */
export function slackText(payload: PayloadView): string {
  const target = `*${escapeSlack(payload.target?.name ?? 'unknown target')}*`;
  const run = payload.run ?? {};
  const error = run.error ? `: [${escapeSlack(run.error.code ?? '')}] ${escapeSlack(run.error.message ?? '')}` : '';
  const size = run.artifact ? `: ${formatBytes(run.artifact.bytes ?? 0)} in ${run.artifact.files ?? 0} file(s)` : '';
  const suffix = run.id ? ` (run ${run.id})` : '';
  const emoji = slackEmoji[payload.event ?? ''] ?? '';
  switch (payload.event) {
    case 'failed':
      return `${emoji} Backup of ${target} failed${error}${suffix}`;
    case 'timed_out':
      return `${emoji} Backup of ${target} timed out${error}${suffix}`;
    case 'cancelled':
      return `${emoji} Backup of ${target} was cancelled${suffix}`;
    case 'recovered':
      return `${emoji} Backup of ${target} recovered: succeeded after a ${escapeSlack(payload.previousStatus ?? 'failed')} run${size}${suffix}`;
    case 'succeeded':
      return `${emoji} Backup of ${target} succeeded${size}${suffix}`;
    case 'test':
      return `${emoji} Test notification for ${target} from Backstop: this channel works.`;
    case 'alarm': {
      const alarm = payload.alarm ?? {};
      return `:rotating_light: ${alarm.sentCount && alarm.sentCount > 1 ? 'Still: ' : ''}${escapeSlack(alarm.what ?? '')}`;
    }
    case 'alarm_cleared':
      return `:white_check_mark: Cleared for ${target}: ${escapeSlack(payload.alarm?.what ?? payload.alarm?.kind ?? '')}`;
    case 'verify_failed':
      return `${emoji} Restore drill of ${target}${run.subjectRunId ? ` backup ${run.subjectRunId}` : ''} failed${error}${run.id ? ` (drill ${run.id})` : ''}`;
    default:
      return '';
  }
}

/** Slack: the known events' line, then since, what to do and the link, each on its own line. */
function slackMessage(payload: PayloadView, message: NotificationMessage): string {
  const lines = [slackText(payload) || `${severityEmoji[message.severity]} *${escapeSlack(message.title)}*: ${escapeSlack(message.summary)}`];
  if (message.since) lines.push(`${message.severity === 'ok' ? 'Had been failing since' : 'Failing since'} ${message.since}`);
  if (message.action) lines.push(`What to do: ${escapeSlack(message.action)}`);
  if (message.link) lines.push(`<${message.link}|Open the ${payload.run?.id ? 'run' : 'target'}>`);
  return lines.join('\n');
}

const discordColour: Record<Severity, number> = { error: 0xd64545, warning: 0xe0a030, ok: 0x2e9e5b, info: 0x4a7bd0 };

/** Discord counts characters; its limits (title 256, description 4096, field 1024) cut the rest. */
function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function discordBody(message: NotificationMessage): Record<string, unknown> {
  const description = [message.summary, message.action ? `**What to do:** ${message.action}` : ''].filter(Boolean).join('\n\n');
  return {
    content: clip(message.title, 2000),
    embeds: [
      {
        title: clip(message.title, 256),
        description: clip(description, 4096),
        ...(message.link ? { url: message.link } : {}),
        color: discordColour[message.severity],
        fields: message.facts.slice(0, 25).map((fact) => ({ name: clip(fact.name, 256), value: clip(fact.value, 1024), inline: fact.value.length <= 40 })),
      },
    ],
    // Text from an error message must never ping @everyone or a role.
    allowed_mentions: { parse: [] },
  };
}

const escapeHtml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Telegram's HTML parse mode accepts only a few tags; everything else is escaped text. */
function telegramText(message: NotificationMessage): string {
  const lines = [`<b>${escapeHtml(message.title)}</b>`, escapeHtml(message.summary)];
  if (message.since) lines.push(`${message.severity === 'ok' ? 'Had been failing since' : 'Failing since'} ${escapeHtml(message.since)}`);
  if (message.action) lines.push(`<i>What to do:</i> ${escapeHtml(message.action)}`);
  if (message.link) lines.push(`<a href="${escapeHtml(message.link)}">Open in Backstop</a>`);
  return clip(lines.join('\n'), 4096);
}

const cardColour: Record<Severity, string> = { error: 'Attention', warning: 'Warning', ok: 'Good', info: 'Accent' };

/** An Adaptive Card 1.4 (what Teams renders) in the message envelope workflow webhooks take. */
function teamsBody(message: NotificationMessage): Record<string, unknown> {
  const body: Record<string, unknown>[] = [
    { type: 'TextBlock', text: message.title, weight: 'Bolder', size: 'Medium', color: cardColour[message.severity], wrap: true },
    { type: 'TextBlock', text: message.summary, wrap: true },
  ];
  if (message.action) body.push({ type: 'TextBlock', text: `What to do: ${message.action}`, wrap: true });
  if (message.facts.length > 0) body.push({ type: 'FactSet', facts: message.facts.map((fact) => ({ title: fact.name, value: fact.value })) });
  return {
    type: 'message',
    attachments: [
      {
        contentType: 'application/vnd.microsoft.card.adaptive',
        contentUrl: null,
        content: {
          $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
          type: 'AdaptiveCard',
          version: '1.4',
          body,
          ...(message.link ? { actions: [{ type: 'Action.OpenUrl', title: 'Open in Backstop', url: message.link }] } : {}),
        },
      },
    ],
  };
}

const ntfyPriority: Record<Severity, string> = { error: '4', warning: '3', ok: '3', info: '2' };
const ntfyTags: Record<Severity, string> = { error: 'rotating_light,backstop', warning: 'warning,backstop', ok: 'white_check_mark,backstop', info: 'information_source,backstop' };

/** HTTP header values are Latin-1; ntfy decodes RFC 2047 encoded words for anything else. */
function headerText(text: string): string {
  const flat = text.replace(/[\r\n]+/g, ' ');
  return /^[\x20-\x7e]*$/.test(flat) ? flat : `=?UTF-8?B?${Buffer.from(flat, 'utf8').toString('base64')}?=`;
}

/**
 * The request for an HTTP channel (every kind but e-mail). `document` is the webhook JSON
 * (`deliveryId` and the payload); `timestamp` is Unix seconds, signed with the webhook secret.
 */
export function channelRequest(
  settings: ChannelSettings,
  delivery: { id: number | string; event: string; document: Record<string, unknown> },
  message: NotificationMessage,
  common: { userAgent: string; timestamp: string },
): ChannelRequest {
  const json = { 'content-type': 'application/json', 'user-agent': common.userAgent };
  switch (settings.kind) {
    case 'webhook': {
      const body = JSON.stringify(delivery.document);
      const headers: Record<string, string> = {
        ...json,
        'x-backstop-event': delivery.event,
        'x-backstop-delivery': String(delivery.id),
        'x-backstop-timestamp': common.timestamp,
      };
      if (settings.secret) headers['x-backstop-signature'] = webhookSignature(settings.secret, common.timestamp, body);
      return { url: settings.url!, headers, body };
    }
    case 'slack':
      return { url: settings.url!, headers: json, body: JSON.stringify({ text: slackMessage(delivery.document as PayloadView, message) }) };
    case 'discord':
      return { url: settings.url!, headers: json, body: JSON.stringify(discordBody(message)) };
    case 'teams':
      return { url: settings.url!, headers: json, body: JSON.stringify(teamsBody(message)) };
    case 'telegram': {
      const base = (settings.apiUrl ?? TELEGRAM_API_URL).replace(/\/+$/, '');
      return {
        url: `${base}/bot${settings.botToken}/sendMessage`,
        headers: json,
        body: JSON.stringify({ chat_id: settings.chatId, text: telegramText(message), parse_mode: 'HTML', link_preview_options: { is_disabled: true } }),
      };
    }
    case 'ntfy': {
      const headers: Record<string, string> = {
        'content-type': 'text/plain; charset=utf-8',
        'user-agent': common.userAgent,
        title: headerText(message.title),
        priority: ntfyPriority[message.severity],
        tags: ntfyTags[message.severity],
      };
      if (message.link) headers.click = message.link;
      if (settings.token) headers.authorization = `Bearer ${settings.token}`;
      return { url: settings.url!, headers, body: messageText(message) };
    }
    case 'email':
      throw new Error('an e-mail channel is not an HTTP request');
  }
}

/** The e-mail for a message: subject and plain-text body. */
export function emailContent(message: NotificationMessage): { subject: string; text: string } {
  const prefix = message.severity === 'error' ? '[Backstop] FAILED: ' : '[Backstop] ';
  return { subject: `${prefix}${message.title}`, text: `${messageText(message)}\n\n-- \nSent by Backstop.\n` };
}
