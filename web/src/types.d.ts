/**
 * The API's answers as the dashboard reads them: the server's own types (src/), plus what the
 * routes add. Only for `npm run typecheck` of the JSDoc-checked modules beside this file
 * (`import('./types')`); the browser never loads it, and the npm package ships no TypeScript
 * but declarations, so it is a .d.ts, checked because web/tsconfig.json checks libraries too.
 */
import type { ActionVerdict, RunActions, TargetActions } from '../../src/core/actions.ts';
import type { AuditEntry } from '../../src/core/auditEntry.ts';
import type { Artifact, ArtifactFile } from '../../src/core/artifact.ts';
import type { RestoreRecord } from '../../src/core/restoreHistory.ts';
import type { RunProgress } from '../../src/core/runProgress.ts';
import type { TargetHealth } from '../../src/core/targetHealth.ts';
import type { AlarmRecord } from '../../src/db/alarms.ts';
import type { RunEventRecord } from '../../src/db/runEvents.ts';
import type { RunRecord } from '../../src/db/runRecords.ts';
import type { BackupHistoryPoint, RunBrief } from '../../src/db/targetActivity.ts';
import type { ChannelSettingsView } from '../../src/core/channelSettings.ts';
import type { ChannelHealth, SharedChannelRecord } from '../../src/db/channels.ts';
import type { NotificationChannelView, TargetRecord } from '../../src/db/targets.ts';
import type { TestNotificationResult } from '../../src/operations/sendTestNotification.ts';
import type { TargetRpo } from '../../src/operations/targets/listTargets.ts';
import type { TargetContinuity } from '../../src/operations/targets/targetWindow.ts';
import type { RestoreWindow, WindowLimit } from '../../src/core/restoreWindow.ts';
import type { ApiTokenRole, RunKind, RunStatus } from './serverConstants.js';

export type { RestoreWindow, TargetContinuity, TargetRpo, WindowLimit };
export type { ActionVerdict, AlarmRecord, ApiTokenRole, AuditEntry, Artifact, ArtifactFile, ChannelHealth, ChannelSettingsView, NotificationChannelView, RunActions, RunBrief, RunKind, RunStatus, TargetActions };

export interface Me {
  id: string;
  name: string;
  role: ApiTokenRole;
  /** An API token, or a person signed in with the sign-in provider (a session cookie). */
  kind: 'token' | 'user';
  owner?: string | null;
  email?: string | null;
  /** A person: what their writes send in x-backstop-csrf. */
  csrfToken?: string;
}

export interface RunErrorInfo {
  code: string;
  message: string;
}

/** Work under way on a run, as the server decides its figures (the `progress` of a run). */
export type Progress = RunProgress;

/** GET /api/v1/runs/{id} (`actions` only there), and each item of GET /api/v1/runs. */
export type Run = Omit<RunRecord, 'progress' | 'executor' | 'verification'> & {
  progress: Progress | null;
  executor: ({ htmlUrl?: string } & Record<string, unknown>) | null;
  verification: ({ status?: string; at?: string } & Record<string, unknown>) | null;
  actions?: RunActions;
};

export type RunEvent = RunEventRecord;

/** An event of the feed of all runs (GET /api/v1/events). */
export interface FeedEvent extends RunEvent {
  targetName: string;
  runKind: RunKind;
}

/** GET /api/v1/targets/{name} (`actions` only there), and each item of GET /api/v1/targets. */
export type Target = Omit<TargetRecord, 'options'> & {
  options: TargetRecord['options'] & { withStorage?: boolean; restoreTo?: string[] };
  /** Which database it points at; never the password (the target lifecycle contract). */
  database?: { host: string; port: number | null; database: string; user: string | null };
  paused?: boolean;
  actions?: TargetActions;
  /** Alarms active now (GET only). */
  alarms?: AlarmRecord[];
  /** GET /api/v1/targets/{name} only: the stream, the restorable window and its limits; null if never continuous. */
  continuity?: TargetContinuity | null;
  /** GET /api/v1/targets only: a continuous target's current RPO. */
  rpo?: TargetRpo | null;
};

/** An item of GET /api/v1/overview. */
export interface OverviewItem {
  name: string;
  health: TargetHealth;
  healthReason: string;
  schedule: TargetRecord['schedule'];
  executor?: 'worker' | 'github';
  nextScheduledAt: string | null;
  lastRun: RunBrief | null;
  activeRun: RunBrief | null;
  newestBackup: RunBrief | null;
  lastVerification: RunBrief | null;
  alarms?: AlarmRecord[];
}

export type HistoryPoint = BackupHistoryPoint;

export interface UnknownBackup {
  prefix: string;
  runId: string;
  detail: string;
}

export type Restore = RestoreRecord;

export type TestNotification = TestNotificationResult;

/** GET /api/v1/channels: a shared notification channel (no secrets). */
export type SharedChannel = SharedChannelRecord;

/** POST /api/v1/targets/{name}/test (the target lifecycle contract). */
export interface ConnectionCheck {
  name: 'store-url' | 'database' | 'pg-dump' | 'store-write';
  ok: boolean;
  detail: string;
  error?: RunErrorInfo;
}

export interface TargetTest {
  /** The name of the target tested. */
  target: string;
  ok: boolean;
  checks: ConnectionCheck[];
  serverVersion?: string;
  pgDump?: { path: string; version: string };
}

/** DELETE /api/v1/targets/{name} (the target lifecycle contract). */
export interface DeletedTarget {
  deleted: string;
  keptBackups: { runId: string; storeUrl?: string; prefix: string; finishedAt: string | null; sizeBytes: number | null }[];
  storeUrl: string;
}

/** A request field at fault, as 4xx answers name them. */
export interface FieldProblem {
  field: string;
  message: string;
}
