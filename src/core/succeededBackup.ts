import { BackstopError } from './errors.ts';

/** What the rule needs of a run: any run record has these. */
interface RunLike {
  id: string;
  kind: string;
  status: string;
  artifact: unknown;
}

/**
 * Only a succeeded backup can be restored or drilled: anything else has no complete artifact
 * the catalog vouches for. Written once, for the CLI, the API and the drill itself, so that
 * each refuses with the same code and the same words.
 */
export function assertSucceededBackup<R extends RunLike>(run: R, use: 'restored' | 'verified'): R & { artifact: NonNullable<R['artifact']> } {
  if (run.kind !== 'backup' || run.status !== 'succeeded' || run.artifact === null || run.artifact === undefined) {
    const what = run.kind !== 'backup' ? 'a verification drill' : run.status === 'succeeded' ? 'a succeeded backup without an artifact' : run.status;
    throw new BackstopError(
      'INVALID_INPUT',
      `Run ${run.id} is ${what}; only a succeeded backup can be ${use}. Pick a backup run whose status is succeeded (list runs with status succeeded and kind backup).`,
    );
  }
  return run as R & { artifact: NonNullable<R['artifact']> };
}
