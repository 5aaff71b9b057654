import path from 'node:path';
import { BackstopError } from '../../core/errors.ts';
import { backupProfiles, type BackupProfile } from '../../core/manifest.ts';
import type { GithubExecutorConfig, TargetOptions } from '../../db/targets.ts';

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

export function targetOptions(compression: string | undefined, encryptTo: string[], profile?: BackupProfile, withStorage?: boolean): TargetOptions {
  return {
    ...(compression ? { compression } : {}),
    ...(encryptTo.length > 0 ? { encryptTo } : {}),
    ...(profile ? { profile } : {}),
    ...(withStorage ? { withStorage: true } : {}),
  };
}

/** `--with-storage` copies a Supabase project's Storage objects: it belongs with the Supabase profile. */
export function assertStorageProfile(withStorage: boolean | undefined, profile: BackupProfile | undefined): void {
  if (withStorage && profile !== 'supabase') {
    throw new BackstopError(
      'INVALID_INPUT',
      '--with-storage copies the Storage objects of a Supabase project: use it with --profile supabase (and set SUPABASE_STORAGE_S3_ENDPOINT and its keys where the backup runs).',
    );
  }
}

/** `--github OWNER/REPO` with its workflow and ref, checked before anything is stored. */
export function githubExecutorConfig(repository: string, workflow: string, ref: string): GithubExecutorConfig {
  const match = /^([A-Za-z0-9-]{1,39})\/([A-Za-z0-9._-]{1,100})$/.exec(repository);
  if (!match) throw new BackstopError('INVALID_INPUT', `--github must be OWNER/REPO, got "${repository}".`);
  if (!/^[A-Za-z0-9._-]+\.ya?ml$/.test(workflow)) {
    throw new BackstopError('INVALID_INPUT', `--github-workflow must be a workflow file name such as backstop-backup.yml, got "${workflow}".`);
  }
  if (!ref.trim()) throw new BackstopError('INVALID_INPUT', '--github-ref must name a branch or tag.');
  return { kind: 'github', owner: match[1]!, repo: match[2]!, workflow, ref };
}
