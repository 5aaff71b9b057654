import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { compareLsn } from '../src/core/changeSegment.ts';
import { listStoredSegments, segmentDataKey } from '../src/continuous/segmentFiles.ts';
import { openStore } from '../src/storage/openStore.ts';
import { addContinuousTargetThroughApi, currentLsn, dropSourceWithSlots, waitForRestoreEnd, waitForWindowTo } from './support/continuous.ts';
import { adminQuery, adminUrl, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startTestServer, type TestServer } from './support/server.ts';

/**
 * POST /api/v1/targets/{name}/restore: a real continuous target (publication, slot, base
 * backup by the server's worker, segments by the server's streamer), restored to a point
 * through the API into a real database, and every refusal before anything runs.
 */

const TEST = { timeout: 300_000 };

describe('point-in-time restore through the API', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let destination: TestDatabase;
  let storeDir: string;
  let api: TestServer;
  const superuser = decodeURIComponent(new URL(adminUrl()).username);
  const destinationEntry = (url: string) => {
    const parsed = new URL(url);
    return `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`;
  };

  before(async () => {
    catalog = await createTestCatalog();
    source = await createTestDatabase('pitrapisrc');
    destination = await createTestDatabase('pitrapidst');
    await adminQuery(
      `create table items (id int primary key, name text not null);
       insert into items select g, 'item ' || g from generate_series(1, 10) g;
       create table notes (body text);
       insert into notes values ('seed');`,
      [],
      source.url,
    );
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-pitr-api-'));
    // The server runs the base backup (its worker) and the streamer.
    api = await startTestServer({ catalogUrl: catalog.url, worker: true, env: { BACKSTOP_STORE: `file://${storeDir}`, BACKSTOP_CONTINUOUS_STREAMS: '2' } });
  });

  after(async () => {
    await api?.close();
    if (source) await dropSourceWithSlots(source);
    await destination?.drop();
    await catalog?.close();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  let baseRunId = '';

  it('restores a change streamed after the base: 202, then restored with the point reached, in the history and the run events', TEST, async () => {
    baseRunId = await addContinuousTargetThroughApi(api, {
      name: 'pitr-api',
      databaseUrl: source.url,
      storeUrl: `file://${path.join(storeDir, 'store')}`,
      options: { restoreTo: [destinationEntry(destination.url)] },
      continuous: { segmentSeconds: 1 },
    });
    // Committed after the base: only the change stream has it.
    await adminQuery("insert into items values (101, 'after the base'); update items set name = 'changed' where id = 3; delete from items where id = 4", [], source.url);
    await waitForWindowTo(api, 'pitr-api', source.url, await currentLsn(source.url));
    const shown = await api.request('GET', '/api/v1/targets/pitr-api', { token: api.tokens.viewer });
    assert.equal(shown.json.continuity.state, 'streaming');
    assert.equal(typeof shown.json.continuity.rpoSeconds, 'number');
    assert.equal(shown.json.continuity.maxRpoSeconds, 300);
    assert.ok(Date.parse(shown.json.continuity.recoveryPoint) > 0);
    const listed = await api.request('GET', '/api/v1/targets', { token: api.tokens.viewer });
    const listedRpo = listed.json.items.find((item: { name: string }) => item.name === 'pitr-api').rpo;
    assert.equal(listedRpo.state, 'streaming');
    assert.equal(listedRpo.maxSeconds, 300);

    const started = await api.request('POST', '/api/v1/targets/pitr-api/restore', {
      token: api.tokens.operator,
      body: { at: 'latest', databaseUrl: destination.url, privilegedRole: superuser },
    });
    assert.equal(started.status, 202, started.text);
    assert.equal(started.json.status, 'started');
    assert.equal(started.json.runId, baseRunId);
    assert.equal(started.json.base.runId, baseRunId);
    assert.equal(started.json.at, 'latest');
    assert.ok(started.json.base.segments >= 1, 'the replay reads the segment holding the change');
    assert.doesNotMatch(started.text, /postgres:\/\//, 'the destination URL is never answered');

    const restore = await waitForRestoreEnd(api, 'pitr-api', started.json.restoreId);
    assert.equal(restore.status, 'restored', JSON.stringify(restore));
    assert.equal(restore.runId, baseRunId);
    assert.match(restore.message ?? '', /restored to latest into .*then \d+ transaction\(s\) replayed; reached LSN/);

    const rows = await adminQuery<{ id: number; name: string }>('select id, name from items where id in (3, 4, 101) order by id', [], destination.url);
    assert.deepEqual(rows, [
      { id: 3, name: 'changed' },
      { id: 101, name: 'after the base' },
    ]);

    const events = await api.request('GET', `/api/v1/runs/${baseRunId}/events`, { token: api.tokens.viewer });
    const ofRestore = events.json.items.filter((event: { data: { restoreId?: string } | null }) => event.data?.restoreId === started.json.restoreId);
    assert.deepEqual(
      ofRestore.map((event: { kind: string }) => event.kind),
      ['restore_started', 'restored'],
    );
    assert.equal(ofRestore[0].data.at, 'latest');
    const reached = ofRestore[1].data.pointInTime;
    assert.ok(reached.transactions >= 1, JSON.stringify(reached));
    assert.ok(compareLsn(reached.reachedLsn, reached.baseLsn) > 0);
    assert.ok(Date.parse(reached.reachedAt) > 0);
    assert.deepEqual(reached.notContinuouslyProtected, ['public.notes']);
  });

  it('refuses, before anything runs: a point before the window, a malformed point, a target that is not continuous, an unknown one', TEST, async () => {
    const body = { databaseUrl: destination.url, privilegedRole: superuser };
    const early = await api.request('POST', '/api/v1/targets/pitr-api/restore', { body: { ...body, at: '2001-01-01T00:00:00Z' } });
    assert.equal(early.status, 409, early.text);
    assert.equal(early.json.error.code, 'POINT_NOT_RESTORABLE');
    assert.match(early.json.error.message, new RegExp(`Restorable:\\nbase ${baseRunId} `), 'the windows are listed');

    const malformed = await api.request('POST', '/api/v1/targets/pitr-api/restore', { body: { ...body, at: 'yesterday' } });
    assert.equal(malformed.status, 400, malformed.text);
    assert.equal(malformed.json.error.code, 'INVALID_INPUT');
    assert.equal(malformed.json.error.field, 'at');

    const missing = await api.request('POST', '/api/v1/targets/pitr-api/restore', { body });
    assert.equal(missing.status, 400, missing.text);
    assert.equal(missing.json.error.field, 'at');

    const plain = await api.request('POST', '/api/v1/targets', { body: { name: 'plain', databaseUrl: source.url, storeUrl: `file://${path.join(storeDir, 'plain')}` } });
    assert.equal(plain.status, 201, plain.text);
    const notContinuous = await api.request('POST', '/api/v1/targets/plain/restore', { body: { ...body, at: 'latest' } });
    assert.equal(notContinuous.status, 409, notContinuous.text);
    assert.equal(notContinuous.json.error.code, 'POINT_NOT_RESTORABLE');
    assert.match(notContinuous.json.error.message, /no succeeded base backup of a continuous target.*--continuous/);

    const unknown = await api.request('POST', '/api/v1/targets/nobody/restore', { body: { ...body, at: 'latest' } });
    assert.equal(unknown.status, 404, unknown.text);
    assert.equal(unknown.json.error.code, 'TARGET_NOT_FOUND');

    const history = await api.request('GET', '/api/v1/targets/pitr-api/restores', { token: api.tokens.viewer });
    assert.equal(history.json.items.length, 1, 'no refused restore started');
    const audit = await api.request('GET', '/api/v1/audit?action=run.restore&limit=50');
    const refused = audit.json.items.filter((entry: { outcome: string; errorCode: string | null }) => entry.outcome === 'refused');
    assert.ok(
      refused.some((entry: { errorCode: string; details: { at?: string } }) => entry.errorCode === 'POINT_NOT_RESTORABLE' && entry.details.at === '2001-01-01T00:00:00Z'),
      JSON.stringify(refused),
    );
  });

  it('a viewer is refused 403; an operator only restores into a destination restoreTo lists', TEST, async () => {
    const viewer = await api.request('POST', '/api/v1/targets/pitr-api/restore', {
      token: api.tokens.viewer,
      body: { at: 'latest', databaseUrl: destination.url, privilegedRole: superuser },
    });
    assert.equal(viewer.status, 403, viewer.text);
    assert.equal(viewer.json.error.code, 'FORBIDDEN');

    const elsewhere = new URL(destination.url);
    elsewhere.pathname = '/somewhere_else';
    const operator = await api.request('POST', '/api/v1/targets/pitr-api/restore', {
      token: api.tokens.operator,
      body: { at: 'latest', databaseUrl: elsewhere.toString(), privilegedRole: superuser },
    });
    assert.equal(operator.status, 403, operator.text);
    assert.equal(operator.json.error.code, 'FORBIDDEN');
    assert.match(operator.json.error.message, /not in the restore destinations of target "pitr-api"/);

    // A privileged destination role is refused unless named, as for every API restore.
    const privileged = await api.request('POST', '/api/v1/targets/pitr-api/restore', { body: { at: 'latest', databaseUrl: destination.url } });
    assert.equal(privileged.status, 403, privileged.text);
    assert.equal(privileged.json.error.code, 'RESTORE_ROLE_PRIVILEGED');
    const history = await api.request('GET', '/api/v1/targets/pitr-api/restores', { token: api.tokens.viewer });
    assert.equal(history.json.items.length, 1, 'none of them started a restore');
  });

  it("the replay shows as the restore's progress: transactions replayed of the cut's, written as it starts; gone once restored", TEST, async () => {
    // Many source transactions, each its own commit: the replay has as many to count.
    await adminQuery(`do $$ begin for i in 1..2000 loop insert into items values (1000 + i, 'replayed ' || i); commit; end loop; end $$`, [], source.url);
    await waitForWindowTo(api, 'pitr-api', source.url, await currentLsn(source.url));
    // Every progress the restore writes to the catalog, kept by the catalog itself as it is written.
    await catalog.pool.query(
      `create table public.progress_written (at timestamptz not null default clock_timestamp(), run_id uuid, progress jsonb);
       create function public.keep_progress() returns trigger language plpgsql as $$
       begin insert into public.progress_written (run_id, progress) values (new.run_id, new.progress); return new; end $$;
       create trigger keep_progress after insert or update on backstop.restore_progress for each row execute function public.keep_progress();`,
    );
    const into = await createTestDatabase('pitrapiprog');
    try {
      const started = await api.request('POST', '/api/v1/targets/pitr-api/restore', { body: { at: 'latest', databaseUrl: into.url, privilegedRole: superuser } });
      assert.equal(started.status, 202, started.text);
      const restore = await waitForRestoreEnd(api, 'pitr-api', started.json.restoreId);
      assert.equal(restore.status, 'restored', JSON.stringify(restore));
      const events = await api.request('GET', `/api/v1/runs/${baseRunId}/events`, { token: api.tokens.viewer });
      const restored = events.json.items.find(
        (event: { kind: string; data: { restoreId?: string } | null }) => event.kind === 'restored' && event.data?.restoreId === started.json.restoreId,
      );
      const replayed: number = restored.data.pointInTime.transactions;
      assert.ok(replayed >= 2000, `every source transaction since the base is replayed: ${replayed}`);

      const { rows: written } = await catalog.pool.query<{ run_id: string; progress: Record<string, unknown> }>('select run_id, progress from public.progress_written order by at');
      const phases = written.map((row) => row.progress.phase);
      assert.ok(phases.includes('restoring'), JSON.stringify(phases));
      const replaying = written.filter((row) => row.progress.phase === 'replaying').map((row) => row.progress);
      assert.ok(replaying.length >= 1, `a replaying progress was written: ${JSON.stringify(phases)}`);
      assert.equal(phases.indexOf('replaying'), phases.lastIndexOf('checking') + 1, 'the replay follows the base restore');
      for (const progress of replaying) {
        assert.equal(progress.operation, 'restore');
        assert.equal(progress.transactionsTotal, replayed, 'the total is what the replay replays');
        assert.ok((progress.transactionsDone as number) <= replayed, JSON.stringify(progress));
        assert.ok((progress.percent as number) >= 0 && (progress.percent as number) <= 99, JSON.stringify(progress));
        assert.equal(progress.rateBytesPerSecond, null, 'no bytes move while replaying');
        assert.equal(progress.totalBytes, progress.bytesDone, 'the base restore is done');
      }
      assert.ok(written.every((row) => row.run_id === baseRunId));

      // The restore ended: its progress is gone, and the run shows its own again.
      assert.deepEqual(await adminQuery('select id from backstop.restore_progress where run_id = $1', [baseRunId], catalog.url), []);
      const run = await api.request('GET', `/api/v1/runs/${baseRunId}`, { token: api.tokens.viewer });
      assert.notEqual(run.json.progress?.operation, 'restore', JSON.stringify(run.json.progress));
      const rows = await adminQuery<{ count: string }>('select count(*) from items where id > 1000', [], into.url);
      assert.equal(Number(rows[0]!.count), 2000);
    } finally {
      await catalog.pool.query('drop trigger if exists keep_progress on backstop.restore_progress');
      await into.drop();
    }
  });

  it('a damaged segment fails the restore, recorded as restore_failed of the base run, with the destination untouched', TEST, async () => {
    const targetId = (await api.request('GET', '/api/v1/targets/pitr-api')).json.id;
    const store = await openStore(`file://${path.join(storeDir, 'store')}`);
    const stored = await listStoredSegments(store, 'pitr-api', targetId).finally(() => store.close());
    assert.ok(stored.length > 0);
    for (const segment of stored) {
      const damaged = path.join(storeDir, 'store', segmentDataKey(segment));
      const bytes = await fs.readFile(damaged);
      bytes.writeUInt8(bytes.readUInt8(bytes.length >> 1) ^ 0xff, bytes.length >> 1);
      await fs.writeFile(damaged, bytes);
    }
    const untouched = await createTestDatabase('pitrapibad');
    try {
      const started = await api.request('POST', '/api/v1/targets/pitr-api/restore', { body: { at: 'latest', databaseUrl: untouched.url, privilegedRole: superuser } });
      assert.equal(started.status, 202, started.text);
      const restore = await waitForRestoreEnd(api, 'pitr-api', started.json.restoreId, 60_000);
      assert.equal(restore.status, 'failed', JSON.stringify(restore));
      assert.equal(restore.error?.code, 'ARTIFACT_CORRUPT');
      assert.equal(restore.runId, baseRunId);
      const tables = await adminQuery("select 1 from pg_tables where schemaname = 'public'", [], untouched.url);
      assert.equal(tables.length, 0, 'the base was not restored: the segments are checked first');
    } finally {
      await untouched.drop();
    }
  });
});
