import { activeStatuses } from '../core/runState.ts';
import type { Queryable } from './pool.ts';
import type { Artifact } from '../core/artifact.ts';
import type { RunKind } from './runRecords.ts';
import type { RunStatus } from '../core/runState.ts';

/** What decides a target's actions (src/core/actions.ts): its newest kept good backup, and whether a run is under way. */
export interface TargetRunFacts {
  newestBackup: { id: string; kind: RunKind; status: RunStatus; artifact: Artifact } | null;
  busy: boolean;
}

export async function getTargetRunFacts(db: Queryable, targetId: string): Promise<TargetRunFacts> {
  const { rows } = await db.query<{ newest: TargetRunFacts['newestBackup']; busy: boolean }>(
    `select
       (select jsonb_build_object('id', r.id, 'kind', r.kind, 'status', r.status, 'artifact', r.artifact)
          from backstop.runs r
          where r.target_id = $1 and r.kind = 'backup' and r.status = 'succeeded' and r.artifact is not null and r.pruned_at is null
          order by r.created_at desc limit 1) as newest,
       exists (select 1 from backstop.runs r where r.target_id = $1 and r.status = any($2::text[])) as busy`,
    [targetId, activeStatuses],
  );
  return { newestBackup: rows[0]?.newest ?? null, busy: rows[0]?.busy ?? false };
}
