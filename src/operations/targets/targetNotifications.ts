import { randomUUID } from 'node:crypto';
import { channelEndpoints, mergeChannelSettings, type ChannelSettings } from '../../core/channelSettings.ts';
import { BackstopError, forField } from '../../core/errors.ts';
import { invalidInput } from '../../core/inputProblems.ts';
import { missingSharedChannels } from '../../db/channels.ts';
import type { Queryable } from '../../db/pool.ts';
import type { NotificationChannel } from '../../db/targets.ts';
import { assertOutboundUrlAllowed, assertTargetEndpointsAllowed } from '../../net/outboundGuard.ts';
import type { TargetCreate } from './targetInput.ts';

type ChannelInput = NonNullable<TargetCreate['notifications']>[number];

/**
 * The notification channels to store from the ones given: a channel sent with the id of an
 * existing one keeps that channel's secrets (url, secret, token, botToken, password) unless new
 * ones are given (they are write-only, so a client that read the target cannot send them
 * back); `null` removes an optional one. A shared channel is stored by name.
 */
export function mergeNotifications(input: readonly ChannelInput[], existing: readonly NotificationChannel[]): NotificationChannel[] {
  const byId = new Map(existing.map((channel) => [channel.id, channel]));
  return input.map((channel, index) => {
    const id = channel.id ?? randomUUID();
    const { id: _id, on, channel: name, ...settings } = channel;
    if (settings.kind === 'shared') return { id, kind: 'shared', channel: name!, on };
    const previous = byId.get(id);
    const stored = previous && previous.kind !== 'shared' ? settingsOf(previous) : null;
    return { id, ...mergeChannelSettings({ ...settings, kind: settings.kind }, stored, `notifications.${index}.`), on };
  });
}

function settingsOf(channel: Exclude<NotificationChannel, { kind: 'shared' }>): ChannelSettings {
  const { id: _id, on: _on, ...settings } = channel;
  return settings;
}

/**
 * New channel endpoints (URLs, the Telegram API, the SMTP server) must reach public addresses
 * (unless allowed), as must a heartbeat ping URL, and shared channels must exist: refused while
 * the person is there to read why.
 */
export async function assertChannelsAllowed(db: Queryable, channels: readonly ChannelInput[], pingUrl?: string | null): Promise<void> {
  if (pingUrl) {
    try {
      await assertOutboundUrlAllowed(pingUrl, 'ping URL');
    } catch (error) {
      throw error instanceof BackstopError ? forField(error, 'pingUrl') : error;
    }
  }
  const shared = channels.flatMap((channel, index) => (channel.kind === 'shared' && channel.channel ? [{ index, name: channel.channel }] : []));
  const missing = new Set(
    await missingSharedChannels(
      db,
      shared.map((use) => use.name),
    ),
  );
  if (missing.size > 0) {
    throw invalidInput(
      shared
        .filter((use) => missing.has(use.name))
        .map((use) => ({
          field: `notifications.${use.index}.channel`,
          message: `names no shared channel ("${use.name}"); add it with \`backstop channel add\` or pick one of \`backstop channel list\``,
        })),
    );
  }
  for (const [index, channel] of channels.entries()) {
    if (channel.kind !== 'shared') await assertChannelEndpointsAllowed({ ...channel, kind: channel.kind as ChannelSettings['kind'] }, `notifications.${index}.`);
  }
}

/** Each endpoint given (a URL, the Telegram API, the SMTP server) must be allowed; a refusal names its field, after `prefix`. */
export async function assertChannelEndpointsAllowed(settings: Parameters<typeof channelEndpointFields>[0], prefix = ''): Promise<void> {
  for (const [key, endpoint] of channelEndpointFields(settings)) {
    try {
      await assertTargetEndpointsAllowed({ endpoints: [endpoint] });
    } catch (error) {
      throw error instanceof BackstopError ? forField(error, `${prefix}${key}`) : error;
    }
  }
}

/** Each endpoint of a channel input with the field it comes from. */
function channelEndpointFields(settings: {
  kind: ChannelSettings['kind'];
  url?: string | undefined;
  host?: string | undefined;
  apiUrl?: string | null | undefined;
}): [string, { url: string; what: string }][] {
  const endpoints = channelEndpoints({
    kind: settings.kind,
    ...(settings.url !== undefined ? { url: settings.url } : {}),
    ...(settings.host !== undefined ? { host: settings.host } : {}),
    ...(settings.apiUrl ? { apiUrl: settings.apiUrl } : {}),
  });
  return endpoints.map((endpoint) => [endpoint.what === 'SMTP server' ? 'host' : endpoint.what === 'Telegram API URL' ? 'apiUrl' : 'url', endpoint]);
}
