/** A table as a parallel backup plans it: its name and its size on disk. */
export interface SizedTable {
  schema: string;
  name: string;
  bytes: number;
}

/**
 * Splits the tables into at most `jobs` disjoint sets whose sizes are as even as a greedy
 * split makes them: largest table first, each to the set with the fewest bytes so far, so
 * that the pg_dump streams finish together rather than waiting on one. Never an empty set
 * (fewer tables than jobs: fewer sets); ties go to the lowest set, so the plan is the same for
 * the same input. The input order does not matter.
 */
export function planDataStreams(tables: readonly SizedTable[], jobs: number): SizedTable[][] {
  const count = Math.max(1, Math.min(Math.floor(jobs), tables.length));
  const sets: SizedTable[][] = Array.from({ length: count }, () => []);
  const loads = new Array<number>(count).fill(0);
  const bySize = [...tables].sort((a, b) => b.bytes - a.bytes || a.schema.localeCompare(b.schema) || a.name.localeCompare(b.name));
  for (const table of bySize) {
    // Equal bytes (tables never analyzed have no size yet): the set with fewer tables, so
    // that every set gets one.
    let least = 0;
    for (let index = 1; index < count; index++) {
      if (loads[index]! < loads[least]! || (loads[index] === loads[least] && sets[index]!.length < sets[least]!.length)) least = index;
    }
    sets[least]!.push(table);
    loads[least]! += table.bytes;
  }
  return tables.length === 0 ? [[]] : sets;
}
