import type { AuditActor } from '../core/auditActor.ts';
import type { Config } from '../core/config.ts';
import { listTargets } from '../db/targets.ts';
import { countActiveApiTokens } from '../db/tokens.ts';
import { createApiToken } from './createApiToken.ts';
import { ensureSampleTarget } from './ensureSampleTarget.ts';
import type { Catalog } from './openCatalog.ts';
import { triggerBackup } from './triggerBackup.ts';

export interface QuickstartOutcome {
  /** The sample target added and its first backup queued; null when the catalog already had targets. */
  sample: { target: string; runId: string } | null;
  /** No target, but no embedded server to hold the sample database either (BACKSTOP_DATABASE_URL is set). */
  sampleNeedsEmbedded: boolean;
  /** A new admin token when the catalog had none: shown once, never logged. */
  adminToken: string | null;
}

/**
 * `npm start`: the first start on the embedded defaults gives something to look at and a way
 * in: the sample target with a first backup queued (the in-process worker takes it), and an
 * admin token when there is none. Both are in the audit trail as `actor`'s (who started the server).
 */
export async function quickstart(catalog: Catalog, config: Pick<Config, 'defaultStoreUrl' | 'runDeadlineMs'>, actor: AuditActor): Promise<QuickstartOutcome> {
  const outcome: QuickstartOutcome = { sample: null, sampleNeedsEmbedded: false, adminToken: null };
  if ((await listTargets(catalog.pool)).length === 0) {
    if (catalog.embedded) {
      const target = await ensureSampleTarget(catalog.pool, catalog.embedded, config);
      const run = await triggerBackup(catalog.pool, config, { target: target.name }, { trigger: 'quickstart', actor });
      outcome.sample = { target: target.name, runId: run.id };
    } else {
      outcome.sampleNeedsEmbedded = true;
    }
  }
  if ((await countActiveApiTokens(catalog.pool, 'admin')) === 0) {
    outcome.adminToken = (await createApiToken(catalog.pool, { name: 'first-start admin', role: 'admin' }, actor)).token;
  }
  return outcome;
}
