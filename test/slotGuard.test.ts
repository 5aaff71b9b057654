import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { killAll, startCli, type CliProcess } from './support/cli.ts';
import { makeContinuousTarget, slotState } from './support/continuous.ts';
import { adminQuery, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startS3rver, type S3rverHandle } from './support/s3rver.ts';
import { waitFor } from './support/wait.ts';

const LIMIT = 2 * 1024 * 1024;

// The alarm's receiver listens on loopback, which the outbound guard refuses unless allowed.
process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS = '127.0.0.1';

/** A webhook receiver on loopback: every JSON body posted to it. */
async function startReceiver(): Promise<{ url: string; received: Array<Record<string, any>>; close(): Promise<void> }> {
  const received: Array<Record<string, any>> = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      try {
        received.push(JSON.parse(body));
      } catch {
        received.push({ unparsed: body });
      }
      response.writeHead(200).end('OK');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** About 1 KiB of WAL per row on the source, in a published table. */
async function writeWal(url: string, rows = 6000): Promise<void> {
  // md5s of random numbers: text that compresses little, so the WAL is as large as the rows.
  await adminQuery(
    "insert into filler (data) select (select string_agg(md5(random()::text || g || s), '') from generate_series(1, 32) s) from generate_series(1, $1::int) g",
    [rows],
    url,
  );
}

describe('the slot guard: the source comes first', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let s3: S3rverHandle;
  const processes: CliProcess[] = [];
  const closers: Array<() => Promise<void>> = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createTestDatabase('guard');
    await adminQuery('create table filler (id bigserial primary key, data text)', [], source.url);
    s3 = await startS3rver();
    // The store fails: every segment write is refused.
    await s3.halt();
  });
  after(async () => {
    for (const close of closers) await close().catch(() => {});
    await killAll(processes);
    await catalog.close();
    await source.drop();
    await s3.stop();
  });

  async function expectDropped(targetId: string, slot: string): Promise<void> {
    const stream = await waitFor(
      'the stream to be stopped by the guard',
      async () => {
        const { rows } = await catalog.pool.query<{ state: string; stopped_reason: string | null; stopped_at: string | null }>(
          'select state, stopped_reason, stopped_at from backstop.continuous_streams where target_id = $1',
          [targetId],
        );
        return rows[0]?.state === 'stopped' ? rows[0] : null;
      },
      60_000,
    );
    assert.match(
      stream.stopped_reason!,
      /^slot dropped: it held back [\d.]+ MiB of WAL on the source, over the limit of 2\.0 MiB; run `backstop target update guard-\w+ --continuous` to start again$/,
    );
    assert.ok(stream.stopped_at);
    assert.equal(await slotState(source.url, slot), null, 'the slot is gone from the source');
    const alarm = await waitFor('the slot_dropped alarm', async () => {
      const { rows } = await catalog.pool.query<{ details: { what: string } }>(
        "select details from backstop.alarms where target_id = $1 and kind = 'slot_dropped' and cleared_at is null",
        [targetId],
      );
      return rows[0];
    });
    assert.match(alarm.details.what, /stopped: slot dropped: it held back/);
    const runs = await catalog.pool.query<{ status: string }>("select status from backstop.runs where target_id = $1 and trigger = 'slot_guard'", [targetId]);
    assert.equal(runs.rows.length, 1, 'a new base backup was queued, once');
    // The source takes writes, and no longer keeps WAL for the dropped slot.
    await writeWal(source.url);
  }

  it('no streamer running and the store failing: the worker measures the slot, drops it past its limit, says why, alerts a webhook and queues a new base', {
    timeout: 120_000,
  }, async () => {
    const { target, slot } = await makeContinuousTarget(catalog.pool, {
      name: 'guard-idle',
      sourceUrl: source.url,
      storeUrl: s3.storeUrl('idle'),
      tables: ['filler'],
      settings: { slot_limit_bytes: LIMIT, slot_warn_bytes: 512 * 1024 },
    });
    const env = {
      ...s3.env,
      BACKSTOP_DATABASE_URL: catalog.url,
      BACKSTOP_LEASE_TTL: '2',
      BACKSTOP_REAPER_INTERVAL: '0.3',
      BACKSTOP_ALARM_INTERVAL: '0.2',
      BACKSTOP_CONTINUOUS_STREAMS: '0',
    };
    // An operator's webhook for alarms: the worker alone raises the alarm and delivers it.
    const hooks = await startReceiver();
    closers.push(() => hooks.close());
    await catalog.pool.query('update backstop.targets set notifications = $2::jsonb where id = $1', [
      target.id,
      JSON.stringify([{ id: 'ops', kind: 'webhook', url: `${hooks.url}/hooks`, on: ['alarm'] }]),
    ]);
    const worker = startCli(['worker', '--poll-interval', '0.2'], env);
    processes.push(worker);
    // Under the warning threshold first: measured, nothing dropped.
    await waitFor(
      'a first measure of the slot',
      async () => (await catalog.pool.query('select 1 from backstop.continuous_streams where target_id = $1 and last_pass_at is not null', [target.id])).rows[0],
    );
    assert.ok((await slotState(source.url, slot)) !== null);
    await writeWal(source.url);
    await expectDropped(target.id, slot);
    // The alert reaches the operator, saying which target and why.
    const sent = await waitFor(
      'the slot_dropped alert at the webhook',
      () => hooks.received.find((message) => message.event === 'alarm' && message.alarm?.kind === 'slot_dropped'),
      30_000,
    );
    assert.equal(sent.target.name, 'guard-idle');
    assert.match(sent.alarm.what, /slot dropped: it held back [\d.]+ MiB of WAL on the source, over the limit of 2\.0 MiB/);
    await waitFor('the warning to clear once the slot is gone', async () => {
      const { rows } = await catalog.pool.query("select 1 from backstop.alarms where target_id = $1 and kind = 'slot_wal_warning' and cleared_at is null", [target.id]);
      return rows.length === 0;
    });
    worker.child.kill('SIGTERM');
    await worker.exited;
  });

  it('a streamer whose store fails: its own guard drops the slot past the limit, and the streamer ends', { timeout: 120_000 }, async () => {
    const { target, slot } = await makeContinuousTarget(catalog.pool, {
      name: 'guard-streaming',
      sourceUrl: source.url,
      storeUrl: s3.storeUrl('streaming'),
      tables: ['filler'],
      settings: { slot_limit_bytes: LIMIT, slot_warn_bytes: 512 * 1024 },
    });
    const env = { ...s3.env, BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_LEASE_TTL: '2', BACKSTOP_REAPER_INTERVAL: '0.3', BACKSTOP_ALARM_INTERVAL: '0.2' };
    const alarms = startCli(['worker', '--poll-interval', '0.2'], { ...env, BACKSTOP_CONTINUOUS_STREAMS: '0' });
    processes.push(alarms);
    const streamer = startCli(['stream', 'guard-streaming', '--poll-interval', '0.2'], env);
    processes.push(streamer);
    await waitFor('the streamer to hold the slot', async () => (await slotState(source.url, slot))?.active, 30_000);
    await writeWal(source.url);
    await expectDropped(target.id, slot).catch((error) => {
      throw new Error(`${(error as Error).message}\n${streamer.stderr()}`);
    });
    const exit = await streamer.exited;
    assert.equal(exit.code, 0, streamer.stderr());
    alarms.child.kill('SIGTERM');
    await alarms.exited;
  });
});
