/**
 * `npm run bench`: Backstop's backup and restore against pg_dump / pg_restore, side by side, on
 * a generated database, with its own embedded PostgreSQL and s3rver. Writes the report to
 * bench/results/backup-<date>.md and bench/results/latest-backup.md.
 *
 *   npm run bench -- [--size-mb 300] [--repeat 3] [--jobs 2] [--levels 1,2,3] [--rss-scaling]
 *
 * The default run takes about 9 minutes on 2 cores (more when the machine is busy: the report
 * records the load average of every sample); --rss-scaling adds about 8 minutes for a database
 * four times larger. Ctrl-C stops the cases in flight and removes the servers and temporary files.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { withDatabase } from '../src/core/databaseUrl.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { findPgTool } from '../src/pgtools/findPgTools.ts';
import { generateIdentity } from '../src/pipeline/age.ts';
import { deletePrefix } from '../src/pipeline/backup.ts';
import { openStore } from '../src/storage/openStore.ts';
import type { Store } from '../src/storage/store.ts';
import { startS3rver } from '../test/support/s3rver.ts';
import { pgDumpToFile, pgRestoreFromFile, runBackstopCase, useCompiledRunCase, type Sample } from './cases.ts';
import { benchSession } from './benchSession.ts';
import { describeMachine, loadAverage, settle } from './machine.ts';
import { MB, renderReport, type BenchResults, type CaseRecord, type DatabaseInfo } from './report.ts';
import type { CaseSpec } from './runCase.ts';
import { generateSampleDatabase, SAMPLE_SHAPES, type SampleShape } from './sampleDatabase.ts';
import { withEnv } from './withEnv.ts';

// s3rver (and the chaos proxy in front of it) listen on loopback, which the outbound guard
// refuses unless allowed.
process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS ??= '127.0.0.0/8,::1';

const { values: args } = parseArgs({
  options: {
    'size-mb': { type: 'string', default: '300' },
    repeat: { type: 'string', default: '3' },
    jobs: { type: 'string', default: '2' },
    levels: { type: 'string', default: '1,2,3' },
    'rss-scaling': { type: 'boolean', default: false },
    shape: { type: 'string', default: 'mixed' },
    'scale-repeat': { type: 'string', default: '1' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(
    'npm run bench -- [--size-mb 300] [--shape mixed|documents] [--repeat 3] [--jobs 2] [--levels 1,2,3] [--rss-scaling [--scale-repeat 1]]\n' +
      '  --size-mb       target pg_database_size of the generated database\n' +
      '  --shape         mixed: many narrow rows (default); documents: most bytes in text, jsonb, attachments\n' +
      '  --repeat        runs per case (the report shows medians)\n' +
      '  --jobs          pg_restore --jobs for both restores\n' +
      '  --levels        zstd levels to compare for Backstop to local disk\n' +
      '  --rss-scaling   also back up a database 4× larger and compare peak RSS\n',
  );
  process.exit(0);
}
const positive = (name: string, text: string): number => {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`--${name} must be a positive number, got "${text}"\n`);
    process.exit(2);
  }
  return value;
};
const sizeMB = positive('size-mb', args['size-mb']);
const repeat = Math.round(positive('repeat', args.repeat));
const jobs = Math.round(positive('jobs', args.jobs));
const scaleRepeat = Math.round(positive('scale-repeat', args['scale-repeat']));
if (!SAMPLE_SHAPES.includes(args.shape as SampleShape)) {
  process.stderr.write(`--shape must be one of ${SAMPLE_SHAPES.join(', ')}, got "${args.shape}"\n`);
  process.exit(2);
}
const shape = args.shape as SampleShape;
const levels = args.levels.split(',').map((level) => Math.round(positive('levels', level)));

const { started, log, cleanups, run } = benchSession();

async function main(): Promise<void> {
  const root = await temporaryHome('backstop-bench-');
  cleanups.push({ name: 'temporary folder', run: () => fs.rm(root, { recursive: true, force: true }) });

  log('starting PostgreSQL and s3rver');
  const pgHome = path.join(root, 'home');
  cleanups.push({ name: 'PostgreSQL', run: () => stopEmbeddedPostgres(pgHome) });
  const server = await ensureEmbeddedPostgres(pgHome);
  const s3 = await startS3rver('backstop-bench');
  cleanups.push({ name: 's3rver', run: () => s3.stop() });

  const admin = new pg.Client({ connectionString: server.url() });
  admin.on('error', () => {});
  await admin.connect();
  cleanups.push({ name: 'admin connection', run: () => admin.end() });
  const serverVersion = (await admin.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v;
  const serverMajor = Number(serverVersion.split('.')[0]);
  const pgDump = await findPgTool('pg_dump', serverMajor);
  const pgRestore = await findPgTool('pg_restore', serverMajor);

  const filesDir = path.join(root, 'files');
  const localRoot = path.join(root, 'store');
  const spoolDir = path.join(root, 'spool');
  await Promise.all([filesDir, localRoot, spoolDir].map((dir) => fs.mkdir(dir, { recursive: true })));
  const localUrl = `file://${localRoot}`;
  const s3Url = s3.storeUrl('bench');
  const s3Env = s3.env;
  log('compiling the measured code (as `npm run build` does)');
  await useCompiledRunCase(path.join(root, 'build'));
  const s3Parent: Store = await withEnv(s3Env, () => openStore(s3Url));
  cleanups.push({ name: 's3 client', run: () => s3Parent.close() });
  const localParent = await openStore(localUrl);
  const { identity, recipient } = generateIdentity();

  const cases = new Map<string, CaseRecord>();
  const record = (id: string, label: string, sample: Sample, load: number): Sample => {
    sample.load = load;
    let entry = cases.get(id);
    if (!entry) {
      entry = { id, label, samples: [] };
      cases.set(id, entry);
    }
    entry.samples.push(sample);
    return sample;
  };
  let databaseCounter = 0;
  const freshDatabase = async (prefix: string): Promise<{ name: string; url: string; drop: () => Promise<void> }> => {
    const name = `${prefix}_${++databaseCounter}`;
    await admin.query(`create database ${name}`);
    return { name, url: withDatabase(server.url(), name), drop: async () => void (await admin.query(`drop database if exists ${name} with (force)`)) };
  };

  const prepare = async (name: string, targetMB: number): Promise<DatabaseInfo> => {
    const database = await freshDatabase(name);
    log(`generating ${database.name}: ${targetMB} MB, shape ${shape}`);
    let lastLogged = 0;
    const generated = await generateSampleDatabase(
      database.url,
      targetMB * MB,
      (bytes) => {
        if (bytes - lastLogged >= targetMB * MB * 0.25) {
          lastLogged = bytes;
          log(`  ${database.name}: ${(bytes / MB).toFixed(0)} MB`);
        }
      },
      shape,
    );
    await admin.query('checkpoint');
    // Warm-up, and the uncompressed dump size.
    const warm = await pgDumpToFile(pgDump.path, database.url, path.join(filesDir, 'warmup.dump'), ['--compress=0']);
    await fs.rm(path.join(filesDir, 'warmup.dump'), { force: true });
    log(
      `  ${database.name}: ${(generated.bytes / MB).toFixed(0)} MB, ${generated.tables} tables in ${generated.seconds.toFixed(0)} s; -Z0 dump ${(warm.bytes! / MB).toFixed(0)} MB in ${(warm.ms / 1000).toFixed(1)} s`,
    );
    return { ...generated, name: database.name, shape, dumpBytes: warm.bytes! };
  };

  const base = await prepare('bench_source', sizeMB);
  const databases: BenchResults['databases'] = { base };

  const backupSpec = (databaseUrl: string, storeUrl: string, level: number | null, encrypted: boolean): CaseSpec => ({
    kind: 'backup',
    databaseUrl,
    storeUrl,
    target: 'bench',
    compression: level === null ? { algorithm: 'none', level: null } : { algorithm: 'zstd', level },
    ...(encrypted && { recipient }),
  });
  interface BackupCase {
    id: string;
    label: string;
    run: () => Promise<Sample>;
  }
  const backupCases = (database: DatabaseInfo, withLevels: boolean): BackupCase[] => {
    const url = withDatabase(server.url(), database.name);
    const backstop = (id: string, label: string, storeUrl: string, level: number | null, encrypted: boolean, env: Record<string, string> = {}): BackupCase => ({
      id,
      label,
      run: async () => {
        const s3Case = storeUrl === s3Url;
        const sample = await runBackstopCase(backupSpec(url, storeUrl, level, encrypted), { ...(s3Case ? s3Env : {}), ...env });
        // Keep what a restore of this round needs; drop the rest now so the disk does not fill.
        if (!(id === 'local' || id === 'local-age')) await deletePrefix(s3Case ? s3Parent : localParent, sample.prefix!);
        return sample;
      },
    });
    const list: BackupCase[] = [
      { id: 'pgdump-fc', label: '`pg_dump -Fc` (default compression)', run: () => pgDumpToFile(pgDump.path, url, path.join(filesDir, 'fc.dump'), []) },
      { id: 'pgdump-z0', label: '`pg_dump -Fc -Z0` (floor)', run: () => pgDumpToFile(pgDump.path, url, path.join(filesDir, 'z0.dump'), ['--compress=0']) },
      backstop('local', 'Backstop → local disk (zstd 1)', localUrl, 1, false),
      backstop('local-age', 'Backstop → local disk (zstd 1) + age', localUrl, 1, true),
      backstop('s3', 'Backstop → s3rver (zstd 1)', s3Url, 1, false),
      backstop('s3-age', 'Backstop → s3rver (zstd 1) + age', s3Url, 1, true),
    ];
    if (withLevels) {
      for (const level of levels.filter((level) => level !== 1)) list.push(backstop(`local-zstd${level}`, `Backstop → local disk (zstd ${level})`, localUrl, level, false));
      list.push(backstop('local-none', 'Backstop → local disk (no compression)', localUrl, null, false));
    }
    return list;
  };

  const restoreRound = async (artifacts: Map<string, string>, round: number): Promise<void> => {
    const z0File = path.join(filesDir, 'z0.dump');
    const restoreCases = [
      {
        id: 'restore-pg',
        label: `\`pg_restore --jobs=${jobs}\` from the \`-Z0\` file`,
        run: (toUrl: string) => pgRestoreFromFile(pgRestore.path, z0File, toUrl, jobs),
      },
      {
        id: 'restore-backstop',
        label: `Backstop restore --jobs=${jobs} (local, zstd 1)`,
        run: (toUrl: string) => runBackstopCase({ kind: 'restore', storeUrl: localUrl, prefix: artifacts.get('local')!, toUrl, jobs, tmpDir: spoolDir }),
      },
      {
        id: 'restore-backstop-age',
        label: `Backstop restore --jobs=${jobs} (local, zstd 1 + age)`,
        run: (toUrl: string) => runBackstopCase({ kind: 'restore', storeUrl: localUrl, prefix: artifacts.get('local-age')!, toUrl, jobs, tmpDir: spoolDir, identity }),
      },
    ];
    // Rotated like the backups: no case always runs first after a round of backups.
    const shift = round % restoreCases.length;
    for (const restoreCase of [...restoreCases.slice(shift), ...restoreCases.slice(0, shift)]) {
      const target = await freshDatabase('bench_restore');
      try {
        await settle();
        const load = await loadAverage();
        const sample = record(restoreCase.id, restoreCase.label, await restoreCase.run(target.url), load);
        log(`  ${restoreCase.id}: ${(sample.ms / 1000).toFixed(2)} s`);
      } finally {
        await target.drop();
        await admin.query('checkpoint');
      }
    }
  };

  const runRounds = async (database: DatabaseInfo, rounds: number, idPrefix: string, withLevels: boolean, withRestore: boolean): Promise<void> => {
    const list = backupCases(database, withLevels);
    for (let round = 0; round < rounds; round++) {
      log(`${database.name}: round ${round + 1} of ${rounds}`);
      const artifacts = new Map<string, string>();
      // Rotate the order so that no case always runs right after the same neighbour.
      const shift = (round * 3) % list.length;
      for (const backupCase of [...list.slice(shift), ...list.slice(0, shift)]) {
        await settle();
        const load = await loadAverage();
        const sample = record(idPrefix + backupCase.id, backupCase.label, await backupCase.run(), load);
        if (sample.prefix) artifacts.set(backupCase.id, sample.prefix);
        log(
          `  ${idPrefix}${backupCase.id}: ${(sample.ms / 1000).toFixed(2)} s, ${sample.bytes === undefined ? '?' : (sample.bytes / MB).toFixed(1)} MB, ` +
            `RSS ${sample.rssKiB === undefined ? '?' : ((sample.rssKiB * 1024) / MB).toFixed(0)} MB`,
        );
      }
      if (withRestore) await restoreRound(artifacts, round);
      for (const prefix of artifacts.values()) await deletePrefix(localParent, prefix);
    }
  };

  const idle = async (id: string, label: string, storeUrl: string, env: Record<string, string>) => {
    for (let i = 0; i < repeat; i++) record(id, label, await runBackstopCase({ kind: 'idle', storeUrl }, env), await loadAverage());
  };
  await idle('idle-local', 'Backstop process, modules loaded, local store, no work', localUrl, {});
  await idle('idle-s3', 'Backstop process, modules loaded, S3 store, no work', s3Url, s3Env);

  await runRounds(base, repeat, '', true, true);

  if (args['rss-scaling']) {
    const scaled = await prepare('bench_source_4x', sizeMB * 4);
    databases.scaled = scaled;
    await runRounds(scaled, scaleRepeat, '4x:', false, false);
  }

  const machine = await describeMachine();
  const results: BenchResults = {
    machine,
    serverVersion,
    pgDumpVersion: pgDump.version,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim().replace(/ --$/, ''),
    repeat,
    scaleRepeat,
    jobs,
    databases,
    cases,
    totalSeconds: (performance.now() - started) / 1000,
  };
  const report = renderReport(results);
  const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
  await fs.mkdir(resultsDir, { recursive: true });
  // One file per shape (and one more with --rss-scaling): a run never replaces another kind.
  const suffix = `${shape === 'mixed' ? '' : `-${shape}`}${args['rss-scaling'] ? '-rss-scaling' : ''}`;
  const dated = path.join(resultsDir, `backup-${machine.date.slice(0, 10)}${suffix}.md`);
  const latest = path.join(resultsDir, `latest-backup${suffix}.md`);
  await fs.writeFile(dated, report);
  await fs.writeFile(latest, report);
  process.stdout.write(report);
  log(`wrote ${path.relative(process.cwd(), dated)} and ${path.relative(process.cwd(), latest)}`);
}

await run(main);
