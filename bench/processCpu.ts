import fs from 'node:fs/promises';

const CLOCK_TICKS_PER_SECOND = 100;

/**
 * CPU time (user + system) of a running process so far, from /proc/PID/stat; with
 * `withChildren`, plus that of its children it has reaped. 0 for a process that is gone.
 */
export async function processCpuMs(pid: number, withChildren = false): Promise<number> {
  const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the command (which may hold spaces) in parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [utime, stime, cutime, cstime] = [11, 12, 13, 14].map((index) => Number(fields[index] ?? 0));
  return ((utime! + stime! + (withChildren ? cutime! + cstime! : 0)) * 1000) / CLOCK_TICKS_PER_SECOND;
}
