import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { minimalEnvironment } from './childEnvironment.ts';

const found = new Map<string, string | null>();

/**
 * The first `name` on PATH, once `probeArgs` has been seen to exit 0 with it (a command can be
 * there and still not work: stdbuf without its library); null when it is missing or fails.
 * Looked up once per process and PATH.
 */
export function findWorkingCommand(name: string, probeArgs: string[]): string | null {
  const key = `${name}\0${probeArgs.join('\0')}\0${process.env.PATH ?? ''}`;
  const cached = found.get(key);
  if (cached !== undefined) return cached;
  let result: string | null = null;
  for (const directory of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(directory || '.', name);
    try {
      accessSync(candidate, constants.X_OK);
    } catch {
      continue;
    }
    const probe = spawnSync(candidate, probeArgs, { stdio: 'ignore', timeout: 5000, env: minimalEnvironment() });
    if (probe.status === 0) result = candidate;
    break;
  }
  found.set(key, result);
  return result;
}
