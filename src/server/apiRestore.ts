import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { BackstopError } from '../core/errors.ts';
import type { RestoreCaller } from '../operations/prepareRestore.ts';
import { requestActor, roleOf } from './auth.ts';
import type { BackgroundTasks } from './backgroundTasks.ts';

/** Who asks for a restore the server runs: an API token or a person signed in (the routes admit operators and up). */
export function apiRestoreCaller(request: FastifyRequest): Extract<RestoreCaller, { via: 'api' }> {
  const role = roleOf(request);
  if (!role) throw new BackstopError('FORBIDDEN', 'Only API tokens and people signed in restore backups.');
  return { via: 'api', role, actor: requestActor(request) };
}

/**
 * Runs a prepared restore after the answer, on the server's background tasks (a shutdown
 * aborts it). Its outcome is an event of the backup run, recorded by the restore itself, so a
 * failure here is only logged.
 */
export function restoreInBackground<T extends { elapsedMs: number }>(
  tasks: BackgroundTasks,
  name: string,
  execute: (signal: AbortSignal) => Promise<T>,
  log: Pick<Logger, 'info'>,
  facts: (outcome: T) => Record<string, unknown> = () => ({}),
): void {
  tasks.start(name, async (signal) => {
    const outcome = await execute(signal).catch(() => null);
    if (outcome) log.info({ elapsedMs: outcome.elapsedMs, ...facts(outcome) }, 'restore finished');
  });
}
