import { slotNameFor } from '../../core/changeSegment.ts';
import { continuousRefusals, planPublication, poolerRefusal, qualifiedName, type PublicationPlan, type UnprotectedTable } from '../../core/continuousRules.ts';
import { databaseName, describeDatabase, parseDatabaseUrl } from '../../core/databaseUrl.ts';
import { BackstopError } from '../../core/errors.ts';
import type { BackupProfile } from '../../core/manifest.ts';
import { createSlotWithSnapshot } from '../../continuous/slotSnapshot.ts';
import { dropContinuity, publishTables, readSourceFacts, readSourceTables, withSource } from '../../continuous/sourceSetup.ts';
import { getStream, recordUnprotectedTables, startStream, stopStream } from '../../db/continuousStreams.ts';
import { setTargetContinuous, type ContinuousSettingsUpdate } from '../../db/continuousTargets.ts';
import { withTransaction } from '../../db/pool.ts';
import { createRun } from '../../db/runRecords.ts';
import type { TargetDeps, TargetRecord } from './targetDeps.ts';

/**
 * Turning a target's continuity on and off (docs/CONTINUOUS.md), for `target add`, `target
 * update` and `target delete`: read the source and refuse with the fix before anything is
 * created; then the publication, the permanent slot, the stream row and a first base backup.
 *
 * Why a slot made now and base backups each from a temporary slot of their own are enough: a
 * logical slot's consistent point lies at or after the WAL position at which its creation
 * began. The permanent slot is made (at P) before the base backup's temporary slot is begun,
 * so that one's consistent point T is later than P. The base holds every transaction
 * committed before T; the permanent slot streams every one committed after P, so the
 * transactions after T are in the change archive, and those between P and T are in both, which
 * a restore tells apart by commit LSN (it replays only those at or after the base's LSN). The
 * same holds for every later base backup, as long as the permanent slot existed before its
 * temporary one was begun: the runner checks that (`performBackup`).
 */

/**
 * A target as an add or update left it, with what its continuity did: the base backup it
 * queued, the tables published and those left out, and what could not be done on the source.
 */
export type TargetChange = TargetRecord & {
  baseRunId?: string;
  publishedTables?: number;
  unprotectedTables?: UnprotectedTable[];
  warnings?: string[];
};

/** What the source was found to allow: the tables to publish and those left out. */
export interface ContinuityPlan {
  slot: string;
  plan: PublicationPlan;
  /** The slot is on the source already (a continuous target's own). */
  slotExists: boolean;
}

const BASE_DEADLINE_MS = 21_600_000;

function refused(databaseUrl: string, reasons: string[]): BackstopError {
  const listed = reasons.length === 1 ? reasons[0] : reasons.map((reason, index) => `(${index + 1}) ${reason}`).join(' ');
  return new BackstopError('CONTINUOUS_REFUSED', `${databaseUrl ? describeDatabase(databaseUrl) : 'The target'} cannot be backed up continuously: ${listed}`, { field: 'continuous' });
}

/**
 * A continuous target's slot and publication live in its database: a new URL that names
 * another server or database would leave them there, holding back its WAL with no streamer,
 * while the new database has neither. Refused (CONTINUOUS_REFUSED) unless the same change
 * turns continuity off, which drops them from the database they are in. A URL of the same
 * server and database (another password, user or parameter) changes nothing of that.
 */
export function assertDatabaseKeepsContinuity(target: { name: string; databaseUrl: string; continuous: boolean }, change: { databaseUrl?: string; continuous?: unknown }): void {
  if (!target.continuous || change.databaseUrl === undefined || change.continuous === null) return;
  if (target.databaseUrl !== '' && sameDatabase(target.databaseUrl, change.databaseUrl)) return;
  throw new BackstopError(
    'CONTINUOUS_REFUSED',
    `Target ${target.name} is continuous: its replication slot and publication are on ${target.databaseUrl ? describeDatabase(target.databaseUrl) : 'its database'}, and a new database URL would leave them there. Turn continuity off first (\`backstop target update ${target.name} --no-continuous\`, which drops them), change the URL, then turn it on again (\`backstop target update ${target.name} --continuous\`, which takes a new base backup).`,
    { field: 'databaseUrl' },
  );
}

function sameDatabase(a: string, b: string): boolean {
  const where = (raw: string) => {
    const url = parseDatabaseUrl(raw);
    return `${(url.hostname || url.searchParams.get('host') || '').toLowerCase()}:${url.port || url.searchParams.get('port') || '5432'}/${databaseName(raw)}`;
  };
  try {
    return where(a) === where(b);
  } catch {
    // Not a URL Backstop can read: the target checks refuse it with their own message.
    return false;
  }
}

/**
 * What refuses continuity without reaching the source: the server profile, no URL, a
 * pooler's URL. Asked before the target's other checks, so a pooler is named as the reason
 * rather than the connection it may refuse.
 */
export function assertContinuityPossible(target: { databaseUrl: string; profile: BackupProfile | undefined }): void {
  if (target.profile === 'server') throw refused(target.databaseUrl, ['a whole server (the server profile) cannot be continuous: add a target per database instead.']);
  if (target.databaseUrl === '') throw refused(target.databaseUrl, ['the target has no database URL yet: set one first.']);
  const pooler = poolerRefusal(target.databaseUrl);
  if (pooler) throw refused(target.databaseUrl, [pooler]);
}

/**
 * Reads the source and refuses (CONTINUOUS_REFUSED, every reason with its fix) when it cannot
 * be followed: a pooler URL (before any connection), wal_level, the role's rights, no free
 * slot or WAL sender, tables named that are not there or nothing that can be followed.
 * Nothing is created.
 */
export async function checkContinuity(
  target: { id: string; databaseUrl: string; profile: BackupProfile | undefined; continuous: boolean },
  tables: string[] | null,
): Promise<ContinuityPlan> {
  assertContinuityPossible(target);
  const slot = slotNameFor(target.id);
  return withSource(target.databaseUrl, async (client) => {
    const facts = await readSourceFacts(client, slot);
    const reasons = continuousRefusals(facts, slot, target.continuous);
    if (reasons.length > 0) throw refused(target.databaseUrl, reasons);
    const plan = planPublication(await readSourceTables(client), tables);
    if (plan.missing.length > 0) throw refused(target.databaseUrl, [`the database has no table ${plan.missing.join(', ')} (name tables as schema.table).`]);
    if (plan.published.length === 0) {
      throw refused(target.databaseUrl, [
        plan.unprotected.length === 0
          ? 'the database has no table to follow yet: create its tables first.'
          : `no table can be followed safely: ${plan.unprotected.map((table) => `${qualifiedName(table)} (${table.reason}; ${table.fix})`).join('; ')}.`,
      ]);
    }
    return { slot, plan, slotExists: facts.slotExists };
  });
}

/** Drops what a failed enable made on the source, so that a retry starts clean. */
async function undoSource(databaseUrl: string, slot: string): Promise<void> {
  await withSource(databaseUrl, (client) => dropContinuity(client, slot, slot, { attempts: 3 })).catch(() => {});
}

/**
 * Turns continuity on for a stored target, from a plan `checkContinuity` made: the
 * publication, the permanent slot (its snapshot released at once: the first base backup takes
 * its own, see above), the stream row (`starting`) and the settings, then a base backup is
 * queued. On a failure what was made on the source is dropped again. Answers the queued run.
 */
export async function enableContinuity(
  deps: TargetDeps,
  target: { id: string; databaseUrl: string },
  planned: ContinuityPlan,
  settings: ContinuousSettingsUpdate,
): Promise<{ baseRunId: string }> {
  const { slot, plan } = planned;
  try {
    await withSource(target.databaseUrl, (client) => publishTables(client, slot, plan.published, target.databaseUrl));
    // No catalog transaction is open meanwhile: creating a logical slot waits for every
    // transaction running on the source's server to end, which may be the catalog's own.
    const made = await createSlotWithSnapshot(target.databaseUrl, slot);
    await made.release();
    return await withTransaction(deps.pool, async (client) => {
      await startStream(client, { targetId: target.id, slot, publication: slot, unprotected: plan.unprotected, startLsn: made.consistentLsn });
      await setTargetContinuous(client, target.id, settings);
      const run = await createRun(client, { targetId: target.id, trigger: 'continuous', runDeadlineMs: deps.config.runDeadlineMs ?? BASE_DEADLINE_MS });
      return { baseRunId: run.id };
    });
  } catch (error) {
    await undoSource(target.databaseUrl, slot);
    throw error;
  }
}

/** A continuous target's settings changed: the publication re-planned, the settings stored; the slot goes on. */
export async function replanContinuity(deps: TargetDeps, target: { id: string; databaseUrl: string }, planned: ContinuityPlan, settings: ContinuousSettingsUpdate): Promise<void> {
  await withSource(target.databaseUrl, (client) => publishTables(client, planned.slot, planned.plan.published, target.databaseUrl));
  await withTransaction(deps.pool, async (client) => {
    await recordUnprotectedTables(client, target.id, planned.plan.unprotected);
    await setTargetContinuous(client, target.id, settings);
  });
}

/**
 * Turns continuity off: the stream is marked stopped with the reason first (a streamer
 * renewing its lease then lets go), then the slot and publication are dropped on the source,
 * its walsender ended if one still streams. A source that cannot be reached does not keep a
 * target from being turned off or deleted: the answer says what to drop there by hand.
 */
export async function disableContinuity(deps: TargetDeps, target: { id: string; databaseUrl: string }, reason: string): Promise<{ warnings: string[] }> {
  const stream = await getStream(deps.pool, target.id);
  const slot = stream?.slotName ?? slotNameFor(target.id);
  const publication = stream?.publicationName ?? slot;
  await withTransaction(deps.pool, async (client) => {
    await stopStream(client, target.id, reason);
    await setTargetContinuous(client, target.id, null);
  });
  return dropSourceContinuity(target.databaseUrl, slot, publication);
}

/** Drops the slot and publication on the source; what could not be dropped is said, with how to by hand. */
export async function dropSourceContinuity(databaseUrl: string, slot: string, publication: string): Promise<{ warnings: string[] }> {
  try {
    await withSource(databaseUrl, (client) => dropContinuity(client, slot, publication));
    return { warnings: [] };
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    return {
      warnings: [
        `The replication slot ${slot} and the publication ${publication} could not be dropped on ${databaseUrl ? describeDatabase(databaseUrl) : 'the source'} (${why}). A slot left there keeps WAL on the source's disk: drop both by hand with SELECT pg_drop_replication_slot('${slot}'); DROP PUBLICATION ${publication};`,
      ],
    };
  }
}
