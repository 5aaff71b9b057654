import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { artifactProfiles } from '../src/pipeline/artifactProfiles.ts';
import { dataFileJobs } from '../src/pipeline/dataFileJobs.ts';
import { readManifest } from '../src/pipeline/readManifest.ts';
import { openStore } from '../src/storage/openStore.ts';
import type { Store } from '../src/storage/store.ts';
import { addParallelSampleExtras, adminQuery, createSampleDatabase, createTestDatabase, parallelSampleExtras, schemaOf, tableFingerprints, type TestDatabase } from './support/pg.ts';

describe('dataFileJobs', () => {
  it('gives the extra jobs to the files with the most bytes per job, never to one without data offsets', () => {
    assert.deepEqual(
      dataFileJobs(
        [
          { uncompressedSize: 1000, seekable: true },
          { uncompressedSize: 100, seekable: true },
        ],
        4,
      ),
      [3, 1],
    );
    assert.deepEqual(
      dataFileJobs(
        [
          { uncompressedSize: 600, seekable: true },
          { uncompressedSize: 500, seekable: true },
        ],
        4,
      ),
      [2, 2],
    );
    assert.deepEqual(
      dataFileJobs(
        [
          { uncompressedSize: 1000, seekable: false },
          { uncompressedSize: 100, seekable: true },
        ],
        4,
      ),
      [1, 3],
    );
    assert.deepEqual(dataFileJobs([{ uncompressedSize: 1000, seekable: false }], 4), [1]);
    assert.deepEqual(
      dataFileJobs(
        [
          { uncompressedSize: 1000, seekable: true },
          { uncompressedSize: 100, seekable: true },
        ],
        2,
      ),
      [1, 1],
    );
  });
});

describe('restore of a parallel backup with more jobs than data files', () => {
  let source: TestDatabase;
  let root: string;
  let store: Store;
  const cleanups: Array<() => Promise<void>> = [];

  before(async () => {
    source = await createSampleDatabase(2000);
    // One table that holds most of the bytes: its data file dominates the restore.
    await adminQuery(
      `create table big (id int primary key, payload text);
       insert into big select i, repeat(md5(i::text), 8) from generate_series(1, 60000) i;
       analyze;`,
      [],
      source.url,
    );
    await addParallelSampleExtras(source.url);
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-parallel-jobs-'));
    store = await openStore(`file://${path.join(root, 'store')}`);
  });
  after(async () => {
    for (const cleanup of cleanups) await cleanup();
    await store.close();
    await source.drop();
    await fs.rm(root, { recursive: true, force: true });
  });

  it('--jobs 2 backup restored with --jobs 4: the dominant data file spooled and restored with 3 jobs, the restore equal to the source', async () => {
    const artifact = await artifactProfiles.default.backup({
      runId: randomUUID(),
      attempt: 1,
      targetName: 'parallel-jobs',
      createdAt: new Date().toISOString(),
      databaseUrl: source.url,
      store,
      jobs: 2,
      checksums: true,
      signal: new AbortController().signal,
    });
    const { manifest } = await readManifest(store, artifact.prefix);
    const dataFiles = manifest.parallel!.data.map((data) => manifest.files.find((file) => file.name === data.file)!);
    assert.equal(dataFiles.length, 2);
    // The backup recorded the offsets pg_dump could not write to its pipe.
    assert.ok(dataFiles.every((file) => file.dataBlocks !== undefined && file.dataBlocks.length > 0));
    const dominant = manifest.parallel!.data.find((data) => data.tables.some((table) => table.name === 'big'))!.file;
    const other = dataFiles.find((file) => file.name !== dominant)!.name;

    const target = await createTestDatabase('parallel_jobs');
    cleanups.push(target.drop);
    const tmpDir = path.join(root, 'tmp');
    await fs.mkdir(tmpDir);
    const events: string[] = [];
    const result = await artifactProfiles.default.restore({
      store,
      prefix: artifact.prefix,
      manifest,
      toUrl: target.url,
      jobs: 4,
      tmpDir,
      onEvent: (_kind, message) => events.push(message),
    });
    assert.ok(events.includes(`${dominant}: size and SHA-256 match the manifest; spooled to restore with 3 jobs`), events.join('\n'));
    assert.ok(events.includes(`${dominant} (3 jobs): data restored`), events.join('\n'));
    assert.ok(events.includes(`${other}: data restored`), events.join('\n'));
    assert.equal(result.tablesChecked, manifest.tables.length);
    assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(source.url));
    assert.equal(await schemaOf(target.url), await schemaOf(source.url));
    assert.deepEqual(await parallelSampleExtras(target.url), await parallelSampleExtras(source.url));
    // No spool left behind.
    assert.deepEqual(await fs.readdir(tmpDir), []);
  });
});
