import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDatabaseUrl } from '../core/databaseUrl.ts';
import { BackstopError } from '../core/errors.ts';
import { assertRestoreToEntry } from '../core/restoreDestination.ts';
import type { BackupProfile } from '../core/manifest.ts';
import { assertChannelUrl } from '../core/notificationChannels.ts';
import { parseSchedule } from '../core/scheduleSlots.ts';
import type { GithubExecutorConfig, NewTarget, NotificationChannel, NotificationEvent, TargetUpdate, VerificationPolicy } from '../db/targets.ts';
import { parseRecipient } from '../pipeline/age.ts';
import { parseCompression } from '../pipeline/compression.ts';
import { parseS3Url } from '../storage/s3Url.ts';

/**
 * Checks of target fields beyond what JSON Schema can say (URLs, cron, time zones, age keys),
 * turning the request body into what src/db/targets.ts stores. Schema validation has already
 * run, so shapes and types are right; every refusal here is INVALID_INPUT (400).
 */

export interface NotificationChannelInput {
  id?: string;
  kind: 'webhook' | 'slack';
  url?: string;
  secret?: string | null;
  on: NotificationEvent[];
}

export interface TargetBody {
  name?: string;
  databaseUrl?: string;
  storeUrl?: string;
  options?: { compression?: string; encryptTo?: string[]; profile?: BackupProfile; checksums?: boolean; restoreTo?: string[] };
  exclusive?: boolean;
  maxAttempts?: number;
  schedule?: { cron: string; timezone: string } | null;
  retention?: { keepLast?: number; daily?: number; weekly?: number; monthly?: number } | null;
  verification?: VerificationPolicy | null;
  notifications?: NotificationChannelInput[];
  executor?: (Omit<GithubExecutorConfig, 'ref'> & { ref?: string }) | null;
}

function invalid(message: string): never {
  throw new BackstopError('INVALID_INPUT', message);
}

export function checkStoreUrl(storeUrl: string): string {
  if (storeUrl.startsWith('s3://')) {
    parseS3Url(storeUrl);
    return storeUrl;
  }
  if (storeUrl.startsWith('file://')) {
    let folder: string;
    try {
      folder = fileURLToPath(storeUrl);
    } catch {
      invalid(`storeUrl "${storeUrl}" is not a file URL: use file:///absolute/path.`);
    }
    if (!path.isAbsolute(folder)) invalid('storeUrl must name an absolute folder: file:///absolute/path.');
    return storeUrl;
  }
  invalid('storeUrl must be file:///absolute/path or s3://bucket/prefix?… (credentials come from the server environment, never the URL).');
}

function checkVerification(policy: VerificationPolicy): void {
  if (policy.timezone !== undefined && policy.cron === undefined) invalid('verification.timezone needs verification.cron.');
  if (policy.cron !== undefined) parseSchedule(policy.cron, policy.timezone ?? 'UTC', 'verification schedule');
}

/**
 * Notification channels: a channel sent with the id of an existing one keeps that channel's
 * url and secret unless new ones are given (they are write-only, so a client that read the
 * target cannot send them back); `secret: null` removes the secret.
 */
export function mergeNotifications(input: NotificationChannelInput[], existing: NotificationChannel[]): NotificationChannel[] {
  const byId = new Map(existing.map((channel) => [channel.id, channel]));
  const seen = new Set<string>();
  return input.map((channel, index) => {
    const id = channel.id ?? randomUUID();
    if (seen.has(id)) invalid(`notifications[${index}].id "${id}" appears twice.`);
    seen.add(id);
    const previous = byId.get(id);
    const url = channel.url ?? previous?.url;
    if (url === undefined) invalid(`notifications[${index}] needs a url (only an existing channel, sent with its id, may omit it).`);
    assertChannelUrl(url, channel.kind);
    const secret = channel.secret === null ? undefined : (channel.secret ?? previous?.secret);
    return { id, kind: channel.kind, url, ...(secret !== undefined ? { secret } : {}), on: channel.on };
  });
}

/** Checks every field present in `body` and returns them in the catalog's shape. */
export function checkTargetFields(body: TargetBody, existingChannels: NotificationChannel[] = []): TargetUpdate {
  const update: TargetUpdate = {};
  if (body.name !== undefined) update.name = body.name;
  if (body.databaseUrl !== undefined) {
    parseDatabaseUrl(body.databaseUrl);
    update.databaseUrl = body.databaseUrl;
  }
  if (body.storeUrl !== undefined) update.storeUrl = checkStoreUrl(body.storeUrl);
  if (body.options !== undefined) {
    const options = { ...body.options };
    if (options.compression !== undefined) parseCompression(options.compression);
    if (options.encryptTo !== undefined) options.encryptTo = options.encryptTo.map((recipient) => parseRecipient(recipient));
    for (const entry of options.restoreTo ?? []) assertRestoreToEntry(entry);
    update.options = options;
  }
  if (body.exclusive !== undefined) update.exclusive = body.exclusive;
  if (body.maxAttempts !== undefined) update.maxAttempts = body.maxAttempts;
  if (body.schedule !== undefined) {
    if (body.schedule !== null) parseSchedule(body.schedule.cron, body.schedule.timezone, 'schedule');
    update.schedule = body.schedule;
  }
  if (body.retention !== undefined) update.retention = body.retention;
  if (body.verification !== undefined) {
    if (body.verification !== null) checkVerification(body.verification);
    update.verification = body.verification;
  }
  if (body.notifications !== undefined) update.notifications = mergeNotifications(body.notifications, existingChannels);
  if (body.executor !== undefined) update.executor = body.executor === null ? null : { ...body.executor, ref: body.executor.ref ?? 'main' };
  return update;
}

export function newTargetFrom(body: TargetBody & { name: string; databaseUrl: string }, defaultStoreUrl: string): NewTarget {
  const fields = checkTargetFields(body);
  return { ...fields, name: body.name, databaseUrl: body.databaseUrl, storeUrl: fields.storeUrl ?? defaultStoreUrl };
}
