import type { Logger } from 'pino';
import type { Config } from '../core/config.ts';
import type { Pool } from '../db/pool.ts';
import type { BackgroundTasks } from './backgroundTasks.ts';
import type { ServerMetrics } from './metrics.ts';
import type { EventStreams } from './runEventStream.ts';

/** What route handlers share: built once per app by buildApp. */
export interface ServerContext {
  pool: Pool;
  config: Config;
  log: Logger;
  metrics: ServerMetrics;
  streams: EventStreams;
  tasks: BackgroundTasks;
  /** `/metrics` asks for an API token (the server listens beyond loopback). */
  metricsNeedToken: boolean;
}
