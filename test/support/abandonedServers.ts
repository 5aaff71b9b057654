import fs from 'node:fs/promises';
import path from 'node:path';
import { CLUSTER_OWNER_FILE, exists } from '../../src/db/embeddedPostgres.ts';

/**
 * PostgreSQL servers left running by a test whose home is gone: the data folder was deleted
 * under a running server, or the cluster kept outside its home (as root) names a home that no
 * longer exists. A server whose home still exists is never listed: it may belong to a test
 * run that is still going.
 */
export async function abandonedEmbeddedServers(): Promise<{ pid: number; dataDir: string }[]> {
  const found: { pid: number; dataDir: string }[] = [];
  for (const entry of await fs.readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const args = (await fs.readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    // A postmaster keeps its command line; its backends rewrite theirs ("postgres: …").
    if (path.basename(args[0] ?? '') !== 'postgres') continue;
    const flag = args.indexOf('-D');
    if (flag < 0 || !args[flag + 1]) continue;
    const dataDir = args[flag + 1]!;
    const cwd = await fs.readlink(`/proc/${entry}/cwd`).catch(() => '');
    if (cwd.endsWith(' (deleted)') || !(await exists(dataDir))) {
      found.push({ pid: Number(entry), dataDir });
      continue;
    }
    const owner = await fs.readFile(path.join(path.dirname(dataDir), CLUSTER_OWNER_FILE), 'utf8').catch(() => null);
    if (owner !== null && !(await exists(owner))) found.push({ pid: Number(entry), dataDir });
  }
  return found;
}

/** Stops them (immediate shutdown) and removes their clusters kept outside a home. */
export async function stopAbandonedServers(servers: { pid: number; dataDir: string }[]): Promise<void> {
  for (const { pid, dataDir } of servers) {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      continue;
    }
    const clusterHome = path.dirname(dataDir);
    if (await exists(path.join(clusterHome, CLUSTER_OWNER_FILE))) await fs.rm(clusterHome, { recursive: true, force: true });
  }
}
