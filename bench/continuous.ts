/**
 * `npm run bench:continuous`: what continuous backup costs the source and what it gives back.
 * On one generated pgbench database, with a continuous target streamed by a real
 * `backstop worker`:
 *
 * - the source's transactions per second under `pgbench` with the streamer running and with
 *   it stopped (its slot kept), rounds interleaved, as the median of per-round ratios;
 * - the recovery point objective while the streamer runs under that load: now minus the
 *   newest durably stored commit, sampled from the catalog every 200 ms, p50/p99;
 * - a point-in-time restore (`restore TARGET --at latest`: the base backup, then every
 *   transaction streamed since) against a plain restore of the same base backup, and the
 *   transactions replayed per second.
 *
 *   npm run bench:continuous -- [--scale 10] [--seconds 20] [--clients 4] [--repeat 3] [--segment-seconds 2] [--restore-repeat 1]
 *
 * Writes bench/results/continuous-<date>.md and bench/results/latest-continuous.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { withDatabase } from '../src/core/databaseUrl.ts';
import { recoveryPointSql } from '../src/db/continuousStreams.ts';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { findPgTool } from '../src/pgtools/findPgTools.ts';
import { connectionArgs } from '../src/pgtools/spawnPgTool.ts';
import { describeMachine } from './machine.ts';
import { processCpuMs } from './processCpu.ts';
import { median } from './report.ts';
import { runChecked } from './timedProcess.ts';
import { writeResults } from './writeResults.ts';

const { values: args } = parseArgs({
  options: {
    scale: { type: 'string', default: '10' },
    seconds: { type: 'string', default: '20' },
    clients: { type: 'string', default: '4' },
    repeat: { type: 'string', default: '3' },
    'segment-seconds': { type: 'string', default: '2' },
    'restore-repeat': { type: 'string', default: '1' },
  },
});
const scale = Number(args.scale);
const seconds = Number(args.seconds);
const clients = Number(args.clients);
const repeat = Number(args.repeat);
const segmentSeconds = Number(args['segment-seconds']);
// Replaying every transaction of the load phase takes minutes: restores repeat fewer times.
const restoreRepeat = Number(args['restore-repeat']);
if (![scale, seconds, clients, repeat, segmentSeconds].every((value) => Number.isInteger(value) && value > 0) || !Number.isInteger(restoreRepeat) || restoreRepeat < 0) {
  process.stderr.write('--scale, --seconds, --clients, --repeat and --segment-seconds must be positive whole numbers, --restore-repeat a whole number (0: no restores)\n');
  process.exit(2);
}

const started = performance.now();
const log = (message: string) => process.stderr.write(`[${Math.round((performance.now() - started) / 1000)} s] ${message}\n`);
const cliPath = fileURLToPath(new URL('../bin/backstop.js', import.meta.url));

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]!;
}

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 300_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function main(): Promise<void> {
  const root = await temporaryHome('backstop-bench-continuous-');
  const pgHome = path.join(root, 'pg');
  let worker: ChildProcess | null = null;
  const stopWorker = async () => {
    const child = worker;
    worker = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('close', resolve));
    child.kill('SIGTERM');
    await exited;
  };
  try {
    const server = await ensureEmbeddedPostgres(pgHome);
    const admin = new pg.Client({ connectionString: server.url() });
    admin.on('error', () => {});
    await admin.connect();
    const serverVersion = (await admin.query<{ v: string }>(`select current_setting('server_version') as v`)).rows[0]!.v;
    const major = Number(serverVersion.split('.')[0]);
    await admin.query('create database bench_source');
    await admin.query('create database bench_catalog');
    const sourceUrl = withDatabase(server.url(), 'bench_source');
    const catalogUrl = withDatabase(server.url(), 'bench_catalog');
    // pgbench ships beside pg_dump in every PostgreSQL client package.
    const pgDump = await findPgTool('pg_dump', major);
    const pgbench = { path: path.join(path.dirname(pgDump.path), 'pgbench'), version: pgDump.version };
    const source = connectionArgs(sourceUrl);
    log(`pgbench -i -s ${scale}`);
    await runChecked(pgbench.path, ['-i', '-s', String(scale), '-q', source.dbname], source.env);

    const storeDir = path.join(root, 'store');
    const env: Record<string, string> = {
      BACKSTOP_DATABASE_URL: catalogUrl,
      BACKSTOP_HOME: path.join(root, 'home'),
      BACKSTOP_LOG_LEVEL: 'warn',
      BACKSTOP_LEASE_TTL: '10',
      BACKSTOP_REAPER_INTERVAL: '1',
    };
    const cli = (...cliArgs: string[]) => runChecked(process.execPath, [cliPath, ...cliArgs], env);
    await cli('target', 'add', 'bench', '--database-url', sourceUrl, '--store', `file://${storeDir}`, '--continuous', '--segment-seconds', String(segmentSeconds));

    const catalog = new pg.Client({ connectionString: catalogUrl });
    catalog.on('error', () => {});
    await catalog.connect();
    const stream = async () =>
      (
        await catalog.query<{ state: string; lease_live: boolean; rpo: number | null }>(
          `select s.state, coalesce(s.lease_expires_at > now(), false) as lease_live,
                  extract(epoch from now() - ${recoveryPointSql})::float8 as rpo
             from backstop.continuous_streams s join backstop.targets t on t.id = s.target_id where t.name = 'bench'`,
        )
      ).rows[0];
    const startWorker = () => {
      worker = spawn(process.execPath, [cliPath, 'worker'], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
    };
    startWorker();
    log('waiting for the first base backup and the stream');
    await until('the stream to be streaming', async () => (await stream())?.state === 'streaming');

    /**
     * Waits until the slot has been confirmed up to the source's current WAL position: every
     * change before it is stored (a quiet stretch is confirmed without a segment, so the slot's
     * own position is the one to watch, not the newest segment's end).
     */
    const caughtUp = async () => {
      const lsn = (await admin.query<{ lsn: string }>(`select pg_current_wal_lsn()::text as lsn`)).rows[0]!.lsn;
      await until('the streamer to catch up', async () => {
        const row = await stream();
        if (!row?.lease_live) return false;
        const { rows } = await admin.query<{ ok: boolean }>(
          `select coalesce(confirmed_flush_lsn >= $1::pg_lsn, false) as ok from pg_replication_slots where slot_name like 'backstop\\_%' and not temporary`,
          [lsn],
        );
        return rows[0]?.ok === true;
      });
    };
    const runPgbench = async () => {
      const exit = await runChecked(pgbench.path, ['-n', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), source.dbname], source.env);
      const match = /tps = ([\d.]+) \(without initial connection time\)/.exec(exit.stdout) ?? /tps = ([\d.]+)/.exec(exit.stdout);
      if (!match) throw new Error(`pgbench printed no tps: ${exit.stdout.slice(-500)}`);
      return Number(match[1]);
    };

    const tps = { with: [] as number[], without: [] as number[] };
    const rpo: number[] = [];
    const cpu = { node: [] as number[], walsender: [] as number[] };
    const loads: number[] = [];
    for (let round = 1; round <= repeat; round++) {
      const order: Array<'with' | 'without'> = round % 2 === 1 ? ['without', 'with'] : ['with', 'without'];
      for (const mode of order) {
        if (mode === 'with') {
          if (!worker) startWorker();
          // The streamer first drains what waited in the slot: the load is measured in steady state.
          await caughtUp();
          loads.push(os.loadavg()[0]!);
          let sampling = true;
          const sampler = (async () => {
            while (sampling) {
              const row = await stream();
              if (row?.rpo !== null && row?.rpo !== undefined) rpo.push(row.rpo);
              await new Promise((resolve) => setTimeout(resolve, 200));
            }
          })();
          // Where the streamer's CPU goes: its walsender (decoding) and Backstop's process.
          const walsender = (await admin.query<{ pid: number }>(`select pid from pg_stat_activity where backend_type = 'walsender' and application_name = 'backstop:stream' limit 1`))
            .rows[0]?.pid;
          const cpuBefore = { node: await processCpuMs(worker!.pid!), walsender: walsender ? await processCpuMs(walsender) : 0 };
          tps.with.push(await runPgbench());
          cpu.node.push((await processCpuMs(worker!.pid!)) - cpuBefore.node);
          cpu.walsender.push(walsender ? (await processCpuMs(walsender)) - cpuBefore.walsender : Number.NaN);
          sampling = false;
          await sampler;
        } else {
          await stopWorker();
          loads.push(os.loadavg()[0]!);
          tps.without.push(await runPgbench());
        }
        log(`round ${round}: ${mode} streamer ${tps[mode].at(-1)!.toFixed(0)} tps`);
      }
    }
    if (!worker) startWorker();
    await caughtUp();
    await stopWorker();

    const baseRun =
      restoreRepeat === 0
        ? ''
        : (
            await catalog.query<{ id: string }>(
              `select r.id from backstop.runs r join backstop.targets t on t.id = r.target_id
          where t.name = 'bench' and r.kind = 'backup' and r.status = 'succeeded' and r.base_lsn is not null order by r.finished_at desc limit 1`,
            )
          ).rows[0]!.id;
    const restores = { plain: [] as number[], pitr: [] as number[], transactions: 0, batches: 0, replayMs: [] as number[] };
    for (let round = 1; round <= restoreRepeat; round++) {
      for (const mode of round % 2 === 1 ? (['plain', 'pitr'] as const) : (['pitr', 'plain'] as const)) {
        const database = `restore_${mode}_${round}`;
        await admin.query(`create database ${database}`);
        const destination = withDatabase(server.url(), database);
        const exit = await cli('restore', ...(mode === 'plain' ? [baseRun] : ['bench', '--at', 'latest']), '--to', destination, '--json');
        restores[mode].push(exit.ms);
        if (mode === 'pitr') {
          const result = JSON.parse(exit.stdout) as { pointInTime?: { transactions: number; batches: number; elapsedReplayMs: number } };
          restores.transactions = result.pointInTime?.transactions ?? 0;
          restores.batches = result.pointInTime?.batches ?? 0;
          restores.replayMs.push(result.pointInTime?.elapsedReplayMs ?? Number.NaN);
          if (!result.pointInTime) throw new Error(`restore --at printed no pointInTime: ${exit.stdout.slice(0, 2000)}`);
        }
        await admin.query(`drop database ${database} with (force)`);
        log(`restore round ${round}: ${mode} ${(exit.ms / 1000).toFixed(1)} s`);
      }
    }
    await catalog.end();
    await admin.end();

    const machine = await describeMachine();
    const perRound = (values: number[], bases: number[]) => median(values.map((value, index) => value / bases[index]!));
    const replayMs = median(restores.pitr.map((value, index) => value - restores.plain[index]!));
    const lines = [
      '# Continuous backup benchmark',
      '',
      `\`npm run bench:continuous -- --scale ${scale} --seconds ${seconds} --clients ${clients} --repeat ${repeat} --segment-seconds ${segmentSeconds} --restore-repeat ${restoreRepeat}\` — ${machine.date.slice(0, 10)}, took ${((performance.now() - started) / 60000).toFixed(1)} min.`,
      '',
      '## Machine',
      '',
      `- CPU: ${machine.cpu}, ${machine.cores} cores; memory ${machine.memoryGB} GB; ${machine.kernel}`,
      `- Node ${machine.node}; PostgreSQL server ${serverVersion} (embedded, wal_level = logical); pgbench ${pgbench.version}`,
      `- Load (1-minute average when each pgbench run started): median ${median(loads).toFixed(1)}, max ${Math.max(...loads).toFixed(1)}`,
      '',
      '## Method',
      '',
      `The source is \`pgbench -i -s ${scale}\`; the load is pgbench's TPC-B-like script, ${clients} clients for ${seconds} s. The streamer is a \`backstop worker\` on the same machine writing ${segmentSeconds}-second segments (zstd 1) to local disk; the catalog is a database of the same server. "Without" stops the worker (the slot stays, so the source still writes the same WAL); before each "with" run the streamer first catches up, so the figure is its steady state. The order alternates every round; ratios are medians of per-round ratios. \`pgbench_history\` has no primary key, so it is not continuously protected (the target lists it): its inserts are not decoded into segments, as in any such database.`,
      '',
      '| measure | value |',
      '|---|---:|',
      `| source TPS without the streamer, median | ${median(tps.without).toFixed(0)} |`,
      `| source TPS with the streamer, median | ${median(tps.with).toFixed(0)} |`,
      `| TPS with ÷ without (median of per-round ratios) | ${perRound(tps.with, tps.without).toFixed(3)}× |`,
      `| CPU of Backstop's streamer process per pgbench run, median (s of ${seconds}) | ${(median(cpu.node) / 1000).toFixed(1)} |`,
      `| CPU of its walsender (logical decoding, in PostgreSQL) per run, median (s of ${seconds}) | ${(median(cpu.walsender) / 1000).toFixed(1)} |`,
      `| RPO under that load, p50 (s) | ${percentile(rpo, 0.5).toFixed(2)} |`,
      `| RPO under that load, p99 (s) | ${percentile(rpo, 0.99).toFixed(2)} |`,
      `| RPO samples | ${rpo.length} |`,
      ...(restoreRepeat === 0
        ? ['| restores | not measured (`--restore-repeat 0`) |']
        : [
            `| plain restore of the base backup, median (s) | ${(median(restores.plain) / 1000).toFixed(1)} |`,
            `| point-in-time restore \`--at latest\`, median (s) | ${(median(restores.pitr) / 1000).toFixed(1)} |`,
            `| point-in-time ÷ plain restore (median of per-round ratios) | ${perRound(restores.pitr, restores.plain).toFixed(2)}× |`,
            `| transactions replayed | ${restores.transactions.toLocaleString('en')} |`,
            `| database transactions the replay committed them in | ${restores.batches.toLocaleString('en')} |`,
            `| replay rate (transactions ÷ (point-in-time − plain restore time)), per second | ${replayMs > 0 ? Math.round(restores.transactions / (replayMs / 1000)).toLocaleString('en') : 'n/a'} |`,
            `| replay rate (transactions ÷ the replay's own time, median), per second | ${Math.round(restores.transactions / (median(restores.replayMs) / 1000)).toLocaleString('en')} |`,
          ]),
      '',
      'RPO is now minus the newest commit the archive holds durably (or the moment it last found nothing new to store), as the catalog records it: the data a loss of the source at that instant would lose. Its floor is the segment length: a segment is stored, and only then confirmed, when it closes.',
      '',
    ];
    const written = await writeResults('continuous', lines.join('\n'), machine.date);
    log(`wrote ${written.join(' and ')}`);
  } finally {
    await stopWorker().catch(() => {});
    if (process.env.BENCH_KEEP) {
      log(`kept ${root}`);
    } else {
      await stopEmbeddedPostgres(pgHome, { mode: 'immediate' }).catch(() => {});
      await fs.rm(root, { recursive: true, force: true });
    }
  }
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
