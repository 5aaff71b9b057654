import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';

export interface MachineDescription {
  cpu: string;
  cores: number;
  memoryGB: number;
  kernel: string;
  node: string;
  date: string;
}

export async function describeMachine(): Promise<MachineDescription> {
  const cpuinfo = await fs.readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  return {
    cpu: model,
    cores: os.availableParallelism(),
    memoryGB: Math.round((os.totalmem() / 1e9) * 10) / 10,
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    date: new Date().toISOString(),
  };
}

/** The machine's 1-minute load average (other work on the machine shows here). */
export async function loadAverage(): Promise<number> {
  return Number((await fs.readFile('/proc/loadavg', 'utf8').catch(() => '0')).split(' ')[0]);
}

/**
 * Writes out what earlier cases left in the page cache before the next case starts: s3rver does
 * not fsync, and its objects would otherwise be written back (30 s later, by the kernel) in the
 * middle of whichever case runs then.
 */
export async function settle(): Promise<void> {
  await new Promise<void>((resolve) => execFile('sync', () => resolve()));
}
