import { randomUUID } from 'node:crypto';
import { BackstopError, forField } from '../../core/errors.ts';
import { invalidInput } from '../../core/inputProblems.ts';
import type { NotificationChannel } from '../../db/targets.ts';
import { assertOutboundUrlAllowed, assertTargetEndpointsAllowed } from '../../net/outboundGuard.ts';
import type { TargetCreate } from './targetInput.ts';

type ChannelInput = NonNullable<TargetCreate['notifications']>[number];

/**
 * The notification channels to store from the ones given: a channel sent with the id of an
 * existing one keeps that channel's url and secret unless new ones are given (they are
 * write-only, so a client that read the target cannot send them back); `secret: null` removes
 * the secret.
 */
export function mergeNotifications(input: readonly ChannelInput[], existing: readonly NotificationChannel[]): NotificationChannel[] {
  const byId = new Map(existing.map((channel) => [channel.id, channel]));
  return input.map((channel, index) => {
    const id = channel.id ?? randomUUID();
    const previous = byId.get(id);
    const url = channel.url ?? previous?.url;
    if (url === undefined) {
      throw invalidInput([{ field: `notifications.${index}.url`, message: 'is required (only an existing channel, sent with its id, may leave it out)' }]);
    }
    const secret = channel.secret === null ? undefined : (channel.secret ?? previous?.secret);
    return { id, kind: channel.kind, url, ...(secret !== undefined ? { secret } : {}), on: channel.on };
  });
}

/** New channel URLs must reach public addresses (unless allowed): refused while the person is there to read why. */
export async function assertChannelsAllowed(channels: readonly ChannelInput[], pingUrl?: string | null): Promise<void> {
  if (pingUrl) {
    try {
      await assertOutboundUrlAllowed(pingUrl, 'ping URL');
    } catch (error) {
      throw error instanceof BackstopError ? forField(error, 'pingUrl') : error;
    }
  }
  for (const [index, channel] of channels.entries()) {
    try {
      await assertTargetEndpointsAllowed({ channels: [channel] });
    } catch (error) {
      throw error instanceof BackstopError ? forField(error, `notifications.${index}.url`) : error;
    }
  }
}
