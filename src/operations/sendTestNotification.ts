import { randomUUID } from 'node:crypto';
import { deliverToChannel, type Fetch } from './deliverNotification.ts';
import { BackstopError } from '../core/errors.ts';
import type { Queryable } from '../db/pool.ts';
import { getTarget, getTargetWithSecret } from '../db/targets.ts';
import { guardedFetch } from '../net/outboundGuard.ts';

export interface TestNotificationResult {
  delivered: boolean;
  /** The receiver's HTTP status, when it answered. */
  status?: number;
  /** What went wrong, never the channel's URL or secret. */
  error?: string;
}

/**
 * Sends a test notification on one channel of a target now, through the notifier's own
 * delivery (signed like every webhook delivery, Slack's text for Slack) and the outbound
 * guard. Not queued and not retried: the answer is this one attempt's outcome.
 */
export async function sendTestNotification(
  db: Queryable,
  input: { targetName: string; channelId: string; requestedBy: string },
  options: { fetch?: Fetch; timeoutMs?: number } = {},
): Promise<TestNotificationResult> {
  const target = await getTargetWithSecret(db, (await getTarget(db, input.targetName)).id);
  const channel = target.notificationChannels.find((candidate) => candidate.id === input.channelId);
  if (!channel) {
    throw new BackstopError('NOT_FOUND', `Target "${target.name}" has no notification channel ${input.channelId}; its channels are listed with the target.`);
  }
  const { error, status } = await deliverToChannel(
    options.fetch ?? guardedFetch,
    {
      id: `test-${randomUUID()}`,
      event: 'test',
      payload: {
        event: 'test',
        test: true,
        target: { id: target.id, name: target.name },
        run: null,
        message: `A test notification from Backstop, sent by ${input.requestedBy}: deliveries to this channel work.`,
        at: new Date().toISOString(),
      },
    },
    channel,
    options.timeoutMs ?? 10_000,
  );
  return { delivered: error === null, ...(status !== null ? { status } : {}), ...(error !== null ? { error } : {}) };
}
