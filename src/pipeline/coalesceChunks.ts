/**
 * Joins small chunks into chunks of at least `size` bytes. A child's stdout arrives in pieces
 * of a pipe read at most (64 KiB; a plain pg_dump writes 4 KiB at a time, about 28,000 reads of
 * 9 KiB for a 250 MB dump, and under stdbuf about 5,000 of 47 KiB: see spawnPgTool.ts), and
 * every piece costs a trip through each stream stage and its own zstd call on the thread
 * pool, on zstd's slower non-contiguous-input path. Joining the 9 KiB pieces into 1 MiB chunks
 * cut the backup process's CPU by about 15 % and its zstd thread-pool time by about 30 % (perf,
 * 250 MB dump, bench/backup.ts database); with the 47 KiB pieces, 1 MiB still beat passing
 * them through (3.4 s against 4.4–4.7 s) and 256 KiB.
 */
export async function* coalesceChunks(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of source) {
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= size) {
      yield pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
}
