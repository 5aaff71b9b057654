/**
 * `npm run bench:server`: a whole server backed up by Backstop's server profile, with one and
 * with two databases at a time, against `pg_dumpall` and a `pg_dump -Fc` per database (after
 * `pg_dumpall --globals-only`), on the same generated server. Writes the report to
 * bench/results/server-<date>.md and bench/results/latest-server.md.
 *
 *   npm run bench:server -- [--databases 8] [--size-mb 15] [--repeat 3]
 *
 * The default run takes about 3 minutes on 2 cores.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { withDatabase } from '../src/core/databaseUrl.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { findPgTool } from '../src/pgtools/findPgTools.ts';
import { connectionArgs } from '../src/pgtools/spawnPgTool.ts';
import { backupServer } from '../src/pipeline/serverSource/backupServer.ts';
import { openStore } from '../src/storage/openStore.ts';
import { describeMachine } from './machine.ts';
import { MB, median } from './report.ts';
import { generateSampleDatabase } from './sampleDatabase.ts';
import { runChecked } from './timedProcess.ts';
import { writeResults } from './writeResults.ts';

const { values: args } = parseArgs({
  options: {
    databases: { type: 'string', default: '8' },
    'size-mb': { type: 'string', default: '15' },
    repeat: { type: 'string', default: '3' },
  },
});
const databaseCount = Number(args.databases);
const sizeMB = Number(args['size-mb']);
const repeat = Number(args.repeat);
if (![databaseCount, sizeMB, repeat].every((value) => Number.isInteger(value) && value > 0)) {
  process.stderr.write('--databases, --size-mb and --repeat must be positive whole numbers\n');
  process.exit(2);
}

const started = performance.now();
const log = (message: string) => process.stderr.write(`[${Math.round((performance.now() - started) / 1000)} s] ${message}\n`);

interface Case {
  id: string;
  label: string;
  run: (round: number) => Promise<{ ms: number; bytes: number }>;
}

async function folderBytes(folder: string): Promise<number> {
  let total = 0;
  for (const entry of await fs.readdir(folder, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await fs.stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

async function main(): Promise<void> {
  const root = await temporaryHome('backstop-bench-server-');
  const pgHome = path.join(root, 'pg');
  try {
    const server = await ensureEmbeddedPostgres(pgHome);
    const admin = new pg.Client({ connectionString: server.url() });
    admin.on('error', () => {});
    await admin.connect();
    const serverVersion = (await admin.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v;
    const major = Number(serverVersion.split('.')[0]);
    const pgDump = await findPgTool('pg_dump', major);
    const pgDumpall = await findPgTool('pg_dumpall', major);

    // Roles that own the databases, as on an application server.
    await admin.query(`create role app_owner login password 'bench'; create role app_reader nologin; grant app_reader to app_owner`);
    const names = Array.from({ length: databaseCount }, (_, index) => `app_${index + 1}`);
    let databaseBytes = 0;
    let rows = 0;
    for (const name of names) {
      await admin.query(`create database ${name} owner app_owner`);
      const generated = await generateSampleDatabase(withDatabase(server.url(), name), sizeMB * MB);
      databaseBytes += generated.bytes;
      rows += generated.rows;
      log(`generated ${name}: ${(generated.bytes / MB).toFixed(1)} MB`);
    }
    await admin.query('checkpoint');
    await admin.end();

    const out = path.join(root, 'out');
    const connection = connectionArgs(server.url());
    const env = connection.env;
    const serverRoot = server.url().replace(/\/[^/]*$/, '/');
    const fresh = async (round: number, id: string) => {
      const folder = path.join(out, `${id}-${round}`);
      await fs.mkdir(folder, { recursive: true });
      return folder;
    };
    const backstop =
      (jobs: number): Case['run'] =>
      async (round) => {
        const folder = await fresh(round, `backstop-${jobs}`);
        const store = await openStore(`file://${folder}`);
        try {
          const began = performance.now();
          await backupServer({
            runId: crypto.randomUUID(),
            attempt: 1,
            targetName: 'bench',
            createdAt: new Date().toISOString(),
            databaseUrl: `${serverRoot}postgres`,
            store,
            server: { jobs },
            signal: new AbortController().signal,
          });
          return { ms: performance.now() - began, bytes: await folderBytes(folder) };
        } finally {
          await store.close();
        }
      };
    const cases: Case[] = [
      {
        id: 'pg_dumpall',
        label: '`pg_dumpall` (one plain SQL file)',
        run: async (round) => {
          const file = path.join(await fresh(round, 'dumpall'), 'all.sql');
          const exit = await runChecked(pgDumpall.path, ['--no-password', `--dbname=${connection.dbname}`, `--file=${file}`], env);
          return { ms: exit.ms, bytes: (await fs.stat(file)).size };
        },
      },
      {
        id: 'pg_dump-loop',
        label: '`pg_dumpall --globals-only`, then `pg_dump -Fc` per database, one after another',
        run: async (round) => {
          const folder = await fresh(round, 'loop');
          const began = performance.now();
          await runChecked(pgDumpall.path, ['--globals-only', '--no-password', `--dbname=${connection.dbname}`, `--file=${path.join(folder, 'globals.sql')}`], env);
          for (const name of names) {
            const database = connectionArgs(withDatabase(server.url(), name));
            await runChecked(pgDump.path, ['--format=custom', '--create', '--no-password', `--dbname=${database.dbname}`, `--file=${path.join(folder, `${name}.dump`)}`], database.env);
          }
          return { ms: performance.now() - began, bytes: await folderBytes(folder) };
        },
      },
      { id: 'backstop-1', label: 'Backstop server target, `--jobs 1` (zstd 1, local disk)', run: backstop(1) },
      { id: 'backstop-2', label: 'Backstop server target, `--jobs 2` (zstd 1, local disk)', run: backstop(2) },
    ];

    // Warm-up (caches), not recorded.
    await cases[1]!.run(0);
    const samples = new Map<string, Array<{ ms: number; bytes: number }>>(cases.map((one) => [one.id, []]));
    const loads: number[] = [];
    for (let round = 1; round <= repeat; round++) {
      // The order rotates every round, so no case always runs on a warmer machine.
      const order = cases.map((_, index) => cases[(index + round) % cases.length]!);
      for (const one of order) {
        loads.push(os.loadavg()[0]!);
        const sample = await one.run(round);
        samples.get(one.id)!.push(sample);
        log(`round ${round}: ${one.id} ${(sample.ms / 1000).toFixed(2)} s, ${(sample.bytes / MB).toFixed(1)} MB`);
        await fs.rm(out, { recursive: true, force: true });
      }
    }

    const machine = await describeMachine();
    const perRound = (id: string, base: string) => median(samples.get(id)!.map((sample, round) => sample.ms / samples.get(base)![round]!.ms));
    const lines = [
      '# Server backup benchmark',
      '',
      `\`npm run bench:server -- --databases ${databaseCount} --size-mb ${sizeMB} --repeat ${repeat}\` — ${machine.date.slice(0, 10)}, took ${((performance.now() - started) / 60000).toFixed(1)} min.`,
      '',
      '## Machine',
      '',
      `- CPU: ${machine.cpu}, ${machine.cores} cores; memory ${machine.memoryGB} GB; ${machine.kernel}`,
      `- Node ${machine.node}; PostgreSQL server ${serverVersion} (embedded, same machine); pg_dump and pg_dumpall ${pgDump.version}`,
      `- Load (1-minute average when each sample started): median ${median(loads).toFixed(1)}, max ${Math.max(...loads).toFixed(1)}`,
      '',
      '## Server',
      '',
      `- ${databaseCount} databases (\`bench/sampleDatabase.ts\`, shape \`mixed\`), ${(databaseBytes / MB).toFixed(0)} MB in all (pg_database_size), ${rows.toLocaleString('en')} rows; two roles`,
      '',
      '## Method',
      '',
      `Each case ran ${repeat} times, interleaved (the order rotates every round), after one unrecorded warm-up of the pg_dump loop. Ratios are the median of each round's ratio (the case's wall time over the reference's in the same round), so a slow round slows both sides. "Wall" is the whole \`pg_dumpall\` or the whole loop of processes; for Backstop it is the \`backupServer\` call (globals, every database, the manifest written and read back), inside this process. Everything writes to local disk on the same machine as the server. Sizes in MB = 10⁶ bytes.`,
      '',
      '| case | wall (s), median | ÷ `pg_dumpall` | ÷ `pg_dump -Fc` loop | output (MB) |',
      '|---|---:|---:|---:|---:|',
      ...cases.map((one) => {
        const list = samples.get(one.id)!;
        return `| ${one.label} | ${(median(list.map((sample) => sample.ms)) / 1000).toFixed(2)} | ${perRound(one.id, 'pg_dumpall').toFixed(2)}× | ${perRound(one.id, 'pg_dump-loop').toFixed(2)}× | ${(median(list.map((sample) => sample.bytes)) / MB).toFixed(1)} |`;
      }),
      '',
      "`pg_dumpall` writes uncompressed SQL that only psql restores, whole and in order; the loop and Backstop write one archive per database that `pg_restore` can restore alone and in parallel. `pg_dump -Fc` compresses with gzip at its default level; Backstop with zstd level 1, and it also counts every table's rows in the dump and hashes every file.",
      '',
    ];
    const written = await writeResults('server', lines.join('\n'), machine.date);
    log(`wrote ${written.join(' and ')}`);
  } finally {
    await stopEmbeddedPostgres(pgHome, { mode: 'immediate' }).catch(() => {});
    await fs.rm(root, { recursive: true, force: true });
  }
}

await main();
