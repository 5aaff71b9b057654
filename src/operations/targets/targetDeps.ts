import type { Config } from '../../core/config.ts';
import type { Pool } from '../../db/pool.ts';

/**
 * What every target operation is given: the catalog, and the configuration that says where
 * new targets store their backups and where pg_dump is looked for.
 */
export interface TargetDeps {
  pool: Pool;
  config: Pick<Config, 'defaultStoreUrl' | 'pgTools'>;
}

export type { DatabaseLocation } from '../../core/databaseUrl.ts';
export type {
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
