import { createHmac } from 'node:crypto';
import type { NotificationDelivery } from '../db/notifications.ts';
import type { NotificationChannel } from '../db/targets.ts';
import { formatBytes } from '../core/formatBytes.ts';
import { OutboundAddressRefused, type GuardedRequestInit } from '../net/outboundGuard.ts';
import { BACKSTOP_VERSION } from '../version.ts';

/**
 * One notification to one channel, as every notification is sent: a webhook request signed
 * with the channel's secret, or Slack's text, through the outbound guard. The notifier
 * delivers its outbox with it; a test notification is one call of it.
 */

/** guardedFetch: receivers are reached only at addresses the outbound guard allows. */
export type Fetch = (url: string, init: GuardedRequestInit) => Promise<Response>;

/** `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"): what a receiver recomputes. */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * One delivery to one channel: the HTTP request every notification makes (signed webhook or
 * Slack text), through the outbound guard. Null on a 2xx answer, otherwise what went wrong
 * (never the URL or secret). `status` is the receiver's HTTP status when it answered.
 */
export async function deliverToChannel(
  doFetch: Fetch,
  delivery: Pick<NotificationDelivery, 'id' | 'event' | 'payload'> | { id: string; event: string; payload: Record<string, unknown> },
  channel: NotificationChannel,
  timeoutMs: number,
): Promise<{ error: string | null; status: number | null }> {
  const document = { deliveryId: delivery.id, ...delivery.payload };
  const body = JSON.stringify(channel.kind === 'slack' ? { text: slackText(document as PayloadView) } : document);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': `backstop/${BACKSTOP_VERSION}`,
  };
  if (channel.kind === 'webhook') {
    const timestamp = String(Math.floor(Date.now() / 1000));
    headers['x-backstop-event'] = delivery.event;
    headers['x-backstop-delivery'] = String(delivery.id);
    headers['x-backstop-timestamp'] = timestamp;
    if (channel.secret) headers['x-backstop-signature'] = webhookSignature(channel.secret, timestamp, body);
  }
  try {
    const response = await doFetch(channel.url, {
      method: 'POST',
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text().catch(() => '');
    if (response.status >= 200 && response.status < 300) return { error: null, status: response.status };
    return { error: redact(`HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`, channel), status: response.status };
  } catch (error) {
    return { error: deliveryError(error, timeoutMs, [channel.url, channel.secret]), status: null };
  }
}

/** What a request that threw went through, in words, with its secrets (URL first) taken out. */
export function deliveryError(error: unknown, timeoutMs: number, secrets: (string | undefined)[]): string {
  const err = error as Error & { cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
  // Refused before connecting (a loopback or private address): the refusal says what to set.
  if (err.cause instanceof OutboundAddressRefused) return redactSecrets(err.cause.message, secrets);
  const cause = err.cause?.code ?? err.cause?.message;
  return redactSecrets(`${err.message}${cause ? ` (${cause})` : ''}`, secrets);
}

function redact(text: string, channel: NotificationChannel): string {
  return redactSecrets(text, [channel.url, channel.secret]);
}

function redactSecrets(text: string, [url, ...others]: (string | undefined)[]): string {
  let result = url ? text.split(url).join('<channel url>') : text;
  for (const secret of others) if (secret) result = result.split(secret).join('*****');
  return result;
}

interface PayloadView {
  event?: string;
  alarm?: { kind?: string; what?: string; whatToDo?: string; since?: string; link?: string | null; sentCount?: number };
  target?: { name?: string };
  run?: {
    id?: string;
    subjectRunId?: string | null;
    error?: { code?: string; message?: string } | null;
    artifact?: { files?: number; bytes?: number } | null;
  };
  previousStatus?: string | null;
}

/** The one-line Slack message for a payload (Slack's text escaping applied). */
export function slackText(payload: PayloadView): string {
  const escapeSlack = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const target = `*${escapeSlack(payload.target?.name ?? 'unknown target')}*`;
  const run = payload.run ?? {};
  const error = run.error ? `: [${escapeSlack(run.error.code ?? '')}] ${escapeSlack(run.error.message ?? '')}` : '';
  const size = run.artifact ? `: ${formatBytes(run.artifact.bytes ?? 0)} in ${run.artifact.files ?? 0} file(s)` : '';
  const suffix = run.id ? ` (run ${run.id})` : '';
  switch (payload.event) {
    case 'failed':
      return `:x: Backup of ${target} failed${error}${suffix}`;
    case 'timed_out':
      return `:hourglass: Backup of ${target} timed out${error}${suffix}`;
    case 'cancelled':
      return `:no_entry_sign: Backup of ${target} was cancelled${suffix}`;
    case 'recovered':
      return `:white_check_mark: Backup of ${target} recovered: succeeded after a ${escapeSlack(payload.previousStatus ?? 'failed')} run${size}${suffix}`;
    case 'succeeded':
      return `:white_check_mark: Backup of ${target} succeeded${size}${suffix}`;
    case 'test':
      return `:information_source: Test notification for ${target} from Backstop: this channel works.`;
    case 'alarm': {
      const alarm = payload.alarm ?? {};
      const link = alarm.link ? ` <${alarm.link}|${escapeSlack(payload.target?.name ?? 'target')}>` : '';
      return `:rotating_light: ${alarm.sentCount && alarm.sentCount > 1 ? 'Still: ' : ''}${escapeSlack(alarm.what ?? '')} Since ${escapeSlack(alarm.since ?? '')}. ${escapeSlack(alarm.whatToDo ?? '')}${link}`;
    }
    case 'alarm_cleared':
      return `:white_check_mark: Cleared for ${target}: ${escapeSlack(payload.alarm?.what ?? payload.alarm?.kind ?? '')}`;
    case 'verify_failed':
      return `:warning: Restore drill of ${target}${run.subjectRunId ? ` backup ${run.subjectRunId}` : ''} failed${error}${run.id ? ` (drill ${run.id})` : ''}`;
    default:
      return `Backup of ${target}: ${escapeSlack(payload.event ?? 'event')}${suffix}`;
  }
}
