import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * Makes V8 collect its heap every so many bytes of streamed data.
 *
 * Why: a backup or a spool allocates a Buffer per pipe read, per joined chunk, per compressed
 * and encrypted chunk: about 600 MB of short-lived ArrayBuffers for a 250 MB dump. Their
 * JavaScript objects are tiny, so the young generation fills slowly, and V8 collects them only
 * once external memory has grown by its soft limit (64 MB) since the last collection; until
 * then the dead buffers stay in malloc's heap, which rarely shrinks again. A scavenge of the
 * young generation every 4 MiB of data bounds them to a few MiB. Measured on the bench
 * database (250 MB dump, compiled code, 2 cores): peak RSS of a backup to local disk
 * 132–140 MB → 100–110 MB, and no more CPU (freed memory is reused while still in cache); a
 * scavenge here takes about 0.1 ms.
 *
 * S3 parts are different: lib-storage joins each part into one 5 MiB buffer that waits for the
 * network long enough to be promoted to the old generation, which only a full collection
 * frees. A backup to such a store (Store.buffersParts) asks for one every 16 MiB it accepts:
 * peak RSS to s3rver 145–165 MB → 138–141 MB, for ~0.3 s of CPU. To local disk full
 * collections saved nothing and cost 0.8 s of CPU (358 MB dump), so they are not made there.
 *
 * `gc` is exposed at run time (--expose-gc set through v8.setFlagsFromString makes it a global
 * of contexts created afterwards), so no command line needs a flag. Where that is refused,
 * nothing is forced and V8 collects on its own schedule.
 */
export const YOUNG_EVERY_BYTES = 4 << 20;
export const FULL_EVERY_BYTES = 16 << 20;

type Generation = 'minor' | 'major';
type GcFunction = (options: { type: Generation }) => void;
let exposed: GcFunction | null | undefined;

function exposedGc(): GcFunction | null {
  if (exposed !== undefined) return exposed;
  exposed = null;
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc: unknown = vm.runInNewContext('gc');
    if (typeof gc === 'function') exposed = gc as GcFunction;
  } catch {
    // Flags can be frozen (--frozen-intrinsics, embedders): nothing is forced then.
  }
  return exposed;
}

/**
 * Returns a function to call with the size of every chunk that passes: it collects the young
 * generation (`minor`) or the whole heap (`major`) each time `everyBytes` more have passed.
 */
export function collectHeapEvery(everyBytes: number, generation: Generation): (bytes: number) => void {
  const gc = exposedGc();
  if (!gc) return () => {};
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since < everyBytes) return;
    since = 0;
    gc({ type: generation });
  };
}
