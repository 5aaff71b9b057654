import { randomUUID } from 'node:crypto';
import { deliverToChannel, type Fetch } from './deliverNotification.ts';
import type { ChannelSettings } from '../core/channelSettings.ts';
import { BackstopError } from '../core/errors.ts';
import { channelHealthKey, getSharedChannelWithSecrets, recordChannelOutcome } from '../db/channels.ts';
import type { Queryable } from '../db/pool.ts';
import { getTarget, getTargetWithSecret } from '../db/targets.ts';
import { guardedFetch } from '../net/outboundGuard.ts';

export interface TestNotificationResult {
  delivered: boolean;
  /** The receiver's HTTP status, when it answered. */
  status?: number;
  /** What went wrong, never the channel's URL or secrets. */
  error?: string;
}

export interface TestNotificationOptions {
  fetch?: Fetch;
  timeoutMs?: number;
  /** The dashboard's public address, for the link in the message. */
  publicUrl?: string | null;
}

/**
 * Sends a test notification on one channel of a target now, through the notifier's own
 * delivery (the same message form, signing and outbound guard as every notification). Not
 * queued and not retried: the answer is this one attempt's outcome, which also counts for the
 * channel's health (a test that gets through ends a failing streak).
 */
export async function sendTestNotification(
  db: Queryable,
  input: { targetName: string; channelId: string; requestedBy: string },
  options: TestNotificationOptions = {},
): Promise<TestNotificationResult> {
  const target = await getTargetWithSecret(db, (await getTarget(db, input.targetName)).id);
  const entry = target.notificationChannels.find((candidate) => candidate.id === input.channelId);
  if (!entry) {
    throw new BackstopError('NOT_FOUND', `Target "${target.name}" has no notification channel ${input.channelId}; its channels are listed with the target.`);
  }
  const targetRef = { id: target.id, name: target.name };
  if (entry.kind === 'shared') return sendSharedChannelTest(db, { name: entry.channel, requestedBy: input.requestedBy, target: targetRef }, options);
  const { id: _id, on: _on, ...settings } = entry;
  return sendTest(
    db,
    settings,
    { key: channelHealthKey({ targetId: target.id, channelId: entry.id }), targetId: target.id, sharedChannelId: null },
    targetRef,
    input.requestedBy,
    options,
  );
}

/** The same for a shared channel, by name (on behalf of a target when one uses it). */
export async function sendSharedChannelTest(
  db: Queryable,
  input: { name: string; requestedBy: string; target?: { id: string; name: string } },
  options: TestNotificationOptions = {},
): Promise<TestNotificationResult> {
  const channel = await getSharedChannelWithSecrets(db, input.name);
  return sendTest(
    db,
    channel.settings,
    { key: channelHealthKey({ sharedChannelId: channel.id }), targetId: null, sharedChannelId: channel.id },
    input.target ?? null,
    input.requestedBy,
    options,
  );
}

async function sendTest(
  db: Queryable,
  settings: ChannelSettings,
  health: { key: string; targetId: string | null; sharedChannelId: string | null },
  target: { id: string; name: string } | null,
  requestedBy: string,
  options: TestNotificationOptions,
): Promise<TestNotificationResult> {
  const { error, status } = await deliverToChannel(
    options.fetch ?? guardedFetch,
    {
      id: `test-${randomUUID()}`,
      event: 'test',
      payload: {
        event: 'test',
        test: true,
        target,
        run: null,
        ...(target ? {} : { title: 'Test notification from Backstop' }),
        message: `A test notification from Backstop, sent by ${requestedBy}: deliveries to this channel work.`,
        at: new Date().toISOString(),
      },
    },
    settings,
    { timeoutMs: options.timeoutMs ?? 10_000, publicUrl: options.publicUrl ?? null },
  );
  await recordChannelOutcome(db, { ...health, error });
  return { delivered: error === null, ...(status !== null ? { status } : {}), ...(error !== null ? { error } : {}) };
}
