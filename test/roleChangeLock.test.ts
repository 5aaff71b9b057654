import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { withDatabase } from '../src/core/databaseUrl.ts';
import type { Manifest } from '../src/core/manifest.ts';
import { readManifest } from '../src/pipeline/readManifest.ts';
import { restoreArtifact } from '../src/pipeline/restore.ts';
import { ROLE_CHANGE_LOCK_KEY } from '../src/pipeline/roleChangeLock.ts';
import { backupSupabase } from '../src/pipeline/supabaseSource/backupSupabase.ts';
import { localStore } from '../src/storage/localStore.ts';
import type { Store } from '../src/storage/store.ts';
import { adminQuery, adminUrl, type TestDatabase } from './support/pg.ts';
import { createSupabaseProject } from './support/supabase.ts';
import { waitFor } from './support/wait.ts';

/**
 * Roles are the server's: two restores into the same server at once alter the same rows of
 * pg_authid, and without the lock the second fails with "tuple concurrently updated" (a
 * Supabase restore keeps them changed until its one transaction commits). With it, the second
 * waits for the first, whatever database each restores into.
 */
describe('restores that change the same server roles at once', { timeout: 300_000 }, () => {
  let source: TestDatabase;
  let workDir: string;
  let store: Store;
  let prefix: string;
  let manifest: Manifest;
  const suffix = randomBytes(4).toString('hex');
  const roles = [`lock_reader_${suffix}`, `lock_login_${suffix}`];
  const drops: Array<() => Promise<void>> = [];

  before(async () => {
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-role-lock-'));
    store = localStore(path.join(workDir, 'store'));
    source = await createSupabaseProject('supabase_lock_src');
    // Roles of the app that the roles file creates and alters at every restore.
    await adminQuery(
      `create role ${roles[0]} nologin;
       create role ${roles[1]} login connection limit 3 in role ${roles[0]};
       alter role ${roles[1]} set statement_timeout = '5s';
       create table public.items (id int primary key, name text);
       insert into public.items select i, 'item ' || i from generate_series(1, 50) i;
       grant select on public.items to ${roles[0]};`,
      [],
      source.url,
    );
    const artifact = await backupSupabase({
      runId: randomUUID(),
      attempt: 1,
      targetName: 'supabase-role-lock',
      createdAt: new Date().toISOString(),
      databaseUrl: source.url,
      store,
      signal: new AbortController().signal,
    });
    prefix = artifact.prefix;
    manifest = (await readManifest(store, prefix)).manifest;
  });

  after(async () => {
    for (const drop of drops) await drop().catch(() => {});
    await source?.drop();
    for (const role of [...roles].reverse()) await adminQuery(`drop role if exists ${role}`).catch(() => {});
    await store?.close();
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  });

  const newProject = async () => {
    const project = await createSupabaseProject('supabase_lock_dst');
    drops.push(project.drop);
    return project;
  };
  const itemCount = async (url: string) => (await adminQuery<{ count: number }>(`select count(*)::int as count from public.items`, [], url))[0]!.count;

  it('two Supabase restores into two projects of one server, started together, both succeed, again and again', async () => {
    // Each pair overlaps for the whole of a restore: without the lock, one of them failed in
    // (nearly) every round; several rounds make a pass by timing luck implausible.
    for (let round = 1; round <= 4; round++) {
      const [first, second] = [await newProject(), await newProject()];
      const events: string[][] = [[], []];
      const results = await Promise.allSettled(
        [first, second].map((project, index) =>
          restoreArtifact({ store, prefix, manifest, toUrl: project.url, onEvent: (kind, message) => events[index]!.push(`${kind}: ${message}`) }),
        ),
      );
      for (const result of results) assert.equal(result.status, 'fulfilled', `round ${round}: ${result.status === 'rejected' ? (result.reason as Error).message : ''}`);
      assert.deepEqual([await itemCount(first.url), await itemCount(second.url)], [50, 50]);
    }
    const login = await adminQuery<{ rolconnlimit: number; rolconfig: string[] }>('select rolconnlimit, rolconfig from pg_roles where rolname = $1', [roles[1]]);
    assert.deepEqual(login, [{ rolconnlimit: 3, rolconfig: ['statement_timeout=5s'] }]);
  });

  it('a restore waits, and says so, while another holds the lock on the server, then restores', async () => {
    const target = await newProject();
    // The lock as another restore holds it: in the server's postgres database, not the target's.
    const holder = new pg.Client({ connectionString: withDatabase(adminUrl(), 'postgres') });
    holder.on('error', () => {});
    await holder.connect();
    try {
      await holder.query('select pg_advisory_lock($1)', [ROLE_CHANGE_LOCK_KEY]);
      const events: string[] = [];
      const restore = restoreArtifact({ store, prefix, manifest, toUrl: target.url, onEvent: (kind, message) => events.push(`${kind}: ${message}`) });
      restore.catch(() => {});
      await waitFor('the restore to wait for the lock', () => events.some((event) => event.startsWith('restore_waiting: ')));
      assert.match(events.find((event) => event.startsWith('restore_waiting: '))!, /another restore is changing this server's roles/);
      // Nothing of it ran: the roles, schema and data wait behind the lock.
      const tables = await adminQuery(`select 1 from pg_tables where schemaname = 'public' and tablename = 'items'`, [], target.url);
      assert.equal(tables.length, 0);
      await holder.query('select pg_advisory_unlock($1)', [ROLE_CHANGE_LOCK_KEY]);
      await restore;
      assert.equal(await itemCount(target.url), 50);
    } finally {
      await holder.end();
    }
  });
});
