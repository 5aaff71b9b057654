import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import { BACKSTOP_VERSION } from '../version.ts';
import { claimDueNotifications, markNotificationAttemptFailed, markNotificationDelivered, type NotificationDelivery } from '../db/notifications.ts';
import type { Queryable } from '../db/pool.ts';
import type { NotificationChannel } from '../db/targets.ts';
import { guardedFetch, OutboundAddressRefused, type GuardedRequestInit } from '../net/outboundGuard.ts';
import { startPeriodicTask } from './periodicTask.ts';

export interface NotifierOptions {
  /** How often to look for due notifications. Default 1 s. */
  pollIntervalMs?: number;
  /** Rows claimed (and delivered concurrently) per pass. Default 10. */
  batchSize?: number;
  /** Per-request timeout. Default 10 s. */
  requestTimeoutMs?: number;
  /** Attempts before a notification is given up (failed_at). Default 8. */
  maxAttempts?: number;
  /** Delay before the 2nd attempt; doubles each time up to `retryMaxMs`. Default 5 s. */
  retryBaseMs?: number;
  /** Default 1 h. */
  retryMaxMs?: number;
}

export interface DeliveryOutcome {
  id: number;
  channelId: string;
  event: string;
  attempts: number;
  delivered: boolean;
  /** Given up: no more attempts. */
  final: boolean;
  error: string | null;
}

export interface Notifier {
  /** One pass now: claims due rows and delivers them (also what the timer calls). */
  deliverOnce(): Promise<DeliveryOutcome[]>;
  /** Stops polling and waits for deliveries in flight (each bounded by the request timeout). */
  stop(): Promise<void>;
}

/** guardedFetch: receivers are reached only at addresses the outbound guard allows. */
type Fetch = (url: string, init: GuardedRequestInit) => Promise<Response>;

/** Delay before the attempt after `attempts` failed ones: exponential, capped. */
export function retryDelayMs(attempts: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));
}

/** `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"): what a receiver recomputes. */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/**
 * Delivers the notification outbox (backstop.notifications) to webhooks and Slack incoming
 * webhooks, with retries and exponential backoff. Fully decoupled from runs: rows are
 * enqueued by a trigger in the transaction that ends a run, and nothing a receiver does
 * (hang, fail, vanish) can reach back into that transaction. Safe with many notifiers.
 */
export function startNotifier(deps: { db: Queryable; log: Logger; fetch?: Fetch }, options: NotifierOptions = {}): Notifier {
  const settings = {
    pollIntervalMs: options.pollIntervalMs ?? 1000,
    batchSize: options.batchSize ?? 10,
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    maxAttempts: options.maxAttempts ?? 8,
    retryBaseMs: options.retryBaseMs ?? 5000,
    retryMaxMs: options.retryMaxMs ?? 3_600_000,
  };
  const doFetch = deps.fetch ?? guardedFetch;
  const log = deps.log.child({ component: 'notifier' });

  const deliver = async (row: NotificationDelivery): Promise<DeliveryOutcome> => {
    let error: string | null = null;
    if (!row.channel) error = `channel ${row.channelId} no longer exists on the target`;
    else error = await send(doFetch, row, row.channel, settings.requestTimeoutMs);
    const outcome: DeliveryOutcome = {
      id: row.id,
      channelId: row.channelId,
      event: row.event,
      attempts: row.attempts,
      delivered: error === null,
      final: error !== null && (!row.channel || row.attempts >= settings.maxAttempts),
      error,
    };
    const fields = { notification: row.id, channel: row.channelId, event: row.event, runId: row.runId, attempt: row.attempts };
    if (error === null) {
      await markNotificationDelivered(deps.db, { id: row.id, attempts: row.attempts });
      log.info(fields, 'notification delivered');
    } else {
      const retryInMs = retryDelayMs(row.attempts, settings.retryBaseMs, settings.retryMaxMs);
      await markNotificationAttemptFailed(deps.db, { id: row.id, attempts: row.attempts, error, retryInMs, final: outcome.final });
      if (outcome.final) log.error({ ...fields, error }, 'notification given up');
      else log.warn({ ...fields, error, retryInMs }, 'notification attempt failed; will retry');
    }
    return outcome;
  };

  const deliverPass = async (): Promise<DeliveryOutcome[]> => {
    try {
      // The claim outlives any request by a margin: a row is only retried by another
      // notifier once this one has certainly given up on it.
      const rows = await claimDueNotifications(deps.db, { limit: settings.batchSize, leaseMs: settings.requestTimeoutMs * 2 + 5000 });
      // Concurrently: one receiver that hangs must not hold up the others.
      const settled = await Promise.allSettled(rows.map(deliver));
      const outcomes: DeliveryOutcome[] = [];
      for (const result of settled) {
        if (result.status === 'fulfilled') outcomes.push(result.value);
        else log.warn({ err: result.reason }, 'could not record a notification outcome; it will be retried after its claim expires');
      }
      return outcomes;
    } catch (error) {
      log.warn({ err: error }, 'notifier pass failed; will retry');
      return [];
    }
  };

  const task = startPeriodicTask(settings.pollIntervalMs, deliverPass, {
    firstDelayMs: 0,
    // A full batch means more may be due: go again at once.
    nextDelayMs: (outcomes) => (outcomes.length >= settings.batchSize ? 0 : settings.pollIntervalMs),
  });
  return { deliverOnce: task.runOnce, stop: task.stop };
}

/** One HTTP request; null on a 2xx answer, otherwise what went wrong (never the URL or secret). */
async function send(doFetch: Fetch, row: NotificationDelivery, channel: NotificationChannel, timeoutMs: number): Promise<string | null> {
  const document = { deliveryId: row.id, ...row.payload };
  const body = JSON.stringify(channel.kind === 'slack' ? { text: slackText(document as PayloadView) } : document);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': `backstop/${BACKSTOP_VERSION}`,
  };
  if (channel.kind === 'webhook') {
    const timestamp = String(Math.floor(Date.now() / 1000));
    headers['x-backstop-event'] = row.event;
    headers['x-backstop-delivery'] = String(row.id);
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
    if (response.status >= 200 && response.status < 300) return null;
    return redact(`HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`, channel);
  } catch (error) {
    const err = error as Error & { cause?: { code?: string; message?: string } };
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return `no answer within ${timeoutMs} ms`;
    // Refused before connecting (a loopback or private address): the refusal says what to set.
    if (err.cause instanceof OutboundAddressRefused) return redact(err.cause.message, channel);
    const cause = err.cause?.code ?? err.cause?.message;
    return redact(`${err.message}${cause ? ` (${cause})` : ''}`, channel);
  }
}

function redact(text: string, channel: NotificationChannel): string {
  let result = text.split(channel.url).join('<channel url>');
  if (channel.secret) result = result.split(channel.secret).join('*****');
  return result;
}

interface PayloadView {
  event?: string;
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
  const escapeText = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const target = `*${escapeText(payload.target?.name ?? 'unknown target')}*`;
  const run = payload.run ?? {};
  const error = run.error ? `: [${escapeText(run.error.code ?? '')}] ${escapeText(run.error.message ?? '')}` : '';
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
      return `:white_check_mark: Backup of ${target} recovered: succeeded after a ${escapeText(payload.previousStatus ?? 'failed')} run${size}${suffix}`;
    case 'succeeded':
      return `:white_check_mark: Backup of ${target} succeeded${size}${suffix}`;
    case 'verify_failed':
      return `:warning: Restore drill of ${target}${run.subjectRunId ? ` backup ${run.subjectRunId}` : ''} failed${error}${run.id ? ` (drill ${run.id})` : ''}`;
    default:
      return `Backup of ${target}: ${escapeText(payload.event ?? 'event')}${suffix}`;
  }
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
