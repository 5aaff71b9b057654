import type { Config } from '../core/config.ts';
import { scratchClusterHome, stopEmbeddedPostgres } from '../db/embeddedPostgres.ts';

/**
 * Stops the embedded servers under BACKSTOP_HOME: the drills' scratch server (drills use one
 * whether the catalog is embedded or not) and the embedded catalog. `catalog` is null when the
 * catalog is not embedded (BACKSTOP_DATABASE_URL is set): there is none to stop.
 */
export async function stopEmbeddedServers(config: Pick<Config, 'home' | 'databaseUrl'>): Promise<{ scratch: boolean; catalog: boolean | null }> {
  const scratch = await stopEmbeddedPostgres(scratchClusterHome(config.home));
  if (config.databaseUrl) return { scratch, catalog: null };
  return { scratch, catalog: await stopEmbeddedPostgres(config.home) };
}
