import type { Config } from '../../core/config.ts';
import type { Pool } from '../../db/pool.ts';

/**
 * What every target operation is given: the catalog, and the configuration that says where
 * new targets store their backups and where pg_dump is looked for.
 */
export interface TargetDeps {
  pool: Pool;
  /** `runDeadlineMs`: of the base backup a continuous target queues when it is turned on. */
  config: Pick<Config, 'defaultStoreUrl' | 'pgTools'> & Partial<Pick<Config, 'runDeadlineMs'>>;
}

export type { DatabaseLocation } from '../../core/databaseUrl.ts';
export type {
  ContinuousSettings,
  GithubExecutorConfig,
  KeptBackup,
  NotificationChannel,
  NotificationChannelView,
  RetentionConfig,
  ScheduleConfig,
  TargetOptions,
  TargetRecord,
  VerificationPolicy,
} from '../../db/targets.ts';
