import type { Logger } from 'pino';
import { BackstopError, isBackstopError } from '../core/errors.ts';
import { formatRestoreDestination, restoreDestinationOf, restoreToAllows } from '../core/restoreDestination.ts';
import type { Queryable } from '../db/pool.ts';
import type { RunRecord } from '../db/runRecords.ts';
import { getTargetWithSecret } from '../db/targets.ts';
import type { ApiTokenRole } from '../db/tokens.ts';
import { connectDatabase } from '../pgtools/connectDatabase.ts';
import { privilegeReasons, privilegesOf } from '../pipeline/rolePrivileges.ts';

/**
 * pg_restore runs the backup's code (CHECKs, defaults, index expressions) as the destination
 * URL's role, and a backup is what its source database's owner made it. A role that could run
 * programs or read files on the destination server is refused unless the request names it.
 */
export async function assertRestoreRoleAccepted(databaseUrl: string, privilegedRole: string | undefined): Promise<void> {
  const client = await connectDatabase(databaseUrl);
  try {
    const role = await privilegesOf(client);
    const reasons = privilegeReasons(role);
    if (reasons.length === 0 || privilegedRole === role.name) return;
    throw new BackstopError(
      'RESTORE_ROLE_PRIVILEGED',
      `The restore destination connects as "${role.name}", which is ${reasons.join(', ')}: pg_restore runs the backup's code (CHECKs, defaults, index expressions) as that role, so whoever owned objects in the source database could run programs and read files on the destination server. ` +
        `Restore with a role that owns the destination database and nothing more (CREATE ROLE app_restore LOGIN PASSWORD '…'; CREATE DATABASE app_restored OWNER app_restore), ` +
        `or accept this role by passing "privilegedRole": ${JSON.stringify(role.name)} in the request.`,
    );
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * The destination rules of a restore the server runs for an API token. Admins restore
 * anywhere; anyone else only into a destination the target's `restoreTo` list names, so the
 * API is no client of arbitrary hosts and ports. Then the destination role (above), checked
 * before the restore starts so that the refusal is the answer; a destination that does not
 * answer now is checked again by the restore itself (`roleChecked: false`).
 */
export async function checkRestoreDestination(
  db: Queryable,
  input: { run: RunRecord; databaseUrl: string; privilegedRole: string | undefined; role: ApiTokenRole; log: Pick<Logger, 'info'> },
): Promise<{ roleChecked: boolean }> {
  if (input.role !== 'admin') {
    const destination = restoreDestinationOf(input.databaseUrl);
    const target = await getTargetWithSecret(db, input.run.targetId);
    const allowed = Array.isArray(target.options.restoreTo) ? (target.options.restoreTo as string[]) : [];
    if (!restoreToAllows(allowed, destination)) {
      throw new BackstopError(
        'FORBIDDEN',
        `${formatRestoreDestination(destination)} is not in the restore destinations of target "${target.name}": an operator restores only into one its options.restoreTo lists (HOST:PORT/DATABASE, * for any part). Ask an admin to add it (PATCH /api/v1/targets/${target.name}) or to run this restore.`,
      );
    }
  }
  try {
    await assertRestoreRoleAccepted(input.databaseUrl, input.privilegedRole);
    return { roleChecked: true };
  } catch (error) {
    if (isBackstopError(error, 'RESTORE_ROLE_PRIVILEGED')) throw error;
    input.log.info({ err: error }, 'restore destination not checked before starting');
    return { roleChecked: false };
  }
}
