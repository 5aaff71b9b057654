import type { Writable } from 'node:stream';

/**
 * Writes `source` into `into` with backpressure, leaving `into` open when `source` ends unless
 * `end` is set. When `into` closes early (its process exited or stopped reading), `closed`
 * says what follows: an error to throw, or null to read the rest of `source` to its end and
 * discard it, so that the checks in its stages still run (see streamVerifiedFile).
 * A pipeline into `into` instead would end it, or with `end: false` leave listeners on it.
 */
export async function writeInto(source: AsyncIterable<Buffer>, into: Writable, options: { end: boolean; closed: () => Error | null }): Promise<void> {
  let open = true;
  const stillOpen = () => {
    if (open && !into.destroyed && !into.writableEnded) return true;
    open = false;
    const error = options.closed();
    if (error) throw error;
    return false;
  };
  for await (const chunk of source) {
    if (!stillOpen() || into.write(chunk)) continue;
    await new Promise<void>((resolve) => {
      const done = () => {
        into.off('drain', done);
        into.off('close', done);
        resolve();
      };
      into.on('drain', done);
      into.on('close', done);
      if (into.destroyed) done();
    });
  }
  if (options.end && stillOpen()) into.end();
}
