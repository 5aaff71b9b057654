import { BackstopError } from '../core/errors.ts';
import { clientInstallAdvice, type HostSystem } from './clientInstallAdvice.ts';

export interface PgToolCandidate {
  path: string;
  /** Major version: 15 for "15.18", 9.6 for "9.6.24". */
  major: number;
  version: string;
}

export function parseToolVersion(output: string): { version: string; major: number } | null {
  const match = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(output);
  if (!match) return null;
  const first = Number(match[1]);
  const second = match[2] === undefined ? 0 : Number(match[2]);
  const major = first >= 10 ? first : Number(`${first}.${second}`);
  return { version: match[0].replace(/^\(PostgreSQL\)\s+/, ''), major };
}

export function serverMajorFromVersionNum(versionNum: number): number {
  return versionNum >= 100000 ? Math.floor(versionNum / 10000) : Math.floor(versionNum / 10000) + Math.floor((versionNum % 10000) / 100) / 10;
}

/**
 * The lowest installed client at or above the server's major version: pg_dump refuses older
 * servers' newer features, and the lowest match keeps the archive readable by the most
 * pg_restore versions.
 */
export function pickPgTool(tool: string, candidates: PgToolCandidate[], minMajor: number, what = 'server', system: HostSystem = { kind: 'other' }): PgToolCandidate {
  const fitting = candidates.filter((candidate) => candidate.major >= minMajor).sort((a, b) => a.major - b.major);
  const chosen = fitting[0];
  if (chosen) return chosen;
  const wanted = Math.ceil(minMajor);
  const install = `${clientInstallAdvice(system, wanted)}, or set BACKSTOP_PG_BIN to the bin folder of one you have.`;
  if (candidates.length === 0) {
    throw new BackstopError('PG_TOOL_NOT_FOUND', `No ${tool} found (looked in BACKSTOP_PG_BIN, PATH, \`pg_config --bindir\` and the folders PostgreSQL's packages use). ${install}`);
  }
  const found = [...candidates]
    .sort((a, b) => a.major - b.major)
    .map((candidate) => `${candidate.version} (${candidate.path})`)
    .join(', ');
  throw new BackstopError(
    'PG_VERSION_MISMATCH',
    `The ${what} is PostgreSQL ${minMajor} but the newest ${tool} found is older: ${found}. ${tool} must be at least the ${what}'s major version. ${install}`,
  );
}
