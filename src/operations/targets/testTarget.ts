import { assertTargetName } from '../../core/targetName.ts';
import { findTargetWithSecret, targetNotFound } from '../../db/targets.ts';
import { runTargetChecks, type TargetCheckReport } from './targetChecks.ts';
import type { TargetDeps } from './targetDeps.ts';

export interface TargetTestResult extends TargetCheckReport {
  target: string;
}

/**
 * Runs every check on a stored target and reports each (a failing check is a result, not an
 * error): the store URL, the database and its version, a fitting pg_dump, a write to the store.
 */
export async function testTarget(deps: TargetDeps, name: string): Promise<TargetTestResult> {
  assertTargetName(name, 'target');
  const target = await findTargetWithSecret(deps.pool, name);
  if (!target) throw targetNotFound(name);
  const report = await runTargetChecks(
    { name: target.name, databaseUrl: target.databaseUrl, storeUrl: target.storeUrl, profile: target.options.profile, github: target.executor !== null },
    { pgTools: deps.config.pgTools },
  );
  return { target: target.name, ...report };
}
