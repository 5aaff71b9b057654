import type { Logger } from 'pino';
import type { Config } from '../core/config.ts';
import type { Queryable } from '../db/pool.ts';
import { sqlRunnerCatalog, type RunnerCatalog } from './runnerCatalog.ts';

export interface RunnerDeps {
  /** The catalog, by SQL; or, for a remote runner, `catalog`. */
  db?: Queryable;
  catalog?: RunnerCatalog;
  config: Pick<Config, 'leaseTtlMs' | 'heartbeatIntervalMs' | 'pgTools' | 'home' | 'scratchUrl' | 'scratchPrivilegedOk' | 'identityFile'>;
  log: Logger;
}

/** The catalog a runner talks to: the one it was given, or SQL over `db`. */
export function runnerCatalogOf(deps: RunnerDeps): RunnerCatalog {
  if (deps.catalog) return deps.catalog;
  if (deps.db) return sqlRunnerCatalog(deps.db);
  throw new Error('a runner needs a catalog');
}
