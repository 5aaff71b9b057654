/** Turns measured samples into the markdown report: pure formatting, no IO. */
import type { Sample } from './cases.ts';
import type { MachineDescription } from './machine.ts';
import { SHAPE_DESCRIPTIONS, type GeneratedDatabase, type SampleShape } from './sampleDatabase.ts';

export interface CaseRecord {
  id: string;
  label: string;
  samples: Sample[];
}

export interface DatabaseInfo extends GeneratedDatabase {
  name: string;
  /** How the generator spread the bytes (see SampleShape). */
  shape: SampleShape;
  /** Size of `pg_dump -Fc -Z0` output. */
  dumpBytes: number;
}

export interface BenchResults {
  machine: MachineDescription;
  serverVersion: string;
  pgDumpVersion: string;
  command: string;
  repeat: number;
  scaleRepeat: number;
  jobs: number;
  databases: { base: DatabaseInfo; scaled?: DatabaseInfo };
  cases: Map<string, CaseRecord>;
  totalSeconds: number;
}

export const MB = 1e6;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export interface Summary {
  ms: number;
  processMs: number;
  cpuMs?: number;
  bytes?: number;
  rssMB?: number;
  n: number;
}

export function summarize(record: CaseRecord | undefined): Summary | undefined {
  if (!record || record.samples.length === 0) return undefined;
  const pick = (field: 'bytes' | 'rssKiB' | 'cpuMs'): number[] => record.samples.map((s) => s[field]).filter((v): v is number => v !== undefined);
  const bytes = pick('bytes');
  const rss = pick('rssKiB');
  const cpu = pick('cpuMs');
  return {
    ms: median(record.samples.map((s) => s.ms)),
    processMs: median(record.samples.map((s) => s.processMs)),
    ...(bytes.length > 0 && { bytes: median(bytes) }),
    ...(cpu.length > 0 && { cpuMs: median(cpu) }),
    ...(rss.length > 0 && { rssMB: (median(rss) * 1024) / MB }),
    n: record.samples.length,
  };
}

const seconds = (ms: number) => (ms / 1000).toFixed(2);
const megabytes = (bytes: number | undefined) => (bytes === undefined ? '—' : (bytes / MB).toFixed(1));
const cpuSeconds = (s: Summary) => (s.cpuMs === undefined ? '—' : seconds(s.cpuMs));
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || b === 0 ? '—' : `${(a / b).toFixed(2)}×`);

function backupTable(results: BenchResults, ids: string[], prefix: string): string[] {
  const fc = summarize(results.cases.get(`${prefix}pgdump-fc`));
  const z0 = summarize(results.cases.get(`${prefix}pgdump-z0`));
  const lines = [
    '| case | wall (s) | ÷ `pg_dump -Fc` | ÷ `-Z0` floor | artifact (MB) | peak RSS (MB) | CPU (s) | process wall (s) | runs |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const id of ids) {
    const record = results.cases.get(`${prefix}${id}`);
    const s = summarize(record);
    if (!record || !s) continue;
    lines.push(
      `| ${record.label} | ${seconds(s.ms)} | ${ratio(s.ms, fc?.ms)} | ${ratio(s.ms, z0?.ms)} | ${megabytes(s.bytes)} | ${s.rssMB === undefined ? '—' : s.rssMB.toFixed(0)} | ${cpuSeconds(s)} | ${seconds(s.processMs)} | ${s.n} |`,
    );
  }
  return lines;
}

interface Target {
  name: string;
  measured: string;
  met: boolean | undefined;
}

function targets(results: BenchResults): Target[] {
  const get = (id: string) => summarize(results.cases.get(id));
  const fc = get('pgdump-fc');
  const z0 = get('pgdump-z0');
  const local = get('local');
  const localAge = get('local-age');
  const s3 = get('s3');
  const s3Age = get('s3-age');
  const restorePg = get('restore-pg');
  const restoreBackstop = get('restore-backstop');
  /**
   * The median over rounds of a/b within the same round: a round's cases run minutes apart at
   * most, so drifts of a shared machine (a busy neighbour, writeback) cancel out. Falls back to
   * the ratio of medians when the cases ran a different number of times.
   */
  const paired = (a: string, b: string): number | undefined => {
    const [x, y] = [results.cases.get(a)?.samples, results.cases.get(b)?.samples];
    if (!x || !y || x.length === 0 || y.length === 0) return undefined;
    if (x.length !== y.length) return median(x.map((s) => s.ms)) / median(y.map((s) => s.ms));
    return median(x.map((s, i) => s.ms / y[i]!.ms));
  };
  const list: Target[] = [];
  const check = (name: string, value: number | undefined, limit: number, format: (v: number) => string) =>
    list.push({ name, measured: value === undefined ? 'not measured' : format(value), met: value === undefined ? undefined : value <= limit });
  const times = (v: number) => `${v.toFixed(2)}×`;
  const percent = (v: number) => `${v >= 1 ? '+' : ''}${((v - 1) * 100).toFixed(1)} %`;
  check('backup to local disk ≤ 0.35× `pg_dump -Fc` wall time', local && fc && paired('local', 'pgdump-fc'), 0.35, times);
  check('… artifact no larger than `pg_dump -Fc` output', local?.bytes && fc?.bytes ? local.bytes / fc.bytes : undefined, 1, (v) => `${times(v)} its size`);
  check('backup to local disk ≤ 1.15× the `-Z0` floor', local && z0 && paired('local', 'pgdump-z0'), 1.15, times);
  check('encryption adds ≤ 5 % (local disk)', localAge && local && paired('local-age', 'local'), 1.05, percent);
  check('encryption adds ≤ 5 % (S3)', s3Age && s3 && paired('s3-age', 's3'), 1.05, percent);
  const rssValues = ['local', 'local-age', 's3', 's3-age'].map((id) => get(id)?.rssMB).filter((v): v is number => v !== undefined);
  check('peak RSS ≤ 150 MB (largest of the backup cases)', rssValues.length > 0 ? Math.max(...rssValues) : undefined, 150, (v) => `${v.toFixed(0)} MB`);
  if (results.databases.scaled) {
    const growth = ['local', 'local-age', 's3', 's3-age'].map((id) => {
      const base = get(id)?.rssMB;
      const scaled = get(`4x:${id}`)?.rssMB;
      return base !== undefined && scaled !== undefined ? scaled / base : undefined;
    });
    const known = growth.filter((v): v is number => v !== undefined);
    check('peak RSS ≤ 20 % higher on a 4× larger database (worst case)', known.length > 0 ? Math.max(...known) : undefined, 1.2, percent);
  } else {
    list.push({ name: 'peak RSS ≤ 20 % higher on a 4× larger database', measured: 'not measured (run with `--rss-scaling`)', met: undefined });
  }
  check(`restore ≤ 1.2× \`pg_restore --jobs=${results.jobs}\` from an uncompressed file`, restoreBackstop && restorePg && paired('restore-backstop', 'restore-pg'), 1.2, times);
  return list;
}

function loadLine(results: BenchResults): string {
  const loads = [...results.cases.values()].flatMap((record) => record.samples.map((s) => s.load)).filter((v): v is number => v !== undefined);
  if (loads.length === 0) return '';
  return (
    `Machine load (1-minute load average when each sample started): median ${median(loads).toFixed(1)}, ` +
    `max ${Math.max(...loads).toFixed(1)} on ${results.machine.cores} cores. Above about 1 the bench shares the machine ` +
    'with other work, and wall times (and their ratios) are noisier than CPU times.'
  );
}

export function renderReport(results: BenchResults): string {
  const { machine, databases } = results;
  const db = (info: DatabaseInfo) =>
    `\`${info.name}\` (shape \`${info.shape}\`: ${SHAPE_DESCRIPTIONS[info.shape]}): ${megabytes(info.bytes)} MB (pg_database_size), ${info.tables} tables, ${info.rows.toLocaleString('en-US')} rows, ` +
    `uncompressed dump (\`-Fc -Z0\`) ${megabytes(info.dumpBytes)} MB; generated in ${info.seconds.toFixed(0)} s`;
  const out: string[] = [
    '# Backup benchmark',
    '',
    `\`${results.command}\` — ${machine.date.slice(0, 10)}, took ${(results.totalSeconds / 60).toFixed(1)} min.`,
    '',
    '## Machine',
    '',
    `- CPU: ${machine.cpu}, ${machine.cores} cores; memory ${machine.memoryGB} GB; ${machine.kernel}`,
    `- Node ${machine.node}; PostgreSQL server ${results.serverVersion} (embedded, same machine); pg_dump ${results.pgDumpVersion}`,
    `- Date: ${machine.date}`,
    '',
    '## Database',
    '',
    `- ${db(databases.base)}`,
    ...(databases.scaled ? [`- ${db(databases.scaled)}`] : []),
    '',
    '## Method',
    '',
    `Each case ran ${results.repeat} times, interleaved (the order rotates every round); the tables show medians. ` +
      'The source database, the stores, s3rver and the restore targets all live on this one machine, so the server, ' +
      'pg_dump and Backstop share its cores. Backstop cases run in their own Node process (`bench/runCase.ts`, ' +
      'compiled to JavaScript with the sources it imports, as `npm run build` compiles the published package): ' +
      '"wall" is the `backupDatabase` / `restoreArtifact` call measured inside it, "process wall" adds Node start-up ' +
      'and module loading; "peak RSS" is that process\'s `maxRSS` (pg_dump / pg_restore under it excluded). ' +
      'For `pg_dump` / `pg_restore` rows, wall is the whole process and peak RSS is theirs (GNU time). ' +
      'Both `pg_dump -f` and the local store fsync their output. "CPU" is user + system time of the measured ' +
      'process and its children (GNU time; for Backstop that includes its pg_dump / pg_restore, never the server): ' +
      'on a shared machine it is steadier than wall time. Sizes in MB = 10⁶ bytes.',
    '',
    loadLine(results),
    '',
    '## Backup',
    '',
    ...backupTable(results, ['pgdump-fc', 'pgdump-z0', 'local', 'local-age', 's3', 's3-age', 'local-none'], ''),
    '',
    '## zstd level (Backstop to local disk, no encryption)',
    '',
    ...backupTable(results, ['local', ...[...results.cases.keys()].filter((id) => /^local-zstd\d+$/.test(id))], ''),
    '',
    '## Restore',
    '',
    'Backstop\'s phases (medians): "spool" reads the stored file, checks its size and SHA-256, decrypts and decompresses it into a temporary file; "pg_restore" is the same tool as the reference row, with the rows of each table checked as its data is committed; "check" counts what was not checked on the way.',
    '',
    '| case | wall (s) | ÷ `pg_restore` | spool (s) | pg_restore (s) | check (s) | peak RSS (MB) | CPU (s) | process wall (s) | runs |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const restorePg = summarize(results.cases.get('restore-pg'));
  for (const id of ['restore-pg', 'restore-backstop', 'restore-backstop-age']) {
    const record = results.cases.get(id);
    const s = summarize(record);
    if (!record || !s) continue;
    const phases = record.samples.map((sample) => sample.timings).filter((t) => t !== undefined);
    const phase = (of: (t: NonNullable<Sample['timings']>) => number) => (phases.length === 0 ? '—' : seconds(median(phases.map(of))));
    out.push(
      `| ${record.label} | ${seconds(s.ms)} | ${ratio(s.ms, restorePg?.ms)} | ${phase((t) => t.spooledMs)} | ${phase((t) => t.pgRestoreDoneMs - t.spooledMs)} | ${phase((t) => t.checkedMs - t.pgRestoreDoneMs)} | ${s.rssMB === undefined ? '—' : s.rssMB.toFixed(0)} | ${cpuSeconds(s)} | ${seconds(s.processMs)} | ${s.n} |`,
    );
  }
  const idle = ['idle-local', 'idle-s3'].map((id) => ({ record: results.cases.get(id), s: summarize(results.cases.get(id)) }));
  if (idle.some((i) => i.s)) {
    out.push('', '## Process floor', '', '| case | peak RSS (MB) | CPU (s) | process wall (s) |', '|---|---:|---:|---:|');
    for (const { record, s } of idle) if (record && s) out.push(`| ${record.label} | ${s.rssMB?.toFixed(0) ?? '—'} | ${cpuSeconds(s)} | ${seconds(s.processMs)} |`);
  }
  if (databases.scaled) {
    out.push('', `## Peak RSS on a 4× larger database (${megabytes(databases.scaled.bytes)} MB)`, '');
    out.push(...backupTable(results, ['pgdump-fc', 'pgdump-z0', 'local', 'local-age', 's3', 's3-age'], '4x:'));
    out.push('', '| case | peak RSS base (MB) | peak RSS 4× (MB) | growth |', '|---|---:|---:|---:|');
    for (const id of ['local', 'local-age', 's3', 's3-age']) {
      const base = summarize(results.cases.get(id));
      const scaled = summarize(results.cases.get(`4x:${id}`));
      if (!base?.rssMB || !scaled?.rssMB) continue;
      out.push(`| ${results.cases.get(id)!.label} | ${base.rssMB.toFixed(0)} | ${scaled.rssMB.toFixed(0)} | ${((scaled.rssMB / base.rssMB - 1) * 100).toFixed(1)} % |`);
    }
  }
  out.push(
    '',
    '## Targets',
    '',
    "A ratio here is the median over rounds of the two cases' ratio within one round (the cases of a round run minutes apart, so a shared machine's drifts cancel out); the tables above divide medians.",
    '',
    '| target | measured | met |',
    '|---|---|---|',
  );
  for (const target of targets(results)) out.push(`| ${target.name} | ${target.measured} | ${target.met === undefined ? '—' : target.met ? 'yes' : '**no**'} |`);
  out.push('', '## All samples', '', '| case | wall (s) | process wall (s) | CPU (s) | size (MB) | peak RSS (MB) | load |', '|---|---|---|---|---|---|---|');
  for (const record of results.cases.values()) {
    const list = (f: (s: Sample) => string) => record.samples.map(f).join(', ');
    out.push(
      `| ${record.id} | ${list((s) => seconds(s.ms))} | ${list((s) => seconds(s.processMs))} | ${list((s) => (s.cpuMs === undefined ? '—' : seconds(s.cpuMs)))} | ${list((s) => megabytes(s.bytes))} | ${list((s) => (s.rssKiB === undefined ? '—' : ((s.rssKiB * 1024) / MB).toFixed(0)))} | ${list((s) => (s.load === undefined ? '—' : s.load.toFixed(1)))} |`,
    );
  }
  return `${out.join('\n')}\n`;
}
