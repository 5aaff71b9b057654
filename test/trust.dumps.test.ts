/**
 * Dumps are hostile input. A source database's owner chooses what its dump holds, and anyone
 * who can write to the store chooses what its files hold: a drill or a restore must never run
 * that content with more privilege than its own objects had.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import pino from 'pino';
import { loadConfig } from '../src/core/config.ts';
import { MANIFEST_NAME } from '../src/core/manifest.ts';
import { ensureEmbeddedPostgres, scratchClusterHome, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { claimRunById } from '../src/db/runLeases.ts';
import { createRun, getRun } from '../src/db/runRecords.ts';
import { PlainDumpCheck } from '../src/pipeline/supabaseSource/plainDumpCheck.ts';
import { performDrill } from '../src/runner/performDrill.ts';
import { runCli } from './support/cli.ts';
import { adminQuery, adminUrl, createSampleDatabase, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { addSupabaseApp, createSupabaseProject } from './support/supabase.ts';

const run = promisify(execFile);

describe('dumps are hostile input', () => {
  let catalog: TestCatalog;
  let home: string;
  let storeDir: string;
  let markerDir: string;
  let env: Record<string, string>;
  const drops: Array<() => Promise<void>> = [];

  before(async () => {
    catalog = await createTestCatalog();
    home = await temporaryHome('backstop-trust-dumps-');
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-trust-store-'));
    // Writable by whoever the attack would run as: the database server's user or Backstop's.
    markerDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-trust-marker-'));
    await fs.chmod(markerDir, 0o777);
    // No BACKSTOP_SCRATCH_URL: drills use Backstop's own scratch cluster under the home.
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_HOME: home, BACKSTOP_STORE: `file://${storeDir}` };
  });
  after(async () => {
    await stopEmbeddedPostgres(scratchClusterHome(home), { mode: 'immediate' }).catch(() => {});
    for (const drop of drops.reverse()) await drop().catch(() => {});
    await catalog.close();
    for (const dir of [home, storeDir, markerDir]) await fs.rm(dir, { recursive: true, force: true });
  });

  const exists = (file: string) =>
    fs.access(file).then(
      () => true,
      () => false,
    );
  const database = async (make: () => Promise<TestDatabase>) => {
    const made = await make();
    drops.push(made.drop);
    return made;
  };
  const backup = async (url: string, target: string, extra: string[] = []) => {
    const result = await runCli(['backup', url, '--target', target, ...extra, '--json'], env);
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as { id: string; artifact: { prefix: string } };
  };
  const catalogScratch = async () => (await adminQuery<{ datname: string }>(`select datname from pg_database where datname like 'backstop_verify_%'`)).map((row) => row.datname);

  it('code in a dump that needs a superuser does not run in a drill, and the catalog cluster is never restored into', async () => {
    const marker = path.join(markerDir, 'check-constraint-ran');
    const source = await database(() => createTestDatabase('hostile'));
    // A table owner's function in a CHECK constraint: it runs for every row the restore loads,
    // as the role restoring. It does nothing in its own database, so the backup is clean.
    await adminQuery(
      `create function public.innocent(v int) returns boolean language plpgsql as $fn$
       begin
         if current_database() <> '${source.name}' then
           execute $cmd$copy (select 1) to program 'touch ${marker}'$cmd$;
         end if;
         return v > 0;
       end $fn$;
       create table public.orders (id int primary key, amount int check (public.innocent(amount)));
       insert into public.orders select g, g from generate_series(1, 50) g;`,
      [],
      source.url,
    );
    const subject = await backup(source.url, 'hostile');
    const seen = new Set<string>();
    let watching = true;
    const watch = (async () => {
      while (watching) {
        for (const name of await catalogScratch()) seen.add(name);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();
    const drill = await runCli(['verify', subject.id, '--json'], env);
    watching = false;
    await watch;

    assert.equal(await exists(marker), false, 'the dump ran COPY TO PROGRAM during the drill');
    const verification = JSON.parse(drill.stdout);
    assert.equal(verification.status, 'failed', 'a drill that cannot restore the dump does not pass');
    assert.equal(verification.error.code, 'RESTORE_FAILED');
    assert.match(verification.error.message, /pg_execute_server_program|superuser/, 'the reason is the privilege the dump wanted');
    assert.equal((await getRun(catalog.pool, subject.id)).verification?.status, 'failed');
    assert.deepEqual([...seen], [], 'no scratch database ever appeared in the catalog cluster');
    assert.ok(await exists(path.join(scratchClusterHome(home), 'postgres', 'data', 'PG_VERSION')), "the drill used Backstop's own scratch cluster");

    // Control: the attack is real. Run as a superuser, the same function leaves the marker.
    await adminQuery(`copy (select 1) to program 'touch ${marker}'`, [], source.url);
    assert.equal(await exists(marker), true, 'the marker folder is writable by the database server');
  });

  it('a drill restores and reads as a role that owns only its scratch database, on a cluster apart from the catalog', async () => {
    const source = await database(() => createSampleDatabase(300));
    const subject = await backup(source.url, 'benign');
    const config = loadConfig(env, process.cwd());
    const verification = await createRun(catalog.pool, {
      targetId: (await getRun(catalog.pool, subject.id)).targetId,
      trigger: 'test',
      runDeadlineMs: 600_000,
      kind: 'verify',
      subjectRunId: subject.id,
    });
    const claimed = await claimRunById(catalog.pool, verification.id, { leaseTtlMs: 60_000, claimedBy: 'test' });
    let seenAs: Record<string, unknown> | undefined;
    const result = await performDrill({ db: catalog.pool, config, log: pino({ level: 'silent' }) }, claimed, {
      signal: new AbortController().signal,
      onEvent: () => {},
      afterRestore: async (scratchUrl) => {
        [seenAs] = await adminQuery(
          `select current_user as role, r.rolsuper, r.rolcreaterole, r.rolcreatedb, inet_server_port() as port,
             (select pg_get_userbyid(datdba) from pg_database where datname = current_database()) as owner,
             (select count(*)::int from pg_auth_members m where m.member = r.oid) as memberships,
             (select count(*)::int from pg_database where datdba = r.oid) as databases
           from pg_roles r where r.rolname = current_user`,
          [],
          scratchUrl,
        );
      },
    });
    assert.equal(result.outcome, 'succeeded', JSON.stringify(result.error));
    assert.ok(seenAs);
    assert.equal(seenAs.rolsuper, false);
    assert.equal(seenAs.rolcreaterole, false);
    assert.equal(seenAs.rolcreatedb, false);
    assert.equal(seenAs.memberships, 0);
    assert.equal(seenAs.owner, seenAs.role, 'the drill role owns its scratch database');
    assert.equal(seenAs.databases, 1, 'and no other');
    assert.notEqual(seenAs.port, Number(new URL(adminUrl()).port), 'the scratch server is not the catalog server');
    const scratchServer = await ensureEmbeddedPostgres(scratchClusterHome(home));
    assert.equal(scratchServer.port, seenAs.port, "the drill ran on Backstop's own scratch cluster");
    const [left] = await adminQuery<{ count: number }>(`select count(*)::int as count from pg_roles where rolname = $1`, [seenAs.role], scratchServer.url());
    assert.equal(left!.count, 0, 'the drill role is dropped with its database');
  });

  describe('forged Supabase files', () => {
    let source: TestDatabase;
    let subjectId: string;
    let filesDir: string;

    before(async () => {
      source = await database(() => createSupabaseProject('trust_supabase'));
      await addSupabaseApp(source.url, 5);
      const subject = await backup(source.url, 'forged-supabase', ['--profile', 'supabase']);
      subjectId = subject.id;
      filesDir = path.join(storeDir, subject.artifact.prefix);
    });

    /** Rewrites one file as an attacker with write access to the store would: compressed, checksummed, in the manifest and the catalog. */
    const forge = async (role: 'roles' | 'schema', edit: (sql: string) => string) => {
      const stored = path.join(filesDir, `${role}.sql.zst`);
      const original = await fs.readFile(stored);
      const { stdout: plain } = await run('zstd', ['-q', '-d', '-c', stored], { encoding: 'buffer', maxBuffer: 1 << 28 });
      const forged = edit(plain.toString('latin1'));
      const forgedPlain = path.join(filesDir, `${role}.forged.sql`);
      await fs.writeFile(forgedPlain, forged, 'latin1');
      await run('zstd', ['-q', '-f', forgedPlain, '-o', stored]);
      const bytes = await fs.readFile(stored);
      const manifestPath = path.join(filesDir, MANIFEST_NAME);
      const originalManifest = await fs.readFile(manifestPath);
      const manifest = JSON.parse(originalManifest.toString('utf8'));
      const file = manifest.files.find((candidate: { role: string }) => candidate.role === role);
      Object.assign(file, { size: bytes.length, sha256: sha256(bytes), uncompressedSize: Buffer.byteLength(forged, 'latin1') });
      const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 2));
      await fs.writeFile(manifestPath, manifestBytes);
      const originalArtifact = (await getRun(catalog.pool, subjectId)).artifact;
      await catalog.pool.query(`update backstop.runs set artifact = jsonb_set(artifact, '{manifest,sha256}', to_jsonb($2::text)) where id = $1`, [subjectId, sha256(manifestBytes)]);
      return {
        forgedPlain,
        restore: async () => {
          await fs.writeFile(stored, original);
          await fs.writeFile(manifestPath, originalManifest);
          await catalog.pool.query(`update backstop.runs set artifact = $2 where id = $1`, [subjectId, JSON.stringify(originalArtifact)]);
          await fs.rm(forgedPlain, { force: true });
        },
      };
    };

    const attacks: Array<{ name: string; role: 'roles' | 'schema'; edit: (sql: string, marker: string) => string; reason: RegExp }> = [
      {
        name: 'a shell command before \\restrict in roles.sql',
        role: 'roles',
        edit: (sql, marker) => `\\! touch ${marker}\n${sql}`,
        reason: /roles\.sql\.zst is refused before psql runs: line 1, before its `\\restrict` line, holds a psql meta-command/,
      },
      {
        name: 'a shell command after \\unrestrict in schema.sql',
        role: 'schema',
        edit: (sql, marker) => `${sql}\n\\! touch ${marker}\n`,
        reason: /schema\.sql\.zst is refused before psql runs: line \d+, after its `\\unrestrict` line, holds a psql meta-command/,
      },
      {
        name: 'an \\unrestrict hidden mid-line inside the block of schema.sql',
        role: 'schema',
        edit: (sql, marker) => {
          const key = /^\\restrict (\w+)$/m.exec(sql)![1];
          return sql.replace(/^(\\restrict \w+\n)/m, `$1SELECT 1; \\unrestrict ${key}\n\\! touch ${marker}\n\\restrict ${key}\n`);
        },
        reason: /schema\.sql\.zst is refused before psql runs: line \d+ holds a `\\unrestrict` that is not the end of its `\\restrict` block/,
      },
    ];

    it("an honest Supabase backup passes its drill on Backstop's own scratch cluster, as the drill's role", async () => {
      const drill = await runCli(['verify', subjectId, '--json'], env);
      const verification = JSON.parse(drill.stdout);
      assert.equal(verification.status, 'succeeded', JSON.stringify(verification.error));
      assert.equal((await getRun(catalog.pool, subjectId)).verification?.status, 'passed');
    });

    for (const attack of attacks) {
      it(`refuses ${attack.name} in an operator's restore and in a drill; the command never runs`, async () => {
        const marker = path.join(markerDir, `meta-${attacks.indexOf(attack)}`);
        const forged = await forge(attack.role, (sql) => attack.edit(sql, marker));
        try {
          // Control: the forged file is a real attack — psql alone runs the command.
          const throwaway = await database(() => createTestDatabase('trust_control'));
          await run('psql', ['-X', '-q', '-d', throwaway.url, '-f', forged.forgedPlain]).catch(() => {});
          assert.equal(await exists(marker), true, 'psql on the forged file runs the shell command');
          await fs.rm(marker);

          const project = await database(() => createSupabaseProject('trust_restore'));
          const restored = await runCli(['restore', subjectId, '--to', project.url], env);
          assert.notEqual(restored.code, 0, 'the restore is refused');
          assert.match(restored.stderr, attack.reason);
          assert.match(restored.stderr, /Do not restore it; restore another backup/);
          assert.equal(await exists(marker), false, 'the restore ran the meta-command');
          const [app] = await adminQuery<{ count: number }>(`select count(*)::int as count from pg_tables where schemaname = 'public'`, [], project.url);
          assert.equal(app!.count, 0, 'nothing was restored into the project');

          const drill = await runCli(['verify', subjectId, '--json'], env);
          const verification = JSON.parse(drill.stdout);
          assert.equal(verification.status, 'failed');
          assert.equal(verification.error.code, 'ARTIFACT_UNSAFE');
          assert.match(verification.error.message, attack.reason);
          assert.equal(await exists(marker), false, 'the drill ran the meta-command');
        } finally {
          await forged.restore();
        }
      });
    }
  });

  describe('an external scratch URL', () => {
    const roles: string[] = [];
    let subjectId: string;
    before(async () => {
      const source = await database(() => createSampleDatabase(100));
      subjectId = (await backup(source.url, 'external-scratch')).id;
    });
    after(async () => {
      for (const role of roles) await adminQuery(`drop role if exists ${role}`).catch(() => {});
    });
    const roleUrl = async (name: string, attributes: string) => {
      const role = `${name}_${Math.random().toString(36).slice(2, 8)}`;
      await adminQuery(`create role ${role} login password 'scratch-pw' ${attributes}`);
      roles.push(role);
      const url = new URL(adminUrl());
      url.username = role;
      url.password = 'scratch-pw';
      return { role, url: url.toString() };
    };
    const verify = async (extra: Record<string, string>) => {
      const drill = await runCli(['verify', subjectId, '--json'], { ...env, ...extra });
      return { drill, run: drill.stdout ? JSON.parse(drill.stdout) : null };
    };

    it('of a superuser is refused with what to do, unless its name is given to accept it', async () => {
      const refused = await verify({ BACKSTOP_SCRATCH_URL: adminUrl() });
      const text = `${refused.drill.stdout}${refused.drill.stderr}`;
      assert.equal(refused.run?.status, 'failed', text);
      assert.equal(refused.run?.error.code, 'CONFIG_INVALID');
      assert.match(text, /The scratch URL connects as \\?"postgres\\?", which is a superuser/);
      assert.match(text, /a role that has CREATEDB and owns only scratch databases/);
      assert.match(text, /BACKSTOP_SCRATCH_SUPERUSER_OK=postgres/);

      const otherName = await verify({ BACKSTOP_SCRATCH_URL: adminUrl(), BACKSTOP_SCRATCH_SUPERUSER_OK: 'someone_else' });
      assert.notEqual(otherName.run?.status, 'succeeded', 'the opt-in names the role');

      const accepted = await verify({ BACKSTOP_SCRATCH_URL: adminUrl(), BACKSTOP_SCRATCH_SUPERUSER_OK: 'postgres' });
      assert.equal(accepted.run?.status, 'succeeded', accepted.drill.stderr);
      assert.deepEqual(await catalogScratch(), []);
    });

    it('of a CREATEROLE role is refused; of a role with CREATEDB alone is used as it is', async () => {
      const createrole = await roleUrl('scratch_createrole', 'createdb createrole');
      const refused = await verify({ BACKSTOP_SCRATCH_URL: createrole.url });
      assert.notEqual(refused.run?.status, 'succeeded');
      assert.match(`${refused.drill.stdout}${refused.drill.stderr}`, /has CREATEROLE/);

      const plain = await roleUrl('scratch_plain', 'createdb');
      const accepted = await verify({ BACKSTOP_SCRATCH_URL: plain.url });
      assert.equal(accepted.run?.status, 'succeeded', accepted.drill.stderr);
      const [owned] = await adminQuery<{ count: number }>(`select count(*)::int as count from pg_database where datdba = (select oid from pg_roles where rolname = $1)`, [plain.role]);
      assert.equal(owned!.count, 0, 'its scratch database is dropped');
    });
  });

  it('the shape check streams: split anywhere, the verdict is the same', () => {
    const key = 'a'.repeat(64);
    const good = `--\n-- PostgreSQL database dump\n--\n\n\\restrict ${key}\n\nCOPY t (a) FROM stdin;\n\\\\! not a command\n\\.\n\n\\unrestrict ${key}\n\nRESET ALL;\n`;
    const bad = good.replace('RESET ALL;', '\\! touch x');
    for (const [text, ok] of [
      [good, true],
      [bad, false],
      [`SET session_replication_role = replica;\n\n${good}`, true],
      [good.replace(`\\restrict ${key}`, `select $x$\n\\restrict ${key}`), false],
      [good.replace(`\\unrestrict ${key}\n`, ''), false],
      ['-- no restrict at all\nselect 1;\n', false],
    ] as const) {
      for (const size of [1, 3, 7, 4096]) {
        const check = new PlainDumpCheck('file.sql');
        const bytes = Buffer.from(text, 'latin1');
        const verdict = () => {
          for (let at = 0; at < bytes.length; at += size) check.push(bytes.subarray(at, at + size));
          check.finish();
        };
        if (ok) assert.doesNotThrow(verdict, `chunks of ${size}`);
        else assert.throws(verdict, { code: 'ARTIFACT_UNSAFE' }, `chunks of ${size}: ${text.slice(0, 40)}`);
      }
    }
  });
});

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
