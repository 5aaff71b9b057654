import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { discoverPgTools } from '../src/pgtools/findPgTools.ts';

describe('pg tool discovery', () => {
  it("finds this machine's per-version pg_dump, never Debian's wrapper in its place", async (t) => {
    const versionDirs = await fs.readdir('/usr/lib/postgresql').catch(() => []);
    if (versionDirs.length === 0) return t.skip('no Debian per-version PostgreSQL folders here');
    const found = await discoverPgTools('pg_dump');
    assert.ok(found.length > 0);
    for (const candidate of found) {
      assert.notEqual(path.basename(await fs.realpath(candidate.path)), 'pg_wrapper', candidate.path);
      assert.ok(candidate.major >= 9, `${candidate.path} reports ${candidate.version}`);
    }
    assert.ok(found.some((candidate) => candidate.path.startsWith('/usr/lib/postgresql/')));
  });

  it('asks every candidate its version, keeps the ones that answer, in search order (a slower answer first stays first)', async () => {
    const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-pgbin-'));
    try {
      const make = async (folder: string, script: string) => {
        await fs.mkdir(path.join(directory, folder));
        await fs.writeFile(path.join(directory, folder, 'pg_restore'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
        return path.join(directory, folder);
      };
      const slow = await make('a', 'sleep 0.3; echo "pg_restore (PostgreSQL) 16.4"');
      const broken = await make('b', 'echo "error while loading shared libraries" >&2; exit 127');
      const fast = await make('c', 'echo "pg_restore (PostgreSQL) 17.2"');
      const found = await discoverPgTools('pg_restore', { dirs: [slow, broken, fast], only: true });
      assert.deepEqual(
        found.map((candidate) => [candidate.path, candidate.version]),
        [
          [path.join(slow, 'pg_restore'), '16.4'],
          [path.join(fast, 'pg_restore'), '17.2'],
        ],
      );
    } finally {
      await fs.rm(directory, { recursive: true, force: true });
    }
  });
});
