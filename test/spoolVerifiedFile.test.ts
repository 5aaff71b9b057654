import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Manifest } from '../src/core/manifest.ts';
import { generateIdentity, parseIdentities } from '../src/pipeline/age.ts';
import { backupDatabase } from '../src/pipeline/backup.ts';
import { findZstdCli } from '../src/pipeline/compression.ts';
import { CustomArchiveScanner } from '../src/pipeline/customArchiveScanner.ts';
import { readManifest } from '../src/pipeline/readManifest.ts';
import { spoolVerifiedFile } from '../src/pipeline/spoolVerifiedFile.ts';
import { openStore } from '../src/storage/openStore.ts';
import type { Store } from '../src/storage/store.ts';
import { BackstopError } from '../src/core/errors.ts';
import { createSampleDatabase, type TestDatabase } from './support/pg.ts';

/** Both ways a zstd artifact is spooled: the zstd tool (installed by setup.sh) and Node's built-in zstd. */
describe('spooling a stored file for pg_restore: the zstd tool and the built-in decompressor agree', () => {
  let source: TestDatabase;
  let root: string;
  let store: Store;
  const { identity, recipient } = generateIdentity();
  const artifacts: Record<'plain' | 'encrypted', { prefix: string; manifest: Manifest }> = {} as never;

  before(async () => {
    assert.ok(findZstdCli(), 'the zstd tool is installed (scripts/setup.sh)');
    source = await createSampleDatabase(3000);
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-spool-'));
    store = await openStore(`file://${path.join(root, 'store')}`);
    for (const kind of ['plain', 'encrypted'] as const) {
      const artifact = await backupDatabase({
        runId: randomUUID(),
        attempt: 1,
        targetName: kind,
        createdAt: new Date().toISOString(),
        databaseUrl: source.url,
        store,
        encryptTo: kind === 'encrypted' ? [recipient] : [],
        signal: new AbortController().signal,
      });
      artifacts[kind] = { prefix: artifact.prefix, manifest: (await readManifest(store, artifact.prefix)).manifest };
    }
  });
  after(async () => {
    await store.close();
    await source.drop();
    await fs.rm(root, { recursive: true, force: true });
  });

  const spool = async (kind: 'plain' | 'encrypted', zstdCli: boolean, options: { manifest?: Manifest; signal?: AbortSignal; identity?: string } = {}) => {
    const { prefix, manifest } = artifacts[kind];
    const spoolPath = path.join(root, `${kind}-${zstdCli ? 'cli' : 'builtin'}-${randomUUID()}.pgcustom`);
    const scanner = new CustomArchiveScanner();
    const file = (options.manifest ?? manifest).files[0]!;
    const bytes = await spoolVerifiedFile({
      store,
      prefix,
      file,
      manifest: options.manifest ?? manifest,
      spoolPath,
      signal: options.signal ?? new AbortController().signal,
      identities: parseIdentities(options.identity ?? identity),
      scanner,
      zstdCli,
    });
    return { bytes, spoolPath, scanner };
  };

  for (const kind of ['plain', 'encrypted'] as const) {
    it(`${kind}: both write the same archive, with its data offsets filled in`, async () => {
      const viaCli = await spool(kind, true);
      const builtIn = await spool(kind, false);
      const { manifest } = artifacts[kind];
      assert.equal(viaCli.bytes, manifest.files[0]!.uncompressedSize);
      assert.equal(builtIn.bytes, viaCli.bytes);
      assert.ok((await fs.readFile(viaCli.spoolPath)).equals(await fs.readFile(builtIn.spoolPath)), 'byte for byte the same spool');
      assert.deepEqual(viaCli.scanner.tableEntries(), builtIn.scanner.tableEntries());
      assert.ok(viaCli.scanner.offsets()!.slots.length >= 3, 'offsets found for every table');
      // pg_restore reads the offsets: its listing of a file with offsets set shows no "offset not set" warnings.
      const listing = execFileSync('pg_restore', ['--list', viaCli.spoolPath], { encoding: 'utf8' });
      assert.match(listing, /TABLE DATA public orders/);
    });
  }

  it('the data offsets come from the manifest; without them (an older backup) the spool is scanned, and wrong ones are not used', async () => {
    const { manifest } = artifacts.plain;
    const recorded = manifest.files[0]!.dataBlocks!;
    assert.ok(recorded.length >= 3, 'the backup recorded where each data block starts');
    const reference = await fs.readFile((await spool('plain', false)).spoolPath);
    const withFile = (file: Partial<Manifest['files'][number]>): Manifest => ({ ...manifest, files: [{ ...manifest.files[0]!, ...file }] });

    const { dataBlocks: _recorded, ...olderFile } = manifest.files[0]!;
    const older = await spool('plain', true, { manifest: { ...manifest, files: [olderFile] } });
    assert.ok((await fs.readFile(older.spoolPath)).equals(reference), 'scanned: the same offsets');

    // Offsets that point elsewhere are refused as a whole: the spool stays as pg_dump wrote it.
    const wrong = await spool('plain', true, { manifest: withFile({ dataBlocks: recorded.map(([id, offset]) => [id, offset + 1] as [number, number]) }) });
    const asDumped = execFileSync('zstd', ['-d', '-c', path.join(root, 'store', artifacts.plain.prefix, manifest.files[0]!.name)], { maxBuffer: 1 << 30 });
    assert.ok((await fs.readFile(wrong.spoolPath)).equals(asDumped));
    assert.ok(!asDumped.equals(reference), 'the offsets are what differs');
    assert.deepEqual(wrong.scanner.tableEntries(), older.scanner.tableEntries(), 'the TOC was read either way');
  });

  it('a flipped byte is a checksum mismatch for both, and leaves no zstd running', async () => {
    const { prefix, manifest } = artifacts.plain;
    const file = path.join(root, 'store', prefix, manifest.files[0]!.name);
    const original = await fs.readFile(file);
    const damaged = Buffer.from(original);
    damaged[Math.floor(damaged.length / 2)]! ^= 0x40;
    await fs.writeFile(file, damaged);
    try {
      for (const zstdCli of [true, false]) {
        await assert.rejects(spool('plain', zstdCli), (error: unknown) => {
          assert.ok(error instanceof BackstopError);
          assert.equal(error.code, 'ARTIFACT_CORRUPT');
          assert.match(error.message, /Checksum mismatch/);
          return true;
        });
      }
      // A manifest that agrees with the damaged bytes: the digest passes, decompression does not.
      const { createHash } = await import('node:crypto');
      const lying: Manifest = { ...manifest, files: [{ ...manifest.files[0]!, sha256: createHash('sha256').update(damaged).digest('hex') }] };
      for (const zstdCli of [true, false]) {
        await assert.rejects(spool('plain', zstdCli, { manifest: lying }), (error: unknown) => {
          assert.ok(error instanceof BackstopError);
          assert.equal(error.code, 'ARTIFACT_CORRUPT');
          assert.match(error.message, /matches its checksum but cannot be decompressed|decompressed to \d+ bytes/);
          return true;
        });
      }
    } finally {
      await fs.writeFile(file, original);
    }
    assert.equal(zstdProcesses(), 0);
  });

  it('a wrong identity is refused as such by both, not taken for a file that cannot be decompressed', async () => {
    const other = generateIdentity().identity;
    for (const zstdCli of [true, false]) {
      await assert.rejects(spool('encrypted', zstdCli, { identity: other }), (error: unknown) => {
        assert.ok(error instanceof BackstopError);
        assert.equal(error.code, 'INVALID_INPUT');
        assert.match(error.message, /None of the given identities/);
        return true;
      });
    }
    assert.equal(zstdProcesses(), 0);
  });

  it('a zstd tool that fails on good bytes is not the artifact’s fault: the built-in decompressor takes over', async () => {
    const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-bad-zstd-'));
    const savedPath = process.env.PATH;
    try {
      // Answers -V like zstd, and fails every decompression.
      await fs.writeFile(
        path.join(directory, 'zstd'),
        '#!/bin/sh\n[ "$1" = -V ] && { echo "zstd v1.5.4"; exit 0; }\ncat >/dev/null; echo "zstd: error 11 : Allocation error" >&2; exit 1\n',
        { mode: 0o755 },
      );
      process.env.PATH = `${directory}${path.delimiter}${savedPath}`;
      assert.equal(findZstdCli(), path.join(directory, 'zstd'));
      const spooled = await spool('plain', true);
      process.env.PATH = savedPath;
      assert.equal(spooled.bytes, artifacts.plain.manifest.files[0]!.uncompressedSize);
      assert.ok((await fs.readFile(spooled.spoolPath)).equals(await fs.readFile((await spool('plain', false)).spoolPath)));
    } finally {
      process.env.PATH = savedPath;
      await fs.rm(directory, { recursive: true, force: true });
    }
  });

  it('an abort stops the zstd tool and rejects with the reason', async () => {
    const controller = new AbortController();
    const reason = new Error('stopped by the test');
    const spooling = spool('plain', true, { signal: controller.signal });
    controller.abort(reason);
    await assert.rejects(spooling, (error: unknown) => error === reason);
    assert.equal(zstdProcesses(), 0);
  });
});

/** zstd children of this process still running. */
function zstdProcesses(): number {
  try {
    return execFileSync('pgrep', ['-P', String(process.pid), '-x', 'zstd'], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean).length;
  } catch {
    return 0;
  }
}
