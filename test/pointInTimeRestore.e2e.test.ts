import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { fingerprintTables, type Fingerprints } from '../bench/chaos/fingerprints.ts';
import { compareLsn } from '../src/core/changeSegment.ts';
import { listStoredSegments, segmentDataKey } from '../src/continuous/segmentFiles.ts';
import { generateIdentity } from '../src/pipeline/age.ts';
import { openStore } from '../src/storage/openStore.ts';
import { fastLeaseEnv, killAll, runCli, startCli, type CliProcess } from './support/cli.ts';
import { slotState } from './support/continuous.ts';
import { adminQuery, adminUrl, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { waitFor } from './support/wait.ts';

/** How long the workload runs; the moments are spread over it. */
const WORKLOAD_MS = Number(process.env.BACKSTOP_TEST_WORKLOAD_SECONDS ?? '60') * 1000;
const WORKERS = 3;
/** Every workload transaction takes it shared; a moment takes it exclusive, so no commit straddles the moment. */
const MOMENT_LOCK = 424242;
/** Every insert into the unprotected table takes it shared before writing; a base backup's start takes it exclusive (see takeBase). */
const NOTES_LOCK = 424243;
const PROTECTED = ['public.customers', 'public.orders'];
const UNPROTECTED = 'public.notes';

const schema = `
  create table customers (id serial primary key, email text not null, profile jsonb not null default '{}');
  create table orders (id bigserial primary key, customer_id int not null references customers (id) on delete cascade,
    total numeric(12,2), note text, blob bytea, tags text[], at timestamptz not null default clock_timestamp());
  create table notes (body text);
  create sequence ticket_seq;
  insert into customers (email) select 'seed' || i || '@example.com' from generate_series(1, 20) i;
  insert into orders (customer_id, total, note) select 1 + i % 20, i, 'seed' from generate_series(1, 60) i;
  insert into notes select 'seed ' || i from generate_series(1, 5) i;`;

interface Moment {
  label: string;
  /** What `--at` is given: a commit time or an LSN. */
  at: string;
  fingerprint: Fingerprints;
  ticket: number;
}

/** One workload transaction: a random mix of inserts, updates and deletes over the tables, under the moment lock. */
async function workloadTransaction(client: pg.Client, round: number): Promise<void> {
  const pick = Math.random();
  await client.query('begin');
  try {
    await client.query('select pg_advisory_xact_lock_shared($1)', [MOMENT_LOCK]);
    if (pick < 0.35) {
      const { rows } = await client.query<{ id: number }>(`insert into customers (email, profile) values ($1, $2) returning id`, [
        `c${round}-${Math.random().toString(36).slice(2, 8)}@example.com`,
        JSON.stringify({ round, nested: { list: [1, 2, round] } }),
      ]);
      for (let index = 0; index < 1 + (round % 3); index++) {
        await client.query(`insert into orders (customer_id, total, note, blob, tags) values ($1, $2, 'ticket ' || nextval('ticket_seq'), $3, $4)`, [
          rows[0]!.id,
          (Math.random() * 1000).toFixed(2),
          Buffer.from([round % 256, 0, 255, index]),
          ['a,b', `r${round}`, null],
        ]);
      }
    } else if (pick < 0.6) {
      await client.query(`update orders set total = total + 1, note = note || '+', tags = array_append(tags, 'u') where id = (select id from orders order by random() limit 1)`);
    } else if (pick < 0.7) {
      await client.query(`update customers set profile = profile || jsonb_build_object('seen', $1::int) where id = (select id from customers order by random() limit 1)`, [round]);
    } else if (pick < 0.85) {
      await client.query('delete from orders where id = (select id from orders order by random() limit 1)');
    } else if (pick < 0.9) {
      // Its orders go by the foreign key's cascade, which the stream carries as deletes.
      await client.query('delete from customers where id = (select id from customers order by random() limit 1)');
    } else {
      await client.query('select pg_advisory_xact_lock_shared($1)', [NOTES_LOCK]);
      await client.query(`insert into notes values ($1)`, [`note ${round}`]);
    }
    await client.query('commit');
  } catch {
    // Two workers chose the same row: a deadlock or a serialization error rolls one back.
    await client.query('rollback').catch(() => {});
  }
}

/**
 * A moment of the source: with every workload transaction held off (the lock), an exported
 * repeatable-read snapshot is fingerprinted, then the time and the WAL position are read.
 * Every commit before holds a commit time and an LSN below these; every commit after, above.
 */
async function recordMoment(url: string, label: string, kind: 'time' | 'lsn'): Promise<Moment> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [MOMENT_LOCK]);
    await client.query('begin isolation level repeatable read');
    await client.query('select pg_export_snapshot()');
    const fingerprint = await fingerprintTables(client, [...PROTECTED, UNPROTECTED]);
    const { rows } = await client.query<{ at: string; lsn: string; ticket: string }>(
      `select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at, pg_current_wal_lsn()::text as lsn, last_value::text as ticket from ticket_seq`,
    );
    await client.query('commit');
    await client.query('select pg_advisory_unlock($1)', [MOMENT_LOCK]);
    return { label, at: kind === 'time' ? rows[0]!.at : rows[0]!.lsn, fingerprint, ticket: Number(rows[0]!.ticket) };
  } finally {
    await client.end();
  }
}

describe('point-in-time restore of a continuous target streamed by the real streamer', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let env: Record<string, string>;
  const processes: CliProcess[] = [];
  const key = generateIdentity();
  let identityFile: string;

  before(async () => {
    catalog = await createTestCatalog();
    source = await createTestDatabase('pitrsrc');
    await adminQuery(schema, [], source.url);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-pitr-e2e-'));
    identityFile = path.join(storeDir, 'key.txt');
    await fs.writeFile(identityFile, `${key.identity}\n`, { mode: 0o600 });
    env = { BACKSTOP_DATABASE_URL: catalog.url, ...fastLeaseEnv };
  });
  after(async () => {
    await killAll(processes);
    await adminQuery("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like 'backstop_%' and not active", [], source.url).catch(() => {});
    await catalog.close();
    await source.drop();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  it('restores --at each moment to exactly the source then; target, base backups and streamers all by the CLI', { timeout: WORKLOAD_MS + 600_000 }, async (t) => {
    const storeUrl = `file://${path.join(storeDir, 'store')}`;
    // As an operator makes it: the publication, the permanent slot, the stream row and the first base backup queued.
    const added = await runCli(
      ['target', 'add', 'pitr-app', '--database-url', source.url, '--store', storeUrl, '--continuous', '--segment-seconds', '1', '--encrypt-to', key.recipient, '--json'],
      env,
    );
    assert.equal(added.code, 0, added.stderr);
    const target = JSON.parse(added.stdout) as {
      id: string;
      name: string;
      baseRunId: string;
      continuous: { slot: string };
      publishedTables: number;
      unprotectedTables: Array<{ schema: string; table: string }>;
    };
    const slot = target.continuous.slot;
    assert.equal(target.publishedTables, PROTECTED.length);
    assert.deepEqual(
      target.unprotectedTables.map((table) => `${table.schema}.${table.table}`),
      [UNPROTECTED],
      'a table without a primary key is left out of the publication',
    );

    /** A `backstop stream` of the target, once it holds the slot (a walsender other than `replacing`'s). */
    const startStreamer = async (replacing: number | null = null) => {
      const streamer = startCli(['stream', target.name, '--poll-interval', '0.2'], env);
      processes.push(streamer);
      await waitFor(
        'the streamer to hold the slot',
        async () => {
          const state = await slotState(source.url, slot);
          return state?.active && state.activePid !== replacing;
        },
        30_000,
      );
      return streamer;
    };
    let streamer = await startStreamer();

    /**
     * A base backup by the CLI command `args`, under the workload. Inserts into the unprotected
     * table are held off from before the command starts until the run's temporary slot is
     * consistent: the base's snapshot then holds that table exactly as read here, while the
     * protected tables change throughout.
     */
    const bases = new Map<string, Fingerprints>();
    const takeBase = async (args: string[]): Promise<string> => {
      const holder = new pg.Client({ connectionString: source.url });
      await holder.connect();
      let notes: Fingerprints;
      let backup: CliProcess;
      let consistent: { lsn: string } | { exited: true };
      try {
        await holder.query('select pg_advisory_lock($1)', [NOTES_LOCK]);
        notes = await fingerprintTables(holder, [UNPROTECTED]);
        backup = startCli(args, env);
        processes.push(backup);
        // A slot's confirmed_flush_lsn is set once its snapshot is built, at its consistent point.
        consistent = await waitFor(
          "the base backup's temporary slot to be consistent",
          async () => {
            if (backup.child.exitCode !== null) return { exited: true as const };
            const rows = await adminQuery<{ lsn: string }>(
              'select confirmed_flush_lsn::text as lsn from pg_replication_slots where starts_with(slot_name, $1) and temporary and confirmed_flush_lsn is not null',
              [`${slot}_b`],
              source.url,
            );
            return rows[0];
          },
          120_000,
          20,
        );
      } finally {
        // The session's end releases the lock: inserts into the unprotected table go on.
        await holder.end();
      }
      const { code } = await backup.exited;
      assert.equal(code, 0, `backstop ${args.join(' ')}: ${backup.stderr()}`);
      assert.ok('lsn' in consistent, `backstop ${args[0]} ended before its temporary slot was seen: ${backup.stderr()}`);
      const run = JSON.parse(backup.stdout()) as { id: string; status: string };
      assert.equal(run.status, 'succeeded');
      bases.set(run.id, notes);
      const { rows } = await catalog.pool.query<{ base_lsn: string | null; base_slot: string | null }>('select base_lsn::text, base_slot from backstop.runs where id = $1', [run.id]);
      assert.deepEqual(rows[0], { base_lsn: consistent.lsn, base_slot: slot }, `run ${run.id} is recorded as a base at its temporary slot's consistent point`);
      return run.id;
    };

    // The workload: WORKERS connections committing random transactions until told to stop. It
    // runs through both base backups: their snapshots are taken while transactions commit.
    let stopping = false;
    let committed = 0;
    const workers = Array.from({ length: WORKERS }, async (_, worker) => {
      const client = new pg.Client({ connectionString: source.url });
      await client.connect();
      try {
        for (let round = worker; !stopping; round += WORKERS) {
          await workloadTransaction(client, round);
          committed++;
        }
      } finally {
        await client.end();
      }
    });
    const moments: Moment[] = [];
    const started = performance.now();
    const until = async (fraction: number) =>
      waitFor(`${Math.round(fraction * 100)}% of the workload`, () => performance.now() - started >= fraction * WORKLOAD_MS, WORKLOAD_MS + 60_000, 100);
    let first: string;
    let second: string;
    try {
      // The base `target add` queued, executed as a CI job would.
      first = await takeBase(['run', target.baseRunId, '--json']);
      assert.equal(first, target.baseRunId);
      const { rows: streams } = await catalog.pool.query<{ state: string }>('select state from backstop.continuous_streams where target_id = $1', [target.id]);
      assert.equal(streams[0]?.state, 'streaming', 'the first base backup opens the stream');
      moments.push(await recordMoment(source.url, 'just after the first base backup', 'time'));
      await until(0.15 + Math.random() * 0.1);
      moments.push(await recordMoment(source.url, 'during the workload', 'time'));
      await until(0.3 + Math.random() * 0.1);
      moments.push(await recordMoment(source.url, 'an LSN during the workload', 'lsn'));

      // The streamer dies without a word; a new one takes the stream over once its lease expires.
      const killedPid = (await slotState(source.url, slot))!.activePid;
      streamer.child.kill('SIGKILL');
      await streamer.exited;
      streamer = await startStreamer(killedPid);
      await until(0.5);
      moments.push(await recordMoment(source.url, 'after the streamer was killed and replaced', 'time'));

      // A backup now of the existing target: queued, claimed and run in this one command.
      second = await takeBase(['backup', source.url, '--target', target.name, '--json']);
      moments.push(await recordMoment(source.url, 'just after the second base backup', 'time'));
      await until(0.75 + Math.random() * 0.15);
      moments.push(await recordMoment(source.url, 'late in the workload', 'time'));
      await until(1);
    } finally {
      stopping = true;
      await Promise.all(workers);
    }
    assert.ok(committed > 100, `the workload committed ${committed} transactions`);
    t.diagnostic(`the workload ran ${committed} transactions over ${WORKLOAD_MS / 1000} s`);
    moments.push({ ...(await recordMoment(source.url, 'the end (latest)', 'time')), at: 'latest' });

    // Every commit is stored before restoring: a last marker transaction, then its LSN in the catalog.
    await adminQuery(`insert into customers (email) values ('marker@example.com')`, [], source.url);
    const [{ lsn: markerLsn }] = (await adminQuery<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn', [], source.url)) as [{ lsn: string }];
    await adminQuery(`delete from customers where email = 'marker@example.com'`, [], source.url);
    const last = moments.at(-1)!;
    last.fingerprint = await (async () => {
      const client = new pg.Client({ connectionString: source.url });
      await client.connect();
      try {
        return await fingerprintTables(client, [...PROTECTED, UNPROTECTED]);
      } finally {
        await client.end();
      }
    })();
    await waitFor(
      'the stream to store the last commit',
      async () => {
        const { rows } = await catalog.pool.query<{ end_lsn: string | null }>('select max(end_lsn)::text as end_lsn from backstop.change_segments where target_id = $1', [target.id]);
        return rows[0]?.end_lsn && compareLsn(rows[0].end_lsn, markerLsn) > 0;
      },
      60_000,
      200,
    );

    for (const moment of moments) {
      const restored = await createTestDatabase('pitrdst');
      try {
        const result = await runCli(['restore', target.name, '--at', moment.at, '--to', restored.url, '--identity', identityFile, '--json'], env);
        assert.equal(result.code, 0, `${moment.label} (${moment.at}): ${result.stderr}`);
        const outcome = JSON.parse(result.stdout) as {
          status: string;
          pointInTime: { baseRunId: string; transactions: number; notContinuouslyProtected: string[]; reachedLsn: string };
        };
        assert.equal(outcome.status, 'restored');
        t.diagnostic(
          `${moment.label} (--at ${moment.at}): base ${outcome.pointInTime.baseRunId.slice(0, 8)}, ${outcome.pointInTime.transactions} transaction(s) replayed to ${outcome.pointInTime.reachedLsn}`,
        );
        const client = new pg.Client({ connectionString: restored.url });
        await client.connect();
        try {
          const got = await fingerprintTables(client, [...PROTECTED, UNPROTECTED]);
          for (const table of PROTECTED) assert.deepEqual(got[table], moment.fingerprint[table], `${table} at ${moment.label} (${moment.at})`);
          // Not in the publication: as the base backup the restore started from had it, and said so.
          assert.deepEqual(got[UNPROTECTED], bases.get(outcome.pointInTime.baseRunId)![UNPROTECTED], `${UNPROTECTED} at ${moment.label}`);
          assert.ok(outcome.pointInTime.notContinuouslyProtected.includes(UNPROTECTED));
          const { rows } = await client.query<{ last_value: string }>('select last_value::text from ticket_seq');
          assert.ok(Number(rows[0]!.last_value) >= moment.ticket, `ticket_seq at ${moment.label}: ${rows[0]!.last_value} < ${moment.ticket}`);
        } finally {
          await client.end();
        }
        if (moment.label.startsWith('just after the first')) assert.equal(outcome.pointInTime.baseRunId, first);
        if (moment.label.startsWith('just after the second') || moment.at === 'latest') assert.equal(outcome.pointInTime.baseRunId, second, 'the newest base before the point');
      } finally {
        await restored.drop();
      }
    }

    // A catalog that lost its segment rows still restores: the store's own manifests are read.
    await catalog.pool.query('delete from backstop.change_segments where target_id = $1', [target.id]);
    const fromStore = await createTestDatabase('pitrstore');
    try {
      const result = await runCli(['restore', target.name, '--at', 'latest', '--to', fromStore.url, '--identity', identityFile, '--json'], env);
      assert.equal(result.code, 0, result.stderr);
      const client = new pg.Client({ connectionString: fromStore.url });
      await client.connect();
      try {
        const got = await fingerprintTables(client, PROTECTED);
        for (const table of PROTECTED) assert.deepEqual(got[table], last.fingerprint[table], `${table} restored from the store alone`);
      } finally {
        await client.end();
      }
    } finally {
      await fromStore.drop();
    }

    // A drill of the first base: restored to a random segment's end in a scratch database, row
    // counts checked against the base's plus the replay's inserts and deletes; then carried on
    // to the second base's LSN and compared with that base's own counts.
    const drillEnv = { ...env, BACKSTOP_SCRATCH_URL: adminUrl(), BACKSTOP_SCRATCH_SUPERUSER_OK: 'postgres' };
    const drill = await runCli(['verify', first, '--identity', identityFile, '--json'], drillEnv);
    assert.equal(drill.code, 0, drill.stderr);
    assert.equal(JSON.parse(drill.stdout).status, 'succeeded', drill.stdout);
    const verification = async () =>
      (
        await catalog.pool.query<{
          verification: { status: string; point: { transactions: number; laterBase: { runId: string; tables: number } | null } | null; error: { code: string } | null };
        }>('select verification from backstop.runs where id = $1', [first])
      ).rows[0]!.verification;
    const passed = await verification();
    assert.equal(passed.status, 'passed');
    assert.ok(passed.point && passed.point.transactions > 0, JSON.stringify(passed));
    assert.deepEqual(
      { runId: passed.point.laterBase?.runId, tables: passed.point.laterBase?.tables },
      { runId: second, tables: PROTECTED.length },
      'the replay went on to the second base and compared every followed table with its counts',
    );

    // Damaged segments fail the drill (whichever segment it chooses, all of them are damaged).
    const store = await openStore(storeUrl);
    const stored = await listStoredSegments(store, target.name, target.id).finally(() => store.close());
    for (const segment of stored) {
      const damaged = path.join(storeDir, 'store', segmentDataKey(segment));
      const bytes = await fs.readFile(damaged);
      bytes.writeUInt8(bytes.readUInt8(bytes.length >> 1) ^ 0xff, bytes.length >> 1);
      await fs.writeFile(damaged, bytes);
    }
    const failed = await runCli(['verify', first, '--identity', identityFile, '--json'], drillEnv);
    assert.notEqual(failed.code, 0, failed.stdout);
    const finding = await verification();
    assert.equal(finding.status, 'failed');
    assert.equal(finding.error?.code, 'ARTIFACT_CORRUPT');

    // Before the first base backup nothing is restorable: refused with the window.
    const early = await createTestDatabase('pitrearly');
    try {
      const refused = await runCli(['restore', target.name, '--at', '2000-01-01T00:00:00Z', '--to', early.url, '--identity', identityFile], env);
      assert.equal(refused.code, 4, refused.stderr);
      assert.match(refused.stderr, /POINT_NOT_RESTORABLE/);
      assert.match(refused.stderr, new RegExp(`base ${first} \\(slot ${slot}\\): from \\S+ \\(LSN [0-9A-F/]+\\) to`));
    } finally {
      await early.drop();
    }
  });
});
