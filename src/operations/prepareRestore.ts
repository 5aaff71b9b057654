import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { describeAuditActor, type AuditActor } from '../core/auditActor.ts';
import type { AuditDetails } from '../core/auditEntry.ts';
import type { Config } from '../core/config.ts';
import type { ReportedProgress } from '../core/runProgress.ts';
import { databaseLocation, describeDatabase, parseDatabaseUrl, redactText } from '../core/databaseUrl.ts';
import { BackstopError, describeError } from '../core/errors.ts';
import type { Queryable } from '../db/pool.ts';
import type { Artifact } from '../core/artifact.ts';
import type { Manifest } from '../core/manifest.ts';
import { appendRunEvent } from '../db/runEvents.ts';
import type { RunRecord } from '../db/runRecords.ts';
import type { ApiTokenRole } from '../db/tokens.ts';
import { parseIdentities, type AgeIdentity } from '../pipeline/age.ts';
import { readManifest } from '../pipeline/readManifest.ts';
import { readRunManifest } from '../pipeline/readRunManifest.ts';
import { restoreArtifact } from '../pipeline/restore.ts';
import type { RestoreResult } from '../pipeline/restoreInput.ts';
import { openStorageEndpoint, type StorageEndpointConfig } from '../pipeline/supabaseSource/storageEndpoint.ts';
import { restoreStorageObjects, storageFilesOf } from '../pipeline/supabaseSource/storageObjects.ts';
import { locateManifest, looksLikeManifestUrl } from '../storage/manifestLocation.ts';
import { openStore } from '../storage/openStore.ts';
import type { Store } from '../storage/store.ts';
import { assertRestoreRoleAccepted, checkRestoreDestination } from './checkRestoreDestination.ts';
import { findSucceededBackup } from './findSucceededBackup.ts';
import { parseInput } from '../core/inputProblems.ts';
import { restoreRequest, type RestoreRequest } from './restoreRequest.ts';
import { audited } from './recordAudit.ts';
import { trackRestoreProgress, type ReplayProgressReport } from './trackRestoreProgress.ts';
import { looksLikeRunId, resolveRunId } from './resolveRunId.ts';
import { restoreIdentities } from './runCapabilities.ts';

export type RestoreCaller =
  /** A person at the command line, who holds the catalog: restores anywhere, as any role, and sees the outcome. */
  | { via: 'cli'; actor: AuditActor }
  /**
   * An API token: the server runs the restore. Its destination is checked first (see
   * checkRestoreDestination), and its start and outcome are events of the backup run, which
   * is where the client learns them.
   */
  | { via: 'api'; role: ApiTokenRole; actor: AuditActor };

export interface RestoreExecution {
  /** Only these schemas, or tables of these names. */
  schemas?: string[];
  tables?: string[];
  /** Also write a Supabase backup's Storage objects back through this endpoint. */
  storage?: StorageEndpointConfig | null;
  signal?: AbortSignal;
  /** The restore's progress as it goes, for the person watching (the catalog records it too, for a run of the catalog). */
  showProgress?: (progress: ReportedProgress) => void;
  /** Called once the manifest is read and checked: which backup is being restored, and whether it is encrypted. */
  onManifest?: (backup: { runId: string; target: string; encrypted: boolean }) => void;
  /**
   * The rest of a restore that does more than pg_restore (a point-in-time restore's replay).
   * `before` runs first, while the destination is untouched; `after` once the backup is
   * restored. A failure of either is this restore's (`restore_failed`), and `restored` is
   * recorded only after `after`, with its words and facts. `after` reports its progress
   * through the restore's own, which shows until it is done.
   */
  stages?: {
    before?: () => Promise<void>;
    after?: (progress: ReplayProgressReport) => Promise<{ message: string; data: Record<string, unknown> }>;
  };
}

/** How a restore is recorded, beyond the request. */
export interface RestoreRecording {
  /** The point of a point-in-time restore, in its `restore_started` event. */
  at?: string;
  /** False when the caller records the action in the audit trail itself (a point-in-time restore, which can be refused before a backup is chosen). */
  audit?: boolean;
}

export interface RestoreOutcome extends RestoreResult {
  runId: string;
  target: string;
  storage: { objects: number; bytes: number; buckets: string[] } | null;
  /** Storage objects the backup holds, restored or not. */
  storageObjects: number;
  elapsedMs: number;
}

export interface PreparedRestore {
  /** The backup run; null for a manifest URL (the manifest says which, once read). */
  runId: string | null;
  /** Ties this restore's events together (restores of one backup may overlap); the restore history lists it. */
  restoreId: string;
  target: string | null;
  /** The destination in words that hold no secret: `database "x" on host:port`. */
  destination: string;
  execute(execution?: RestoreExecution): Promise<RestoreOutcome>;
}

/** --databases and the rest are a server backup's; --schema and --table a single database's. */
function assertServerSelection(manifest: Manifest, request: { databases?: string[]; replaceDatabases?: string[] }, execution: RestoreExecution): void {
  const server = manifest.profile === 'server';
  if (!server && (request.databases !== undefined || request.replaceDatabases !== undefined)) {
    throw new BackstopError('INVALID_INPUT', `Backup ${manifest.runId} is of one database, not a server: restore it without --databases and --replace-databases.`, {
      field: 'databases',
    });
  }
  if (server && ((execution.schemas?.length ?? 0) > 0 || (execution.tables?.length ?? 0) > 0)) {
    throw new BackstopError(
      'INVALID_INPUT',
      `Backup ${manifest.runId} is of a whole server: choose its databases with --databases; --schema and --table apply to a backup of one database.`,
    );
  }
}

/** What a viewer of the events reads when the destination did not answer: never the destination server's own words. */
function failureMessage(code: string, message: string, destination: string): string {
  if (code === 'DATABASE_UNREACHABLE') {
    return `could not connect to the restore destination (${destination}); check its host, port, database and credentials. The server log has the details.`;
  }
  return redactText(message);
}

/**
 * Restores a backup into a database, in two steps: `prepareRestore` checks everything that can
 * be checked before any data moves (the request, that the backup is a succeeded one, and for
 * an API caller where it may go), and `execute` reads the artifact back, checks it against its
 * manifest, runs pg_restore, compares row counts and records `restored` on the backup run.
 *
 * `backup` is a run id (or its first characters), or, for a person without a catalog, the URL
 * of a manifest.json: the catalog is then never queried (nor is the restore in the audit
 * trail, which is in the catalog).
 *
 * The audit trail records the restore when it is prepared (accepted, or refused with the
 * reason), with where to: host, port and database, never the URL's password. Its result is
 * an event of the run (`restored`, `restore_failed`) carrying the same `restoreId`.
 */
export async function prepareRestore(
  deps: { db: Queryable; config: Pick<Config, 'pgTools' | 'identityFile'>; log: Pick<Logger, 'info' | 'warn'> },
  backup: string,
  request: RestoreRequest,
  caller: RestoreCaller,
  recording: RestoreRecording = {},
): Promise<PreparedRestore> {
  if ((caller.via === 'cli' && looksLikeManifestUrl(backup)) || recording.audit === false) return prepare(deps, backup, request, caller, recording);
  return audited(
    deps.db,
    caller.actor,
    {
      action: 'run.restore',
      subject: looksLikeRunId(backup) ? backup : null,
      details: restoreAuditDetails(request),
      subjectOf: (restore) => restore.runId,
      detailsOf: (restore) => ({ restoreId: restore.restoreId }),
    },
    () => prepare(deps, backup, request, caller, recording),
  );
}

/** The audit trail's facts of a restore's destination: host, port and database, never the user or password. */
export function restoreAuditDetails(request: unknown): AuditDetails {
  const rawUrl = (request as { databaseUrl?: unknown } | null)?.databaseUrl;
  const location = typeof rawUrl === 'string' ? databaseLocation(rawUrl) : null;
  return location ? { host: location.host, port: location.port, database: location.database } : {};
}

async function prepare(
  deps: { db: Queryable; config: Pick<Config, 'pgTools' | 'identityFile'>; log: Pick<Logger, 'info' | 'warn'> },
  backup: string,
  request: RestoreRequest,
  caller: RestoreCaller,
  recording: RestoreRecording,
): Promise<PreparedRestore> {
  const parsed = parseInput(restoreRequest, request);
  parseDatabaseUrl(parsed.databaseUrl);
  let identities: AgeIdentity[] | undefined = parsed.identity === undefined || caller.via === 'api' ? undefined : parseIdentities(parsed.identity);
  const restoreId = randomUUID();
  const destination = describeDatabase(parsed.databaseUrl);

  const db = deps.db;
  let run: (RunRecord & { artifact: Artifact }) | null = null;
  let location: { storeUrl: string; prefix: string };
  if (looksLikeManifestUrl(backup) && caller.via === 'cli') {
    location = locateManifest(backup);
  } else if (looksLikeRunId(backup)) {
    run = await findSucceededBackup(db, await resolveRunId(db, backup), 'restored');
    location = { storeUrl: run.artifact.storeUrl, prefix: run.artifact.prefix };
  } else {
    throw new BackstopError('RUN_NOT_FOUND', `"${backup}" is neither a run id (a UUID) nor a manifest URL. List runs with \`backstop runs\`.`);
  }

  let roleChecked = true;
  if (caller.via === 'api') {
    // The identity sent with the request, else the server's, checked against the backup's
    // recipients now: a missing or wrong key is the answer, not a failed restore.
    identities = await restoreIdentities(deps.config, run!, parsed.identity);
    ({ roleChecked } = await checkRestoreDestination(db, {
      run: run!,
      databaseUrl: parsed.databaseUrl,
      privilegedRole: parsed.privilegedRole,
      role: caller.role,
      log: deps.log,
    }));
    await appendRunEvent(db, {
      runId: run!.id,
      kind: 'restore_started',
      message: `restoring ${recording.at === undefined ? '' : `to ${recording.at} `}into ${destination} (${describeAuditActor(caller.actor)})`,
      data: { restoreId, requestedBy: describeAuditActor(caller.actor), clean: parsed.clean, jobs: parsed.jobs, ...(recording.at === undefined ? {} : { at: recording.at }) },
    });
  }

  const execute = async (execution: RestoreExecution = {}): Promise<RestoreOutcome> => {
    const started = performance.now();
    let store: Store | null = null;
    const events: Promise<unknown>[] = [];
    // A restore of a run of the catalog shows there too (the API, the dashboard), whoever started it.
    const progress = trackRestoreProgress({ catalog: run ? { db, runId: run.id, log: deps.log } : null, show: execution.showProgress });
    try {
      if (!roleChecked) await assertRestoreRoleAccepted(parsed.databaseUrl, parsed.privilegedRole);
      await execution.stages?.before?.();
      store = await openStore(location.storeUrl);
      // A backup named by run id must be that run's own; a manifest URL is the person's choice.
      const { manifest } = run ? await readRunManifest(store, run) : await readManifest(store, location.prefix);
      execution.onManifest?.({ runId: manifest.runId, target: manifest.target, encrypted: manifest.encryption !== null });
      const storageObjects = storageFilesOf(manifest).length;
      if (execution.storage && storageObjects === 0 && !manifest.storage) {
        throw new BackstopError('INVALID_INPUT', `Backup ${manifest.runId} holds no Supabase Storage objects (it was taken without --with-storage); restore it without --with-storage.`);
      }
      assertServerSelection(manifest, parsed, execution);
      const result = await restoreArtifact({
        store,
        prefix: location.prefix,
        manifest,
        toUrl: parsed.databaseUrl,
        clean: parsed.clean,
        jobs: parsed.jobs,
        noOwner: parsed.noOwner,
        schemas: execution.schemas,
        tables: execution.tables,
        databases: parsed.databases,
        replaceDatabases: parsed.replaceDatabases,
        globals: parsed.globals,
        // A server's restore reports each step (globals, each database) on the backup run.
        onEvent: (kind, message) => {
          if (run && manifest.profile === 'server')
            events.push(
              appendRunEvent(db, { runId: run.id, kind, message, data: { restoreId } }).catch((error: unknown) => deps.log.warn({ err: error }, 'could not record a restore event')),
            );
        },
        identities,
        pgTools: deps.config.pgTools,
        signal: execution.signal,
        onProgress: (next) => progress.update(next),
      });
      // The restore's progress ends with pg_restore's, unless a later stage goes on reporting.
      if (!execution.stages?.after) await progress.end();
      await Promise.all(events);
      let storage: RestoreOutcome['storage'] = null;
      if (execution.storage) {
        const endpoint = openStorageEndpoint(execution.storage);
        try {
          storage = await restoreStorageObjects({ endpoint, store, prefix: location.prefix, manifest, identities, signal: execution.signal ?? new AbortController().signal });
        } finally {
          endpoint.close();
        }
      }
      const finished = await execution.stages?.after?.(progress);
      await progress.end();
      const elapsedMs = Math.round(performance.now() - started);
      if (run) {
        await appendRunEvent(db, {
          runId: run.id,
          kind: 'restored',
          message: finished?.message ?? `restored into ${destination}`,
          data: {
            restoreId,
            tablesChecked: result.tablesChecked,
            bytesRestored: result.bytesRestored,
            elapsedMs,
            ...(storage ? { storageObjects: storage.objects } : {}),
            ...finished?.data,
          },
        });
      }
      return { ...result, runId: manifest.runId, target: manifest.target, storage, storageObjects, elapsedMs };
    } catch (error) {
      await Promise.all(events);
      if (caller.via === 'api') {
        const described = describeError(error);
        await progress.end();
        deps.log.warn({ err: error }, 'restore failed');
        await appendRunEvent(db, {
          runId: run!.id,
          kind: 'restore_failed',
          message: failureMessage(described.code, described.message, destination),
          data: { restoreId, code: execution.signal?.aborted ? 'CANCELLED' : described.code },
        });
      }
      throw error;
    } finally {
      await progress.end();
      await store?.close();
    }
  };

  return { runId: run?.id ?? null, restoreId, target: run?.targetName ?? null, destination, execute };
}
