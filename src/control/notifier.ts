import type { Logger } from 'pino';
import { recordChannelOutcome } from '../db/channels.ts';
import { claimDueNotifications, markNotificationAttemptFailed, markNotificationDelivered, PING_CHANNEL_ID, type NotificationDelivery } from '../db/notifications.ts';
import type { Queryable } from '../db/pool.ts';
import { guardedFetch } from '../net/outboundGuard.ts';
import { deliverToChannel, type Fetch } from '../operations/deliverNotification.ts';
import { deliverPing } from '../operations/deliverPing.ts';
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
  /** The dashboard's public address, for links to run pages in messages (BACKSTOP_PUBLIC_URL). */
  publicUrl?: string | null;
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

/** Delay before the attempt after `attempts` failed ones: exponential, capped. */
export function retryDelayMs(attempts: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempts - 1));
}

/**
 * Delivers the notification outbox (backstop.notifications) to every kind of channel (webhook,
 * Slack, e-mail, Discord, Telegram, Teams, ntfy) and heartbeat pings, with retries and
 * exponential backoff. Fully decoupled from runs: rows are
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
    // A heartbeat ping rides the outbox under a reserved channel id, to the target's ping URL.
    const ping = row.channelId === PING_CHANNEL_ID;
    const gone = ping ? !row.pingUrl : !row.channel;
    if (ping && row.pingUrl) error = (await deliverPing(doFetch, row, row.pingUrl, settings.requestTimeoutMs)).error;
    else if (ping) error = 'the target no longer has a ping URL';
    else if (!row.channel) error = row.channelMissing;
    else error = (await deliverToChannel(doFetch, row, row.channel, { timeoutMs: settings.requestTimeoutMs, publicUrl: options.publicUrl ?? null })).error;
    const outcome: DeliveryOutcome = {
      id: row.id,
      channelId: row.channelId,
      event: row.event,
      attempts: row.attempts,
      delivered: error === null,
      final: error !== null && (gone || row.attempts >= settings.maxAttempts),
      error,
    };
    const fields = { notification: row.id, channel: row.channelId, event: row.event, runId: row.runId, attempt: row.attempts };
    // The channel's health first: a channel that keeps failing is shown failing at once.
    if (row.channel && !ping)
      await recordChannelOutcome(deps.db, { ...row.health, error }).catch((err: unknown) => log.warn({ err, ...fields }, 'could not record the channel outcome'));
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
