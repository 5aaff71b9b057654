/**
 * The API's answers as the dashboard reads them (see /api/openapi.json): types for the
 * JSDoc-checked modules beside this file (`npm run typecheck`). Never loaded by the browser.
 */
import type { ApiTokenRole, ErrorCode, NotificationEvent, RunKind, RunStatus } from './serverConstants.js';

export type { ApiTokenRole, ErrorCode, NotificationEvent, RunKind, RunStatus };

export interface Me {
  id: string;
  name: string;
  role: ApiTokenRole;
}

/** Why an action is not possible, in the server's words. */
export type ActionVerdict = { allowed: true; identityRequired?: boolean } | { allowed: false; blockedBy: 'role' | 'state' | 'identity'; reason: string; identityRequired?: boolean };

export interface RunActions {
  cancel: ActionVerdict;
  verify: ActionVerdict;
  restore: ActionVerdict;
  download: ActionVerdict;
}

export interface TargetActions {
  backup: ActionVerdict;
  verifyNewest: ActionVerdict;
  restoreNewest: ActionVerdict;
  test: ActionVerdict;
  edit: ActionVerdict;
  pause: ActionVerdict;
  delete: ActionVerdict;
  testNotification: ActionVerdict;
}

export interface ArtifactFile {
  name: string;
  size: number;
  sha256: string;
}

export interface Artifact {
  storeUrl: string;
  prefix: string;
  manifest: ArtifactFile;
  files: ArtifactFile[];
}

export interface RunErrorInfo {
  code: string;
  message: string;
}

export interface Progress {
  phase?: string;
  bytesDumped?: number;
  bytesStored?: number;
  rateBytesPerSecond?: number;
  elapsedMs?: number;
}

export interface Run {
  id: string;
  kind: RunKind;
  subjectRunId: string | null;
  targetId: string;
  targetName: string;
  status: RunStatus;
  trigger: string;
  attempt: number;
  maxAttempts: number;
  claimedBy: string | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: RunErrorInfo | null;
  progress: Progress | null;
  artifact: Artifact | null;
  executor: { htmlUrl?: string } & Record<string, unknown> | null;
  verification: { status?: string; at?: string } & Record<string, unknown> | null;
  /** Only on GET /api/v1/runs/{id}. */
  actions?: RunActions;
}

export interface RunEvent {
  id: number;
  runId: string;
  at: string;
  attempt: number;
  kind: string;
  status: string | null;
  message: string | null;
  data: Record<string, unknown> | null;
}

export interface FeedEvent extends RunEvent {
  targetName: string;
  runKind: RunKind;
}

export interface Page<T> {
  items: T[];
  nextCursor?: string | null;
}

export interface NotificationChannelView {
  id: string;
  kind: 'webhook' | 'slack';
  on: NotificationEvent[];
  signed: boolean;
}

export interface TargetOptions {
  compression?: string;
  encryptTo?: string[];
  profile?: string;
  checksums?: boolean;
  withStorage?: boolean;
  restoreTo?: string[];
}

export interface Schedule {
  cron: string;
  timezone: string;
}

export interface Retention {
  keepLast?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
}

export interface VerificationPolicy {
  everyNth?: number;
  cron?: string;
  timezone?: string;
  checksums?: boolean;
}

export interface GithubExecutor {
  kind: 'github';
  owner: string;
  repo: string;
  workflow: string;
  ref?: string;
}

export interface Target {
  id: string;
  name: string;
  storeUrl: string;
  options: TargetOptions;
  exclusive: boolean;
  maxAttempts: number;
  schedule: Schedule | null;
  retention: Retention | null;
  verification: VerificationPolicy | null;
  notifications: NotificationChannelView[];
  executor: GithubExecutor | null;
  /** Which database it points at; never the password. */
  database?: { host: string; port: number | null; database: string; user: string | null };
  paused?: boolean;
  createdAt: string;
  updatedAt: string;
  /** Only on GET /api/v1/targets/{name}. */
  actions?: TargetActions;
}

export interface RunBrief {
  id: string;
  kind: RunKind;
  status: RunStatus;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: RunErrorInfo | null;
  bytes: number | null;
  subjectRunId: string | null;
}

export interface OverviewItem {
  name: string;
  health: 'ok' | 'failing' | 'stale' | 'never';
  healthReason: string;
  schedule: Schedule | null;
  executor?: 'worker' | 'github';
  nextScheduledAt: string | null;
  lastRun: RunBrief | null;
  activeRun: RunBrief | null;
  newestBackup: RunBrief | null;
  lastVerification: RunBrief | null;
}

export interface HistoryPoint {
  runId: string;
  status: RunStatus;
  createdAt: string;
  finishedAt: string;
  durationSeconds: number | null;
  bytes: number | null;
  dumpedBytes?: number | null;
  errorCode?: string | null;
}

export interface UnknownBackup {
  prefix: string;
  runId: string;
  detail: string;
}

export interface Restore {
  id: string;
  runId: string;
  status: 'running' | 'restored' | 'failed';
  startedAt: string | null;
  finishedAt: string | null;
  error: RunErrorInfo | null;
  requestedBy?: string | null;
  message?: string | null;
}

export interface ConnectionCheck {
  name: 'store-url' | 'database' | 'pg-dump' | 'store-write';
  ok: boolean;
  detail: string;
  error?: RunErrorInfo;
}

export interface TargetTest {
  target: Target;
  ok: boolean;
  checks: ConnectionCheck[];
  serverVersion?: string;
  pgDump?: { path: string; version: string };
}

export interface DeletedTarget {
  deleted: string;
  keptBackups: { runId: string; prefix: string; finishedAt: string | null; sizeBytes: number | null }[];
  storeUrl: string;
}

export interface TestNotification {
  delivered: boolean;
  status?: number;
  error?: string;
}

export interface FieldProblem {
  field: string;
  message: string;
}
