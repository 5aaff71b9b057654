import path from 'node:path';
import { BackstopError } from '../../core/errors.ts';
import { backupProfiles, type BackupProfile } from '../../core/manifest.ts';
import type { TargetOptions } from '../../db/targets.ts';

/** Store URLs are kept absolute so that a target means the same thing from any folder. */
export function storeUrlFor(store: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(store)) return store;
  return `file://${path.resolve(store)}`;
}

/** commander collector for repeatable options. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `--profile`: how the target is dumped. */
export function parseProfile(text: string): BackupProfile {
  const profile = backupProfiles.find((candidate) => candidate === text);
  if (!profile) throw new BackstopError('INVALID_INPUT', `Unknown profile "${text}". Use ${backupProfiles.join(' or ')}.`);
  return profile;
}

export function targetOptions(compression: string | undefined, encryptTo: string[], profile?: BackupProfile): TargetOptions {
  return {
    ...(compression ? { compression } : {}),
    ...(encryptTo.length > 0 ? { encryptTo } : {}),
    ...(profile ? { profile } : {}),
  };
}
