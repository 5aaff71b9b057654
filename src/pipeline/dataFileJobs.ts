/**
 * How many pg_restore jobs each data file of a parallel backup gets when the restore's `jobs`
 * exceed the number of files: one each, then every extra job to the file with the most plain
 * bytes per job so far (ties to the earlier file), so the largest files, which would otherwise
 * finish last, load with several. A file can take several only when the manifest recorded its
 * data offsets (`seekable`): `pg_restore --jobs` needs them, and a spool filled with them.
 */
export function dataFileJobs(files: ReadonlyArray<{ uncompressedSize: number; seekable: boolean }>, jobs: number): number[] {
  const counts = files.map(() => 1);
  const extra = Math.floor(jobs) - files.length;
  for (let given = 0; given < extra; given++) {
    let best = -1;
    for (let index = 0; index < files.length; index++) {
      if (!files[index]!.seekable) continue;
      if (best === -1 || files[index]!.uncompressedSize / counts[index]! > files[best]!.uncompressedSize / counts[best]!) best = index;
    }
    if (best === -1) break;
    counts[best]!++;
  }
  return counts;
}
