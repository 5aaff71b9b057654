import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Pids of live `program` processes whose arguments contain `needle` (reads /proc, like
 * pgrep). Matching the program name matters: a Postgres backend's title also names the
 * database.
 */
export async function processesMatching(program: string, needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = (await fs.readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
      const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8');
      // Zombies have exited already; only their parent has not collected them yet.
      if (path.basename(argv[0] ?? '') === program && argv.some((arg) => arg.includes(needle)) && !/^\d+ \(.*\) Z/.test(stat)) {
        pids.push(Number(entry));
      }
    } catch {
      // Exited while we looked.
    }
  }
  return pids;
}
