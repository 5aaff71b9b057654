/**
 * `npm run bench:parallel`: Backstop's parallel backup (`--jobs 1/2/4`) against pg_dump's own
 * parallel floor (`pg_dump -Fd -j N -Z0` into a directory) and the single-stream floor
 * (`pg_dump -Fc -Z0`), to local disk and to s3rver, on two shapes of database (the bytes in
 * several large tables, or in one dominant table) at 1× and 4× size; then Backstop's restore
 * `--jobs 2` against `pg_restore -j2` from the directory. Writes the report to
 * bench/results/parallel-<date>.md and bench/results/latest-parallel.md.
 *
 *   npm run bench:parallel -- [--size-mb 150] [--repeat 3] [--scale-repeat 1] [--shapes several,dominant] [--scales 1,4]
 *
 * With the defaults it takes about 30 minutes on 2 cores. Ctrl-C stops the cases in flight and
 * removes the servers and temporary files.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { withDatabase } from '../src/core/databaseUrl.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { findPgTool } from '../src/pgtools/findPgTools.ts';
import { deletePrefix } from '../src/pipeline/backup.ts';
import { readManifest } from '../src/pipeline/readManifest.ts';
import { openStore } from '../src/storage/openStore.ts';
import type { Store } from '../src/storage/store.ts';
import { startS3rver } from '../test/support/s3rver.ts';
import { pgDumpToDirectory, pgDumpToFile, pgRestoreFromFile, runBackstopCase, useCompiledRunCase, type Sample } from './cases.ts';
import { benchSession } from './benchSession.ts';
import { describeMachine, loadAverage, settle } from './machine.ts';
import { generateParallelDatabase, PARALLEL_SHAPES, type ParallelDatabase, type ParallelShape } from './parallelDatabase.ts';
import { processCpuMs } from './processCpu.ts';
import { MB, median } from './report.ts';
import { withEnv } from './withEnv.ts';
import { writeResults } from './writeResults.ts';

process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS ??= '127.0.0.0/8,::1';

const { values: args } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: '150' },
    repeat: { type: 'string', default: '3' },
    'scale-repeat': { type: 'string', default: '1' },
    shapes: { type: 'string', default: 'several,dominant' },
    scales: { type: 'string', default: '1,4' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(
    'npm run bench:parallel -- [--size-mb 150] [--repeat 3] [--scale-repeat 1] [--shapes several,dominant] [--scales 1,4]\n' +
      '  --size-mb       table data (pg_table_size, no indexes) of the 1× database\n' +
      '  --repeat        rounds at 1× (the report shows medians)\n' +
      '  --scale-repeat  rounds at the larger sizes\n',
  );
  process.exit(0);
}
const whole = (name: string, text: string): number => {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    process.stderr.write(`--${name} must be a positive whole number, got "${text}"\n`);
    process.exit(2);
  }
  return value;
};
const sizeMB = whole('size-mb', args['size-mb']);
const repeat = whole('repeat', args.repeat);
const scaleRepeat = whole('scale-repeat', args['scale-repeat']);
const scales = args.scales.split(',').map((scale) => whole('scales', scale));
const shapes = args.shapes.split(',') as ParallelShape[];
for (const shape of shapes) {
  if (!(shape in PARALLEL_SHAPES)) {
    process.stderr.write(`--shapes: one of ${Object.keys(PARALLEL_SHAPES).join(', ')}, got "${shape}"\n`);
    process.exit(2);
  }
}
const JOBS = [1, 2, 4];
const RESTORE_JOBS = 2;

const { started, log, cleanups, run } = benchSession();

/** A sample with the CPU the database server spent on it (every backend, those that ended included). */
interface Measured extends Sample {
  serverCpuMs: number;
}

interface Dataset {
  shape: ParallelShape;
  scale: number;
  database: ParallelDatabase;
  rounds: number;
  samples: Map<string, Measured[]>;
  /** Bytes of table data per stream, as each --jobs backup planned them (from its manifest). */
  splits: Map<number, number[]>;
}

/** The processes the postmaster started that are still running (backends, workers). */
async function serverChildren(postmasterPid: number): Promise<number[]> {
  const children: number[] = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await fs.readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmasterPid) children.push(Number(entry));
  }
  return children;
}

/**
 * The CPU time of the server so far: the postmaster's own and its reaped children's (every
 * backend that has ended), plus that of the backends still running.
 */
async function serverCpuMs(postmasterPid: number): Promise<number> {
  let total = await processCpuMs(postmasterPid, true);
  for (const child of await serverChildren(postmasterPid)) total += await processCpuMs(child);
  return total;
}

/**
 * Waits (up to 5 s) until every server process started since `before` is gone: a backend
 * outlives its client by a moment, and its CPU joins the postmaster's only once reaped.
 */
async function serverQuiet(postmasterPid: number, before: number[]): Promise<void> {
  const deadline = performance.now() + 5000;
  while (performance.now() < deadline) {
    if ((await serverChildren(postmasterPid)).every((pid) => before.includes(pid))) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function main(): Promise<void> {
  const root = await temporaryHome('backstop-bench-parallel-');
  cleanups.push({ name: 'temporary folder', run: () => fs.rm(root, { recursive: true, force: true }) });
  log('starting PostgreSQL and s3rver');
  const pgHome = path.join(root, 'home');
  cleanups.push({ name: 'PostgreSQL', run: () => stopEmbeddedPostgres(pgHome, { mode: 'immediate' }) });
  const server = await ensureEmbeddedPostgres(pgHome);
  const postmasterPid = Number((await fs.readFile(path.join(server.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  const s3 = await startS3rver('backstop-bench');
  cleanups.push({ name: 's3rver', run: () => s3.stop() });
  const admin = new pg.Client({ connectionString: server.url() });
  admin.on('error', () => {});
  await admin.connect();
  cleanups.push({ name: 'admin connection', run: () => admin.end() });
  const serverVersion = (await admin.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v;
  const pgDump = await findPgTool('pg_dump', Number(serverVersion.split('.')[0]));
  const pgRestore = await findPgTool('pg_restore', Number(serverVersion.split('.')[0]));

  const filesDir = path.join(root, 'files');
  const localRoot = path.join(root, 'store');
  const spoolDir = path.join(root, 'spool');
  await Promise.all([filesDir, localRoot, spoolDir].map((dir) => fs.mkdir(dir, { recursive: true })));
  const localUrl = `file://${localRoot}`;
  const s3Url = s3.storeUrl('bench');
  log('compiling the measured code (as `npm run build` does)');
  await useCompiledRunCase(path.join(root, 'build'));
  const s3Store: Store = await withEnv(s3.env, () => openStore(s3Url));
  cleanups.push({ name: 's3 client', run: () => s3Store.close() });
  const localStore = await openStore(localUrl);

  let databaseCounter = 0;
  const freshDatabase = async (prefix: string) => {
    const name = `${prefix}_${++databaseCounter}`;
    await admin.query(`create database ${name}`);
    return { name, url: withDatabase(server.url(), name), drop: async () => void (await admin.query(`drop database if exists ${name} with (force)`)) };
  };

  const measure = async (run: () => Promise<Sample>): Promise<Measured> => {
    await settle();
    const load = await loadAverage();
    const children = await serverChildren(postmasterPid);
    const before = await serverCpuMs(postmasterPid);
    const sample = await run();
    await serverQuiet(postmasterPid, children);
    return { ...sample, load, serverCpuMs: (await serverCpuMs(postmasterPid)) - before };
  };

  const datasets: Dataset[] = [];
  for (const scale of scales) {
    for (const shape of shapes) {
      const source = await freshDatabase(`${shape}_${scale}x`);
      log(`generating ${source.name}: ${sizeMB * scale} MB of table data, ${PARALLEL_SHAPES[shape].description}`);
      const database = await generateParallelDatabase(source.url, shape, sizeMB * scale * MB, log);
      await admin.query('checkpoint');
      // Warm-up (the page cache), not recorded.
      await pgDumpToFile(pgDump.path, source.url, path.join(filesDir, 'warmup.dump'), ['--compress=0']);
      await fs.rm(path.join(filesDir, 'warmup.dump'), { force: true });
      const dataset: Dataset = { shape, scale, database, rounds: scale === 1 ? repeat : scaleRepeat, samples: new Map(), splits: new Map() };
      datasets.push(dataset);
      const record = (id: string, sample: Measured) => {
        const list = dataset.samples.get(id) ?? [];
        list.push(sample);
        dataset.samples.set(id, list);
        log(
          `  ${id}: ${(sample.ms / 1000).toFixed(2)} s${sample.bytes === undefined ? '' : `, ${(sample.bytes / MB).toFixed(0)} MB`}${sample.rssKiB === undefined ? '' : `, RSS ${((sample.rssKiB * 1024) / MB).toFixed(0)} MB`}, ` +
            `CPU ${((sample.cpuMs ?? 0) / 1000).toFixed(1)} s (server ${(sample.serverCpuMs / 1000).toFixed(1)} s), load ${sample.load?.toFixed(1)}`,
        );
      };
      const tableBytes = new Map(database.tables.map((table) => [table.name, table.bytes]));

      for (let round = 0; round < dataset.rounds; round++) {
        log(`${source.name}: round ${round + 1} of ${dataset.rounds}`);
        const kept = { directory: path.join(filesDir, `fd-j${RESTORE_JOBS}`), prefix: '' };
        const backstop = (storeUrl: string, store: Store, jobs: number, env: Record<string, string>) => async () => {
          const sample = await runBackstopCase({ kind: 'backup', databaseUrl: source.url, storeUrl, target: 'bench', compression: { algorithm: 'zstd', level: 1 }, jobs }, env);
          if (store === localStore && round === 0 && jobs > 1) {
            const { manifest } = await readManifest(store, sample.prefix!);
            dataset.splits.set(
              jobs,
              manifest.parallel!.data.map((set) => set.tables.reduce((sum, table) => sum + (tableBytes.get(table.name) ?? 0), 0)),
            );
          }
          if (store === localStore && jobs === RESTORE_JOBS) kept.prefix = sample.prefix!;
          else await deletePrefix(store, sample.prefix!);
          return sample;
        };
        const cases: Array<{ id: string; run: () => Promise<Sample> }> = [
          { id: 'pgdump-fc-z0', run: () => pgDumpToFile(pgDump.path, source.url, path.join(filesDir, 'fc.dump'), ['--compress=0']) },
          ...JOBS.filter((jobs) => jobs > 1).map((jobs) => ({
            id: `pgdump-fd-j${jobs}`,
            run: async () => {
              const directory = path.join(filesDir, `fd-j${jobs}`);
              const sample = await pgDumpToDirectory(pgDump.path, source.url, directory, jobs, ['--compress=0']);
              if (jobs !== RESTORE_JOBS) await fs.rm(directory, { recursive: true, force: true });
              return sample;
            },
          })),
          ...JOBS.map((jobs) => ({ id: `local-j${jobs}`, run: backstop(localUrl, localStore, jobs, {}) })),
          ...JOBS.map((jobs) => ({ id: `s3-j${jobs}`, run: backstop(s3Url, s3Store, jobs, s3.env) })),
        ];
        // The order rotates every round, so that no case always runs right after the same neighbour.
        const shift = (round * 3) % cases.length;
        for (const one of [...cases.slice(shift), ...cases.slice(0, shift)]) record(one.id, await measure(one.run));
        await fs.rm(path.join(filesDir, 'fc.dump'), { force: true });

        const restores = [
          { id: `restore-pg-j${RESTORE_JOBS}`, run: (toUrl: string) => pgRestoreFromFile(pgRestore.path, kept.directory, toUrl, RESTORE_JOBS) },
          {
            id: `restore-backstop-j${RESTORE_JOBS}`,
            run: (toUrl: string) => runBackstopCase({ kind: 'restore', storeUrl: localUrl, prefix: kept.prefix, toUrl, jobs: RESTORE_JOBS, tmpDir: spoolDir }),
          },
        ];
        for (const one of round % 2 === 0 ? restores : [...restores].reverse()) {
          const target = await freshDatabase('restored');
          try {
            record(one.id, await measure(() => one.run(target.url)));
          } finally {
            await target.drop();
            await admin.query('checkpoint');
          }
        }
        await fs.rm(kept.directory, { recursive: true, force: true });
        await deletePrefix(localStore, kept.prefix);
      }
      await source.drop();
      await admin.query('checkpoint');
    }
  }

  const machine = await describeMachine();
  const report = renderParallelReport(datasets, {
    machine,
    serverVersion,
    pgDumpVersion: pgDump.version,
    command: `npm run bench:parallel -- ${process.argv.slice(2).join(' ')}`.trim().replace(/ --$/, ''),
    minutes: (performance.now() - started) / 60000,
  });
  process.stdout.write(report);
  const written = await writeResults('parallel', report, machine.date);
  log(`wrote ${written.join(' and ')}`);
}

const LABELS: Record<string, string> = {
  'pgdump-fc-z0': '`pg_dump -Fc -Z0` to a file (single-stream floor)',
  'pgdump-fd-j2': '`pg_dump -Fd -j2 -Z0` to a directory',
  'pgdump-fd-j4': '`pg_dump -Fd -j4 -Z0` to a directory',
  'local-j1': 'Backstop → local disk, one stream (`--jobs 1`)',
  'local-j2': 'Backstop → local disk, `--jobs 2`',
  'local-j4': 'Backstop → local disk, `--jobs 4`',
  's3-j1': 'Backstop → s3rver, one stream (`--jobs 1`)',
  's3-j2': 'Backstop → s3rver, `--jobs 2`',
  's3-j4': 'Backstop → s3rver, `--jobs 4`',
  'restore-pg-j2': '`pg_restore -j2` from the `-Fd -j2` directory',
  'restore-backstop-j2': 'Backstop restore `--jobs 2` of the local `--jobs 2` artifact',
};

/** The parallel floor a case is compared with: pg_dump -Fd with as many jobs (one job: the -Fc -Z0 file). */
const floorOf = (id: string): string | null => {
  const jobs = /-j(\d)$/.exec(id)?.[1];
  if (!id.startsWith('local-') && !id.startsWith('s3-')) return null;
  return jobs === '1' ? 'pgdump-fc-z0' : `pgdump-fd-j${jobs}`;
};

function renderParallelReport(
  datasets: Dataset[],
  info: { machine: Awaited<ReturnType<typeof describeMachine>>; serverVersion: string; pgDumpVersion: string; command: string; minutes: number },
): string {
  const s = (ms: number | undefined) => (ms === undefined ? '–' : (ms / 1000).toFixed(2));
  const loads = datasets.flatMap((dataset) => [...dataset.samples.values()].flat().map((sample) => sample.load ?? 0));
  const lines = [
    '# Parallel backup benchmark',
    '',
    `\`${info.command}\` — ${info.machine.date.slice(0, 10)}, took ${info.minutes.toFixed(0)} min.`,
    '',
    '## Machine',
    '',
    `- CPU: ${info.machine.cpu}, ${info.machine.cores} cores; memory ${info.machine.memoryGB} GB; ${info.machine.kernel}`,
    `- Node ${info.machine.node}; PostgreSQL server ${info.serverVersion} (embedded, same machine); pg_dump ${info.pgDumpVersion}`,
    `- Load (1-minute average when each sample started): median ${median(loads).toFixed(1)}, max ${Math.max(...loads).toFixed(1)}`,
    '',
    '## Method',
    '',
    'Every table has the same columns (bigint, timestamptz, text, numeric, a jsonb document, a text note on a third of the rows; a primary key and one more index), generated server-side and vacuumed. ' +
      'Each round runs every backup case once, in an order that rotates every round, then the two restores into fresh databases. Ratios are the median of per-round ratios (the case over its reference in the same round). ' +
      '"Wall" is the operation: for Backstop measured inside its process (start-up excluded), from connecting to the manifest read back; for pg_dump and pg_restore the whole process. ' +
      'Backstop compresses with zstd level 1 and counts every table’s rows in the archive; pg_dump writes `-Z0` (no compression), which is the floor. ' +
      '"CPU, tools" is the CPU of the measured process tree minus Backstop’s own process (so: pg_dump or pg_restore and their workers); "CPU, Backstop" is its own process, zstd included; "CPU, server" is every PostgreSQL backend’s. ' +
      'Peak RSS is Backstop’s process (for pg_dump / pg_restore: the largest process of the tree). MB = 10⁶ bytes.',
    '',
  ];
  for (const dataset of datasets) {
    const summary = (id: string) => {
      const list = dataset.samples.get(id);
      if (!list) return undefined;
      const pick = (value: (sample: Measured) => number | undefined) => {
        const values = list.map(value).filter((one): one is number => one !== undefined);
        return values.length > 0 ? median(values) : undefined;
      };
      return {
        ms: pick((sample) => sample.ms),
        bytes: pick((sample) => sample.bytes),
        rssMB: pick((sample) => (sample.rssKiB === undefined ? undefined : (sample.rssKiB * 1024) / MB)),
        toolCpuMs: pick((sample) => (sample.cpuMs === undefined ? undefined : sample.cpuMs - (sample.selfCpuMs ?? 0))),
        selfCpuMs: pick((sample) => sample.selfCpuMs),
        serverCpuMs: pick((sample) => sample.serverCpuMs),
      };
    };
    const ratio = (id: string, reference: string | null) => {
      if (reference === null) return undefined;
      const cases = dataset.samples.get(id);
      const references = dataset.samples.get(reference);
      if (!cases || !references) return undefined;
      return median(cases.map((sample, round) => sample.ms / references[round]!.ms));
    };
    const x = (value: number | undefined) => (value === undefined ? '–' : `${value.toFixed(2)}×`);
    const { database } = dataset;
    lines.push(
      `## ${dataset.shape === 'several' ? 'Several large tables' : 'One dominant table'}, ${dataset.scale}×`,
      '',
      `${PARALLEL_SHAPES[dataset.shape].description}: ${(database.tableBytes / MB).toFixed(0)} MB of table data, ${(database.databaseBytes / MB).toFixed(0)} MB with indexes (pg_database_size), ${database.tables.reduce((sum, table) => sum + table.rows, 0).toLocaleString('en')} rows; ${dataset.rounds} round(s).`,
      '',
      `Tables per stream as Backstop planned them (table data per stream): ${[...dataset.splits.entries()].map(([jobs, split]) => `\`--jobs ${jobs}\`: ${split.map((bytes) => (bytes / MB).toFixed(0)).join(' / ')} MB`).join('; ')}.`,
      '',
      '| case | wall (s) | ÷ pg_dump -Fd, same N | ÷ single-stream floor | ÷ Backstop one stream, same store | output (MB) | peak RSS (MB) | CPU, tools (s) | CPU, Backstop (s) | CPU, server (s) |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    );
    for (const id of ['pgdump-fc-z0', 'pgdump-fd-j2', 'pgdump-fd-j4', 'local-j1', 'local-j2', 'local-j4', 's3-j1', 's3-j2', 's3-j4']) {
      const one = summary(id);
      if (!one) continue;
      const single = id.startsWith('local-') ? 'local-j1' : id.startsWith('s3-') ? 's3-j1' : null;
      lines.push(
        `| ${LABELS[id]} | ${s(one.ms)} | ${x(ratio(id, floorOf(id)))} | ${x(id === 'pgdump-fc-z0' ? undefined : ratio(id, 'pgdump-fc-z0'))} | ${x(single === id ? undefined : ratio(id, single))} | ` +
          `${one.bytes === undefined ? '–' : (one.bytes / MB).toFixed(0)} | ${one.rssMB === undefined ? '–' : one.rssMB.toFixed(0)} | ${s(one.toolCpuMs)} | ${s(one.selfCpuMs)} | ${s(one.serverCpuMs)} |`,
      );
    }
    lines.push('', '| restore | wall (s) | ÷ `pg_restore -j2` | peak RSS (MB) | CPU, tools (s) | CPU, Backstop (s) | CPU, server (s) |', '|---|---:|---:|---:|---:|---:|---:|');
    for (const id of ['restore-pg-j2', 'restore-backstop-j2']) {
      const one = summary(id);
      if (!one) continue;
      lines.push(
        `| ${LABELS[id]} | ${s(one.ms)} | ${x(id === 'restore-pg-j2' ? undefined : ratio(id, 'restore-pg-j2'))} | ${one.rssMB === undefined ? '–' : one.rssMB.toFixed(0)} | ${s(one.toolCpuMs)} | ${s(one.selfCpuMs)} | ${s(one.serverCpuMs)} |`,
      );
    }
    if (dataset.shape === 'several') {
      const rss = (id: string) => summary(id)?.rssMB;
      const rssRatio = (id: string) => (rss(id) !== undefined && rss('local-j1') !== undefined ? rss(id)! / rss('local-j1')! : undefined);
      const check = (label: string, value: number | undefined, limit: number) =>
        `- ${label}: ${x(value)} (target ≤ ${limit}×) — ${value === undefined ? 'not measured' : value <= limit ? 'met' : '**not met**'}`;
      lines.push(
        '',
        'Targets:',
        '',
        check('Backstop `--jobs 2` (local) ÷ `pg_dump -Fd -j2 -Z0`', ratio('local-j2', 'pgdump-fd-j2'), 1.1),
        check('Backstop `--jobs 2` (local) ÷ single-stream floor (`pg_dump -Fc -Z0`)', ratio('local-j2', 'pgdump-fc-z0'), 0.8),
        check('Backstop `--jobs 2` (s3rver) ÷ `pg_dump -Fd -j2 -Z0`', ratio('s3-j2', 'pgdump-fd-j2'), 1.1),
        check('peak RSS, `--jobs 2` ÷ one stream (local)', rssRatio('local-j2'), 1.5),
        check('peak RSS, `--jobs 4` ÷ one stream (local)', rssRatio('local-j4'), 1.5),
        check('Backstop restore `--jobs 2` ÷ `pg_restore -j2`', ratio('restore-backstop-j2', 'restore-pg-j2'), 1.05),
      );
    }
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

await run(main);
