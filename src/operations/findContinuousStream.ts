import { BackstopError } from '../core/errors.ts';
import { getStream, type StreamRecord } from '../db/continuousStreams.ts';
import type { Queryable } from '../db/pool.ts';
import { getTarget } from '../db/targets.ts';

/** The stream of a continuous target that can be streamed: refuses a target that is not continuous, or whose stream was stopped (with why). */
export async function findContinuousStream(db: Queryable, targetName: string): Promise<StreamRecord> {
  const target = await getTarget(db, targetName);
  const stream = await getStream(db, target.id);
  if (!stream) throw new BackstopError('INVALID_INPUT', `Target ${targetName} is not continuous. Make it so with \`backstop target update ${targetName} --continuous\`.`);
  if (stream.state === 'stopped') throw new BackstopError('INVALID_INPUT', `The stream of ${targetName} is stopped: ${stream.stoppedReason ?? 'no reason recorded'}.`);
  return stream;
}
