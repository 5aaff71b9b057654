import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import { pruneTargets } from '../src/operations/pruneTargets.ts';
import { isBackstopError } from '../src/core/errors.ts';
import { artifactPrefix } from '../src/core/manifest.ts';
import { groupArtifactPrefixes, planGarbage, type CatalogRun } from '../src/core/planGarbage.ts';
import { describeReason, planRetention, validateRetentionPolicy, type RetentionBackup } from '../src/core/planRetention.ts';
import { markRunPruned } from '../src/db/retention.ts';
import { createRun, requestCancel } from '../src/db/runRecords.ts';
import { createTarget, type TargetRecord } from '../src/db/targets.ts';
import { localStore } from '../src/storage/localStore.ts';
import type { Store } from '../src/storage/store.ts';
import { runCli } from './support/cli.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import { manifestFor } from './support/manifests.ts';
import { filesUnder } from './support/store.ts';

const DAY = 86_400_000;
const log = pino({ level: 'silent' });

describe('planRetention (examples)', () => {
  const daily = (from: string, to: string): RetentionBackup[] => {
    const backups: RetentionBackup[] = [];
    for (let at = Date.parse(`${from}T02:00:00Z`); at <= Date.parse(`${to}T02:00:00Z`); at += DAY) {
      backups.push({ id: new Date(at).toISOString().slice(0, 10), takenAt: at, verified: false });
    }
    return backups;
  };

  it('grandfather-father-son: last, daily, ISO-weekly and monthly, each backup with its reasons', () => {
    const backups = daily('2024-01-15', '2024-03-15');
    const plan = planRetention(backups, { keepLast: 2, daily: 7, weekly: 4, monthly: 3 }, Date.parse('2024-03-15T12:00:00Z'));
    const kept = Object.fromEntries(plan.keep.map((entry) => [entry.id, entry.reasons.map(describeReason)]));
    assert.deepEqual(Object.keys(kept).sort(), [
      '2024-01-31',
      '2024-02-25',
      '2024-02-29',
      '2024-03-03',
      '2024-03-09',
      '2024-03-10',
      '2024-03-11',
      '2024-03-12',
      '2024-03-13',
      '2024-03-14',
      '2024-03-15',
    ]);
    assert.deepEqual(kept['2024-03-15'], ['newest', 'last', 'daily:2024-03-15', 'weekly:2024-W11', 'monthly:2024-03']);
    assert.deepEqual(kept['2024-03-10'], ['daily:2024-03-10', 'weekly:2024-W10']);
    assert.deepEqual(kept['2024-02-25'], ['weekly:2024-W08']);
    assert.deepEqual(kept['2024-01-31'], ['monthly:2024-01']);
    assert.equal(plan.delete.length, backups.length - 11);
    assert.equal(plan.delete[0]!.id, '2024-03-08');
  });

  it('the newest verified backup is kept even when no rule would keep it', () => {
    const backups = daily('2024-03-01', '2024-03-10').map((backup) => ({ ...backup, verified: backup.id === '2024-03-02' || backup.id === '2024-03-01' }));
    const plan = planRetention(backups, { keepLast: 1 }, Date.parse('2024-04-01T00:00:00Z'));
    assert.deepEqual(
      plan.keep.map((entry) => [entry.id, entry.reasons.map(describeReason)]),
      [
        ['2024-03-10', ['newest', 'last']],
        ['2024-03-02', ['newest-verified']],
      ],
    );
  });

  it('days, weeks and months begin in the policy time zone; ISO weeks straddle years', () => {
    const backups: RetentionBackup[] = [
      { id: 'late-sunday-utc', takenAt: Date.parse('2024-03-10T23:30:00Z'), verified: false },
      { id: 'sunday-noon', takenAt: Date.parse('2024-03-10T12:00:00Z'), verified: false },
    ];
    const now = Date.parse('2024-04-01T00:00:00Z');
    assert.equal(planRetention(backups, { daily: 5 }, now).keep.length, 1); // one UTC day
    const paris = planRetention(backups, { daily: 5, weekly: 5, timezone: 'Europe/Paris' }, now);
    assert.deepEqual(
      paris.keep.map((entry) => entry.reasons.map(describeReason)),
      [
        ['newest', 'daily:2024-03-11', 'weekly:2024-W11'], // Monday 00:30 in Paris
        ['daily:2024-03-10', 'weekly:2024-W10'],
      ],
    );
    const boundary: RetentionBackup[] = [
      { id: 'a', takenAt: Date.parse('2024-12-30T10:00:00Z'), verified: false },
      { id: 'b', takenAt: Date.parse('2021-01-03T10:00:00Z'), verified: false },
    ];
    const weeks = planRetention(boundary, { weekly: 5 }, now + 1000 * DAY).keep.map((entry) => entry.reasons.at(-1)!.period);
    assert.deepEqual(weeks, ['2025-W01', '2020-W53']);
  });

  it('policies are checked, every problem at once', () => {
    assert.throws(
      () => validateRetentionPolicy({ keepLast: -1, daily: 1.5, timezone: 'Nowhere' }),
      (error: unknown) =>
        isBackstopError(error, 'INVALID_INPUT') &&
        /keepLast must be a whole number/.test(error.message) &&
        /daily must/.test(error.message) &&
        /"Nowhere" is not a time zone/.test(error.message),
    );
    assert.throws(() => validateRetentionPolicy({}), /keep at least one backup/);
  });
});

describe('planGarbage (examples)', () => {
  const run = 'f47ac10b-58cc-4372-a567-0e02b2c3d479';
  const other = '9b2f7c1e-4a5d-4e6f-8a7b-1c2d3e4f5a6b';
  it('groups keys by attempt prefix and ignores anything outside the layout', () => {
    const groups = groupArtifactPrefixes('app', [
      { key: `app/2024/05/${run}/attempt-1/dump.pgcustom.zst`, lastModified: 10 },
      { key: `app/2024/05/${run}/attempt-1/manifest.json`, lastModified: 20 },
      { key: `app/2024/05/${run}/attempt-2/dump.pgcustom.zst`, lastModified: 30 },
      { key: `app/notes.txt`, lastModified: 0 },
      { key: `app2/2024/05/${other}/attempt-1/dump.pgcustom.zst`, lastModified: 0 },
    ]);
    assert.deepEqual(
      groups.map((group) => [group.prefix, group.hasManifest, group.objects, group.newestAt]),
      [
        [`app/2024/05/${run}/attempt-1/`, true, 2, 20],
        [`app/2024/05/${run}/attempt-2/`, false, 1, 30],
      ],
    );
  });

  it('deletes only on positive evidence: no valid manifest past the grace period, or a superseded attempt; complete backups without a vouching row are unknown', () => {
    const third = '0c8a4f1e-2b3d-4c5e-9f60-718293a4b5c6';
    const fourth = '1d9b5a2f-3c4e-4d6f-a071-8293a4b5c6d7';
    const fifth = '2eac6b3a-4d5f-4e70-b182-93a4b5c6d7e8';
    const prefix = (id: string, attempt: number) => ({ prefix: `app/2024/05/${id}/attempt-${attempt}/`, runId: id, attempt, objects: 1, newestAt: 0 });
    const valid = { hasManifest: true, manifest: { state: 'valid' } } as const;
    const row = (over: Partial<CatalogRun>): CatalogRun => ({
      status: 'succeeded',
      ofTarget: true,
      attempt: 1,
      artifactProblem: null,
      artifactPrefix: null,
      pruned: false,
      ...over,
    });
    const runs = new Map<string, CatalogRun>([
      [run, row({ attempt: 2, artifactPrefix: `app/2024/05/${run}/attempt-2/` })],
      [third, row({ status: 'timed_out', artifactPrefix: null })],
      [fourth, row({ artifactPrefix: `elsewhere/`, artifactProblem: 'it records its artifact in file:///victim' })],
      [fifth, row({ ofTarget: false, attempt: 2, artifactPrefix: `other/2024/05/${fifth}/attempt-2/` })],
    ]);
    const plan = planGarbage(
      [
        { ...prefix(run, 1), ...valid },
        { ...prefix(run, 2), ...valid },
        { ...prefix(run, 3), hasManifest: true, manifest: { state: 'invalid', problem: 'its manifest names run x' } },
        { ...prefix(other, 1), hasManifest: false, manifest: { state: 'absent' } },
        { ...prefix(other, 2), hasManifest: false, manifest: { state: 'absent' }, newestAt: 950 },
        { ...prefix(other, 3), ...valid },
        { ...prefix(other, 4), hasManifest: true, manifest: { state: 'unreadable', problem: 'connection reset' } },
        { ...prefix(third, 1), ...valid },
        { ...prefix(fourth, 1), ...valid },
        { ...prefix(fifth, 1), ...valid },
      ],
      runs,
      { now: 1000, gracePeriodMs: 100 },
    );
    assert.deepEqual(
      plan.delete.map((entry) => [entry.prefix, entry.reason]),
      [
        [`app/2024/05/${run}/attempt-1/`, 'superseded-attempt'],
        [`app/2024/05/${run}/attempt-3/`, 'invalid-manifest'],
        [`app/2024/05/${other}/attempt-1/`, 'incomplete'],
      ],
    );
    assert.deepEqual(
      plan.waiting.map((entry) => entry.prefix),
      [`app/2024/05/${other}/attempt-2/`],
    );
    assert.deepEqual(
      plan.unknown.map((entry) => [entry.prefix, entry.reason]),
      [
        [`app/2024/05/${other}/attempt-3/`, 'run-missing'],
        [`app/2024/05/${third}/attempt-1/`, 'run-not-succeeded'],
        [`app/2024/05/${fourth}/attempt-1/`, 'recorded-elsewhere'],
        [`app/2024/05/${fifth}/attempt-1/`, 'run-of-another-target'],
      ],
    );
    assert.equal(plan.warnings.length, 1);
    assert.match(plan.warnings[0]!, /attempt-4\/manifest\.json could not be read \(connection reset\); nothing is deleted on a failed read/);
    const running = planGarbage([{ ...prefix(other, 1), hasManifest: false, manifest: { state: 'absent' } }], new Map([[other, row({ status: 'running' })]]), {
      now: 10 ** 12,
      gracePeriodMs: 0,
    });
    assert.deepEqual(running.delete, []);
  });
});

describe('prune against a real catalog and a local store', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let storeDir: string;
  let target: TargetRecord;
  let env: Record<string, string>;
  let counter = 0;

  before(async () => {
    catalog = await createTestCatalog();
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-retention-'));
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${storeDir}` };
  });

  beforeEach(async () => {
    target = await createTarget(catalog.pool, {
      name: `app-${++counter}`,
      databaseUrl: 'postgres://u:p@127.0.0.1:1/nothing',
      storeUrl: `file://${storeDir}`,
      retention: { keepLast: 2 },
    });
  });

  after(async () => {
    await catalog.close();
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  /** A run `daysAgo` old (database time) with its objects in the store. */
  const seed = async (input: { daysAgo: number; status?: string; verified?: boolean; manifest?: boolean | 'invalid'; attempt?: number }) => {
    const id = randomUUID();
    const status = input.status ?? 'succeeded';
    const terminal = ['succeeded', 'failed', 'cancelled', 'timed_out'].includes(status);
    const { rows } = await catalog.pool.query<{ created_at: string }>(
      `insert into backstop.runs (id, target_id, status, trigger, attempt, deadline_at, created_at, started_at, finished_at, lease_id, lease_expires_at, verification)
       values ($1, $2, $3, 'test', $4, now() + interval '1 day', now() - $5 * interval '1 day', now() - $5 * interval '1 day',
               case when $6 then now() - $5 * interval '1 day' + interval '1 minute' end,
               case when $3 in ('running', 'cancelling') then gen_random_uuid() end,
               case when $3 in ('running', 'cancelling') then now() + interval '1 hour' end,
               $7::jsonb)
       returning created_at`,
      [id, target.id, status, input.attempt ?? 1, input.daysAgo, terminal, input.verified ? JSON.stringify({ status: 'passed', at: new Date().toISOString() }) : null],
    );
    const prefix = artifactPrefix(target.name, rows[0]!.created_at, id, input.attempt ?? 1);
    const dir = path.join(storeDir, prefix);
    await fs.mkdir(dir, { recursive: true });
    await fs.writeFile(path.join(dir, 'dump.pgcustom.zst'), `dump of ${id}`);
    const manifest = input.manifest ?? status === 'succeeded';
    if (manifest === 'invalid') await fs.writeFile(path.join(dir, 'manifest.json'), '{}');
    else if (manifest) {
      const written = manifestFor({ runId: id, attempt: input.attempt ?? 1, target: target.name, createdAt: rows[0]!.created_at });
      await fs.writeFile(path.join(dir, 'manifest.json'), JSON.stringify(written));
    }
    if (status === 'succeeded') {
      const artifact = {
        storeUrl: `file://${storeDir}`,
        prefix,
        manifest: { name: 'manifest.json', size: 2, sha256: 'a'.repeat(64) },
        files: [{ name: 'dump.pgcustom.zst', size: 10, sha256: 'b'.repeat(64) }],
      };
      await catalog.pool.query('update backstop.runs set artifact = $2 where id = $1', [id, JSON.stringify(artifact)]);
    }
    return { id, prefix };
  };

  /** Backdates every file under a prefix. */
  const age = async (prefix: string, hoursAgo: number) => {
    const when = new Date(Date.now() - hoursAgo * 3_600_000);
    for (const file of await fs.readdir(path.join(storeDir, prefix))) await fs.utimes(path.join(storeDir, prefix, file), when, when);
  };

  const exists = async (prefix: string) => (await filesUnder(path.join(storeDir, prefix))).length > 0;
  const runExists = async (id: string) => (await catalog.pool.query('select 1 from backstop.runs where id = $1', [id])).rows.length > 0;

  it('applies keep-last: objects of each pruned backup are deleted while its row is marked, then the row; never the newest or newest verified', async () => {
    const oldestVerified = await seed({ daysAgo: 6, verified: true });
    const doomed = [await seed({ daysAgo: 5 }), await seed({ daysAgo: 4 }), await seed({ daysAgo: 3 })];
    const kept = [await seed({ daysAgo: 2 }), await seed({ daysAgo: 1 })];
    const failed = await seed({ daysAgo: 0, status: 'failed', manifest: false });

    // Dry run first: the plan, nothing touched.
    const dry = await runCli(['prune', '--target', target.name, '--dry-run', '--json'], env);
    assert.equal(dry.code, 0, dry.stderr);
    const plan = JSON.parse(dry.stdout).targets[0];
    assert.deepEqual(
      plan.delete.map((entry: { id: string }) => entry.id),
      doomed.map((backup) => backup.id).reverse(),
    );
    assert.deepEqual(
      plan.keep.map((entry: { id: string; reasons: string[] }) => [entry.id, entry.reasons]),
      [
        [kept[1]!.id, ['newest', 'last']],
        [kept[0]!.id, ['last']],
        [oldestVerified.id, ['newest-verified']],
      ],
    );
    for (const backup of doomed) assert.ok((await exists(backup.prefix)) && (await runExists(backup.id)), 'dry run deleted something');

    // The real thing, through a store that checks the catalog at each deletion.
    const observed: string[] = [];
    const watchedStore = async (url: string): Promise<Store> => {
      const inner = localStore(new URL(url).pathname);
      return {
        ...inner,
        async delete(keys: string[]) {
          for (const key of keys) {
            const runId = doomed.find((backup) => key.startsWith(backup.prefix))?.id;
            if (!runId) continue;
            const { rows } = await catalog.pool.query<{ pruned_at: string | null }>('select pruned_at from backstop.runs where id = $1', [runId]);
            assert.equal(rows.length, 1, 'the row was deleted before the objects');
            assert.ok(rows[0]!.pruned_at, 'the objects were deleted before the row was marked pruned');
            observed.push(runId);
          }
          await inner.delete(keys);
        },
      };
    };
    const report = await pruneTargets({ db: catalog.pool, log, openStore: watchedStore }, { targetName: target.name, gracePeriodMs: DAY });
    const entry = report.targets[0]!;
    assert.equal(entry.error, null);
    assert.deepEqual(new Set(entry.deleted), new Set(doomed.map((backup) => backup.id)));
    assert.deepEqual(new Set(observed), new Set(doomed.map((backup) => backup.id)));
    for (const backup of doomed) {
      assert.equal(await exists(backup.prefix), false, `objects of ${backup.id} left`);
      assert.equal(await runExists(backup.id), false, `row of ${backup.id} left`);
    }
    for (const backup of [...kept, oldestVerified]) assert.ok((await exists(backup.prefix)) && (await runExists(backup.id)));
    assert.ok(await runExists(failed.id), 'retention touched a failed run');

    // Idempotent: a second pass deletes nothing.
    const again = await pruneTargets({ db: catalog.pool, log }, { targetName: target.name, gracePeriodMs: DAY });
    assert.deepEqual(again.targets[0]!.delete, []);
  });

  it('the catalog refuses to prune the newest or newest verified backup, whatever the plan said', async () => {
    const verified = await seed({ daysAgo: 3, verified: true });
    const older = await seed({ daysAgo: 2 });
    const newest = await seed({ daysAgo: 1 });
    assert.equal(await markRunPruned(catalog.pool, newest.id), false);
    assert.equal(await markRunPruned(catalog.pool, verified.id), false);
    // Nor one a drill is restoring right now.
    const drill = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: DAY, kind: 'verify', subjectRunId: older.id });
    assert.equal(await markRunPruned(catalog.pool, older.id), false);
    await requestCancel(catalog.pool, drill.id);
    assert.equal(await markRunPruned(catalog.pool, older.id), true);
  });

  it('an interrupted prune (row marked, objects still there) is finished by the next one', async () => {
    const interrupted = await seed({ daysAgo: 3 });
    await seed({ daysAgo: 2 });
    await seed({ daysAgo: 1 });
    await catalog.pool.query('update backstop.runs set pruned_at = now() where id = $1', [interrupted.id]);
    const report = await pruneTargets({ db: catalog.pool, log }, { targetName: target.name });
    assert.deepEqual(report.targets[0]!.resumed, [interrupted.id]);
    assert.deepEqual(report.targets[0]!.delete, []);
    assert.equal(await exists(interrupted.prefix), false);
    assert.equal(await runExists(interrupted.id), false);
  });

  it('collects leftovers older than the grace period (no manifest, a manifest not its own); keeps complete backups of a run that did not succeed or is gone, as unknown', async () => {
    await catalog.pool.query('update backstop.targets set retention = null where id = $1', [target.id]);
    const live = await seed({ daysAgo: 3 });
    const orphan = await seed({ daysAgo: 3, status: 'succeeded' });
    await catalog.pool.query('delete from backstop.runs where id = $1', [orphan.id]); // manifest, run gone
    const killedAfterManifest = await seed({ daysAgo: 3, status: 'timed_out', manifest: true });
    const crashed = await seed({ daysAgo: 3, status: 'failed', manifest: false });
    const garbled = await seed({ daysAgo: 3, status: 'failed', manifest: 'invalid' });
    const fresh = await seed({ daysAgo: 0, status: 'failed', manifest: false });
    const inProgress = await seed({ daysAgo: 3, status: 'running', manifest: false });
    const unknownRun = `${target.name}/2024/01/${randomUUID()}/attempt-1/`;
    await fs.mkdir(path.join(storeDir, unknownRun), { recursive: true });
    await fs.writeFile(path.join(storeDir, unknownRun, 'dump.pgcustom.zst'), 'partial');
    const stranger = `${target.name}/README.txt`;
    await fs.writeFile(path.join(storeDir, stranger), 'not ours');
    for (const prefix of [live, orphan, killedAfterManifest, crashed, garbled, inProgress].map((backup) => backup.prefix).concat(unknownRun)) await age(prefix, 3);
    await age(fresh.prefix, 0.01);
    const strangerTime = new Date(Date.now() - 30 * DAY);
    await fs.utimes(path.join(storeDir, stranger), strangerTime, strangerTime);

    const dry = await runCli(['prune', '--target', target.name, '--grace-period', '3600', '--dry-run'], env);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /no retention policy, every backup is kept/);
    assert.match(dry.stdout, new RegExp(`would delete leftover ${crashed.prefix.replace(/\//g, '\\/')}  \\(incomplete`));
    assert.match(dry.stdout, /1 leftover prefix\(es\) younger than the grace period/);
    assert.ok(await exists(crashed.prefix));

    const applied = await runCli(['prune', '--target', target.name, '--grace-period', '3600', '--json'], env);
    assert.equal(applied.code, 0, applied.stderr);
    const garbage = Object.fromEntries(JSON.parse(applied.stdout).targets[0].garbage.map((item: { prefix: string; reason: string }) => [item.prefix, item.reason]));
    const report = JSON.parse(applied.stdout).targets[0];
    assert.deepEqual(garbage, {
      [crashed.prefix]: 'incomplete',
      [garbled.prefix]: 'invalid-manifest',
      [unknownRun]: 'incomplete',
    });
    assert.deepEqual(Object.fromEntries(report.unknown.map((item: { prefix: string; reason: string }) => [item.prefix, item.reason])), {
      [orphan.prefix]: 'run-missing',
      [killedAfterManifest.prefix]: 'run-not-succeeded',
    });
    for (const prefix of Object.keys(garbage)) assert.equal(await exists(prefix), false, `${prefix} left`);
    for (const prefix of [live.prefix, fresh.prefix, inProgress.prefix, orphan.prefix, killedAfterManifest.prefix]) assert.ok(await exists(prefix), `${prefix} deleted`);
    await fs.access(path.join(storeDir, stranger));
  });

  it('`prune` for an unknown target exits 4; a bad grace period exits 2', async () => {
    assert.equal((await runCli(['prune', '--target', 'nope'], env)).code, 4);
    assert.equal((await runCli(['prune', '--grace-period', 'soon'], env)).code, 2);
  });
});
