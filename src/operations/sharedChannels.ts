import { z } from 'zod';
import { channelKinds, channelNameSchema, channelSettingsFields, mergeChannelSettings } from '../core/channelSettings.ts';
import { parseInput } from '../core/inputProblems.ts';
import {
  deleteSharedChannel,
  getSharedChannelWithSecrets,
  insertSharedChannel,
  listSharedChannels,
  replaceSharedChannelSettings,
  showSharedChannel,
  type SharedChannelRecord,
} from '../db/channels.ts';
import type { Pool } from '../db/pool.ts';
import { withTransaction } from '../db/pool.ts';
import { assertChannelEndpointsAllowed } from './targets/targetNotifications.ts';
import type { AuditActor } from '../core/auditActor.ts';
import { auditSubject, givenFieldNames, recordChannelChange } from './recordAudit.ts';

/**
 * Shared notification channels: one named channel (an SMTP server and its recipients, a Teams
 * workflow, a Telegram chat…) that any number of targets use by name. Add, list, show, update
 * and remove; a test is `sendSharedChannelTest`. Secrets are write-only: given here, stored,
 * sent to the service, never returned.
 */

export const channelCreateSchema = z.strictObject({ name: channelNameSchema, kind: z.enum(channelKinds), ...channelSettingsFields }).meta({
  description: 'A shared notification channel. Which settings apply depends on `kind`; secrets (url, secret, token, botToken, password) are write-only.',
  examples: [
    {
      name: 'ops-mail',
      kind: 'email',
      host: 'smtp.example.com',
      port: 587,
      security: 'starttls',
      username: 'backstop',
      password: 'an-smtp-password',
      from: 'backstop@example.com',
      to: ['ops@example.com'],
    },
    { name: 'ops-discord', kind: 'discord', url: 'https://discord.com/api/webhooks/123/abc' },
  ],
});

export const channelUpdateSchema = z
  .strictObject({ kind: z.enum(channelKinds).optional(), ...channelSettingsFields })
  .superRefine((value, ctx) => {
    if (Object.values(value).every((field) => field === undefined)) ctx.addIssue({ code: 'custom', message: 'changes nothing: give at least one setting to change', input: value });
  })
  .meta({ description: 'Settings to change; absent ones keep their value (secrets included), null removes an optional one. A new kind starts from no settings.' });

export type { SharedChannelRecord };
export type ChannelCreateInput = z.input<typeof channelCreateSchema>;
export type ChannelUpdateInput = z.input<typeof channelUpdateSchema>;

export async function addSharedChannel(pool: Pool, input: ChannelCreateInput | unknown, actor: AuditActor): Promise<SharedChannelRecord> {
  const subject = auditSubject((input as { name?: unknown } | null)?.name);
  return recordChannelChange(pool, actor, { kind: 'create', channel: subject, changedFields: givenFieldNames(input, ['name']) }, async () => {
    const { name, ...given } = parseInput(channelCreateSchema, input);
    const settings = mergeChannelSettings(given, null);
    await assertChannelEndpointsAllowed(given);
    await insertSharedChannel(pool, { name, settings });
    return showSharedChannel(pool, name);
  });
}

export async function updateSharedChannel(pool: Pool, name: string, input: ChannelUpdateInput | unknown, actor: AuditActor): Promise<SharedChannelRecord> {
  return recordChannelChange(pool, actor, { kind: 'update', channel: auditSubject(name), changedFields: givenFieldNames(input) }, () => changeSharedChannel(pool, name, input));
}

async function changeSharedChannel(pool: Pool, name: string, input: ChannelUpdateInput | unknown): Promise<SharedChannelRecord> {
  parseInput(channelNameSchema, name, 'The channel name');
  const given = parseInput(channelUpdateSchema, input);
  const current = await getSharedChannelWithSecrets(pool, name);
  const kind = given.kind ?? current.settings.kind;
  // Said before the endpoint checks; merged again under the row lock against the stored settings.
  mergeChannelSettings({ ...given, kind }, current.settings);
  await assertChannelEndpointsAllowed({ ...given, kind });
  await withTransaction(pool, async (client) => {
    const locked = await getSharedChannelWithSecrets(client, name, { forUpdate: true });
    await replaceSharedChannelSettings(client, name, mergeChannelSettings({ ...given, kind }, locked.settings));
  });
  return showSharedChannel(pool, name);
}

export function listChannels(pool: Pool): Promise<SharedChannelRecord[]> {
  return listSharedChannels(pool);
}

export function showChannel(pool: Pool, name: string): Promise<SharedChannelRecord> {
  return showSharedChannel(pool, name);
}

/** Removes a shared channel; CHANNEL_IN_USE (naming the targets) while a target uses it. */
export function removeSharedChannel(pool: Pool, name: string, actor: AuditActor): Promise<void> {
  return recordChannelChange(pool, actor, { kind: 'delete', channel: auditSubject(name) }, () => deleteSharedChannel(pool, name));
}
