import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backupDatabase, type BackupProgress } from '../src/pipeline/backup.ts';
import { openStore } from '../src/storage/openStore.ts';
import type { Store } from '../src/storage/store.ts';
import { createSampleDatabase, type TestDatabase } from './support/pg.ts';

/**
 * Live progress: the byte counts a run page and the API show must move while pg_dump streams,
 * not jump from 0 to the total when the phase changes.
 */
describe('backup progress while the dump streams', () => {
  let source: TestDatabase;
  let root: string;
  let store: Store;

  before(async () => {
    // Large enough for the dump to arrive in many 1 MiB pieces (about 12 MiB).
    source = await createSampleDatabase(80_000);
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-progress-'));
    store = await openStore(`file://${path.join(root, 'store')}`);
  });
  after(async () => {
    await store.close();
    await source.drop();
    await fs.rm(root, { recursive: true, force: true });
  });

  const backup = async (progressEveryMs?: number) => {
    const reports: BackupProgress[] = [];
    await backupDatabase({
      runId: randomUUID(),
      attempt: 1,
      targetName: 'progress',
      createdAt: new Date().toISOString(),
      databaseUrl: source.url,
      store,
      signal: new AbortController().signal,
      onProgress: (progress) => reports.push(progress),
      ...(progressEveryMs === undefined ? {} : { progressEveryMs }),
    });
    return reports;
  };

  it('reports growing byte counts during the dumping phase, before the totals', async () => {
    const reports = await backup(0);
    const final = reports.at(-1)!;
    assert.equal(final.phase, 'done');
    assert.ok(final.bytesDumped > 1_000_000, `dumped ${final.bytesDumped} bytes`);
    const during = reports.filter((report) => report.phase === 'dumping' && report.bytesDumped > 0 && report.bytesDumped < final.bytesDumped);
    assert.ok(during.length >= 3, `only ${during.length} reports while dumping`);
    for (let i = 1; i < during.length; i++) {
      assert.ok(during[i]!.bytesDumped >= during[i - 1]!.bytesDumped, 'bytes dumped never go back');
      assert.ok(during[i]!.bytesStored >= during[i - 1]!.bytesStored, 'bytes stored never go back');
    }
    assert.ok(
      new Set(during.map((report) => report.bytesDumped)).size >= 3,
      `the figure changes while the dump runs: ${JSON.stringify(during.map((r) => [r.bytesDumped, r.bytesStored]))} of ${final.bytesDumped}`,
    );
    assert.ok(
      during.some((report) => report.bytesStored > 0),
      'stored bytes move too',
    );
  });

  it('throttles reports by time: with a long interval, only the phase changes report', async () => {
    const reports = await backup(3_600_000);
    // The phase changes alone: dumping starts, the dump is stored, manifest, done.
    const dumping = reports.filter((report) => report.phase === 'dumping');
    assert.equal(dumping.length, 2, JSON.stringify(reports));
    assert.equal(dumping[0]!.bytesDumped, 0);
    assert.deepEqual(reports.map((report) => report.phase).slice(-2), ['manifest', 'done']);
  });
});
