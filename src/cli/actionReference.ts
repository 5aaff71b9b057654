import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import { getAsset, isSea } from 'node:sea';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { bundledFiles } from '../core/bundledFiles.ts';
import { BackstopError } from '../core/errors.ts';
import { BACKSTOP_REPOSITORY } from '../version.ts';

const run = promisify(execFile);

/** Where a build records the commit it was made from: the npm package's dist/commit, the executable's asset. */
export const COMMIT_FILE = 'commit';

const FULL_SHA = /^[0-9a-f]{40}$/;

export interface ActionReference {
  /** OWNER/REPO[/PATH]@REF, as a workflow's `uses:` takes it. */
  uses: string;
  /** A full commit SHA: the only reference nobody can move to other code. */
  pinned: boolean;
}

export function parseActionReference(value: string): ActionReference {
  const match = /^([A-Za-z0-9-]+\/[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._/-]+)?)@([A-Za-z0-9._/-]+)$/.exec(value.trim());
  if (!match) {
    throw new BackstopError(
      'INVALID_INPUT',
      `--action-ref must be OWNER/REPO@COMMIT_SHA (e.g. ${BACKSTOP_REPOSITORY || 'owner/backstop'}@${'0'.repeat(40)}), got "${value.slice(0, 200)}".`,
    );
  }
  return { uses: `${match[1]}@${match[2]}`, pinned: FULL_SHA.test(match[2]!) };
}

/** Backstop's own repository at the commit this copy of Backstop was built from. */
export async function defaultActionReference(): Promise<ActionReference> {
  const commit = await backstopCommit();
  if (!commit || !BACKSTOP_REPOSITORY) {
    throw new BackstopError(
      'INVALID_INPUT',
      `This copy of Backstop does not know the commit it was built from. Pass --action-ref ${BACKSTOP_REPOSITORY || 'OWNER/REPO'}@COMMIT_SHA, the full commit SHA of the Backstop release the workflow should run.`,
    );
  }
  return { uses: `${BACKSTOP_REPOSITORY}@${commit}`, pinned: true };
}

/**
 * The commit this copy was built from: the executable's asset, the npm package's dist/commit
 * (written by `npm pack`), or, in a checkout, its own HEAD — only its own: a package installed
 * inside some other repository must not report that repository's commit.
 */
async function backstopCommit(): Promise<string | null> {
  let recorded: string | null = null;
  if (isSea()) recorded = getAsset(COMMIT_FILE, 'utf8');
  else if (!bundledFiles) {
    recorded = await fs.readFile(new URL(`../${COMMIT_FILE}`, import.meta.url), 'utf8').catch(() => null);
    const gitDir = fileURLToPath(new URL('../../.git', import.meta.url));
    if (recorded === null && existsSync(gitDir)) {
      recorded = await run('git', ['--git-dir', gitDir, 'rev-parse', 'HEAD'], { timeout: 10_000 }).then(
        ({ stdout }) => stdout,
        () => null,
      );
    }
  }
  const commit = recorded?.trim() ?? '';
  return FULL_SHA.test(commit) ? commit : null;
}
