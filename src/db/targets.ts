import { BackstopError } from '../core/errors.ts';
import { pgErrorCode, pgErrorCodes, type Queryable } from './pool.ts';

export interface TargetOptions {
  /** zstd, zstd:LEVEL, gzip, gzip:LEVEL or none. */
  compression?: string;
  encryptTo?: string[];
  profile?: 'default' | 'supabase';
  /** Record per-table content checksums at dump time, for `verify --checksums`. */
  checksums?: boolean;
  [key: string]: unknown;
}

export interface ScheduleConfig {
  cron: string;
  timezone: string;
}

/** Grandfather-father-son retention; absent fields keep nothing extra by that rule. */
export interface RetentionConfig {
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

export type NotificationEvent = 'failed' | 'timed_out' | 'succeeded' | 'recovered' | 'cancelled' | 'verify_failed';

/** A notification channel. `url` and `secret` are secrets: stored, never returned. */
export interface NotificationChannel {
  id: string;
  kind: 'webhook' | 'slack';
  url: string;
  secret?: string;
  on: NotificationEvent[];
}

/** What is shown of a channel: no URL, no secret. */
export interface NotificationChannelView {
  id: string;
  kind: 'webhook' | 'slack';
  on: NotificationEvent[];
  signed: boolean;
}

export interface GithubExecutorConfig {
  kind: 'github';
  owner: string;
  repo: string;
  workflow: string;
  ref: string;
}

/** A target as shown to users: the database URL and channel URLs are secrets and never part of it. */
export interface TargetRecord {
  id: string;
  name: string;
  storeUrl: string;
  options: TargetOptions;
  exclusive: boolean;
  maxAttempts: number;
  schedule: ScheduleConfig | null;
  retention: RetentionConfig | null;
  verification: VerificationPolicy | null;
  notifications: NotificationChannelView[];
  executor: GithubExecutorConfig | null;
  createdAt: string;
  updatedAt: string;
}

/** A target with its secrets, for the runner and the notifier only. */
export interface TargetWithSecret extends TargetRecord {
  databaseUrl: string;
  notificationChannels: NotificationChannel[];
}

interface TargetRow {
  id: string;
  name: string;
  database_url: string;
  store_url: string;
  options: TargetOptions;
  exclusive: boolean;
  max_attempts: number;
  schedule: ScheduleConfig | null;
  retention: RetentionConfig | null;
  verification: VerificationPolicy | null;
  notifications: NotificationChannel[];
  executor_config: GithubExecutorConfig | null;
  created_at: string;
  updated_at: string;
}

function toRecord(row: TargetRow): TargetRecord {
  return {
    id: row.id,
    name: row.name,
    storeUrl: row.store_url,
    options: row.options,
    exclusive: row.exclusive,
    maxAttempts: row.max_attempts,
    schedule: row.schedule,
    retention: row.retention,
    verification: row.verification,
    notifications: (row.notifications ?? []).map((channel) => ({ id: channel.id, kind: channel.kind, on: channel.on, signed: Boolean(channel.secret) })),
    executor: row.executor_config,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export const TARGET_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/;

export function assertTargetName(name: string): void {
  if (!TARGET_NAME.test(name)) {
    throw new BackstopError(
      'INVALID_INPUT',
      `Target name "${name}" is not valid: use 1 to 63 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit.`,
    );
  }
}

export interface NewTarget {
  name: string;
  databaseUrl: string;
  storeUrl: string;
  options?: TargetOptions;
  exclusive?: boolean;
  maxAttempts?: number;
  schedule?: ScheduleConfig | null;
  retention?: RetentionConfig | null;
  verification?: VerificationPolicy | null;
  notifications?: NotificationChannel[];
  executor?: GithubExecutorConfig | null;
}

export async function createTarget(db: Queryable, input: NewTarget): Promise<TargetRecord> {
  assertTargetName(input.name);
  try {
    const { rows } = await db.query<TargetRow>(
      `insert into backstop.targets (name, database_url, store_url, options, exclusive, max_attempts,
         schedule, retention, verification, notifications, executor_config)
       values ($1, $2, $3, $4::jsonb, $5, $6, $7::jsonb, $8::jsonb, $9::jsonb, $10::jsonb, $11::jsonb) returning *`,
      [
        input.name,
        input.databaseUrl,
        input.storeUrl,
        JSON.stringify(input.options ?? {}),
        input.exclusive ?? true,
        input.maxAttempts ?? 1,
        json(input.schedule),
        json(input.retention),
        json(input.verification),
        JSON.stringify(input.notifications ?? []),
        json(input.executor),
      ],
    );
    return toRecord(rows[0]!);
  } catch (error) {
    if (pgErrorCode(error) === pgErrorCodes.UNIQUE_VIOLATION) {
      throw new BackstopError('TARGET_EXISTS', `A target named "${input.name}" already exists. Pick another name or use the existing one.`);
    }
    throw error;
  }
}

function json(value: unknown): string | null {
  return value === undefined || value === null ? null : JSON.stringify(value);
}

async function findTargetRow(db: Queryable, name: string): Promise<TargetRow | undefined> {
  const { rows } = await db.query<TargetRow>('select * from backstop.targets where name = $1', [name]);
  return rows[0];
}

export async function getTarget(db: Queryable, name: string): Promise<TargetRecord> {
  const row = await findTargetRow(db, name);
  if (!row) throw new BackstopError('TARGET_NOT_FOUND', `No target named "${name}". List targets with \`backstop target list\`.`);
  return toRecord(row);
}

export async function getTargetWithSecret(db: Queryable, targetId: string): Promise<TargetWithSecret> {
  const { rows } = await db.query<TargetRow>('select * from backstop.targets where id = $1', [targetId]);
  const row = rows[0];
  if (!row) throw new BackstopError('TARGET_NOT_FOUND', `Target ${targetId} no longer exists.`);
  return { ...toRecord(row), databaseUrl: row.database_url, notificationChannels: row.notifications ?? [] };
}

export async function listTargets(db: Queryable): Promise<TargetRecord[]> {
  const { rows } = await db.query<TargetRow>('select * from backstop.targets order by name');
  return rows.map(toRecord);
}

/**
 * For one-shot `backstop backup`: reuse the target of that name when it points at the same
 * database, create it when it does not exist, refuse when the name is taken by another one.
 */
export async function ensureTarget(db: Queryable, input: NewTarget): Promise<TargetRecord> {
  const existing = await findTargetRow(db, input.name);
  if (existing) {
    if (existing.database_url !== input.databaseUrl) {
      throw new BackstopError(
        'TARGET_EXISTS',
        `Target "${input.name}" already exists for another database. Pass --target NAME to back this one up under a different name.`,
      );
    }
    return toRecord(existing);
  }
  try {
    return await createTarget(db, input);
  } catch (error) {
    // Another process registered it between our read and our insert.
    if (error instanceof BackstopError && error.code === 'TARGET_EXISTS') return ensureTarget(db, input);
    throw error;
  }
}
