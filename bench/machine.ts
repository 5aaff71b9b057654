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
