/**
 * Joins small chunks into chunks of about `size` bytes. A child's stdout arrives in pieces of
 * a few KiB (pg_dump writes 4 KiB at a time; ~20,000 reads for a 250 MB dump) and every piece
 * costs a trip through each stream stage and a zstd call on the thread pool: joining them cut
 * the backup process's CPU time by about a third (bench/backup.ts, 250 MB dump).
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
