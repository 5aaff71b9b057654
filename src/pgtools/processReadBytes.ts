import fs from 'node:fs/promises';

/**
 * How many bytes a process and its live children have read so far, from Linux's
 * /proc/PID/io (`rchar`): the way to see how far pg_restore (or psql) got through the file
 * it restores from, which it reads once from start to end and never reports itself.
 * `pg_restore --jobs` reads through forked workers; a worker that ended is counted in its
 * parent once reaped, so the sum may dip for an instant: callers keep the highest figure.
 * A few bytes more come from the server's answers. Null where /proc does not tell (another
 * system, or the process is gone).
 */
export async function processReadBytes(pid: number): Promise<number | null> {
  const own = await readChars(pid);
  if (own === null) return null;
  let total = own;
  for (const child of await childrenOf(pid)) total += (await processReadBytes(child)) ?? 0;
  return total;
}

async function readChars(pid: number): Promise<number | null> {
  try {
    const match = /^rchar:\s*(\d+)$/m.exec(await fs.readFile(`/proc/${pid}/io`, 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

async function childrenOf(pid: number): Promise<number[]> {
  try {
    const text = await fs.readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
    return text.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
