import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { BackstopError } from '../src/core/errors.ts';
import type { Manifest } from '../src/core/manifest.ts';
import { restoreArtifact } from '../src/pipeline/restore.ts';
import { readManifest } from '../src/pipeline/readManifest.ts';
import { backupSupabase } from '../src/pipeline/supabaseSource/backupSupabase.ts';
import { createSchemaRewriter, rewriteRolesLine } from '../src/pipeline/supabaseSource/supabaseSqlRules.ts';
import { isDumpedDataTable, planSupabaseDump, RESERVED_ROLES } from '../src/pipeline/supabaseSource/supabaseProfile.ts';
import { localStore } from '../src/storage/localStore.ts';
import type { Store } from '../src/storage/store.ts';
import { runCli } from './support/cli.ts';
import { listRunEvents } from '../src/db/runEvents.ts';
import { getRun } from '../src/db/runRecords.ts';
import { adminQuery, adminUrl, createTestCatalog, dumpSessions, holdTableLock, tableFingerprints, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { filesUnder } from './support/store.ts';
import { addSupabaseApp, appSecurity, createSupabaseProject, notesVisibleTo, type SupabaseApp } from './support/supabase.ts';
import { waitFor } from './support/wait.ts';

const run = promisify(execFile);

/** Tables whose rows a Supabase backup carries and a restore must reproduce exactly. */
const CARRIED_TABLES = ['auth.refresh_tokens', 'auth.users', 'public.note_events', 'public.notes', 'public.profiles', 'storage.buckets', 'storage.objects'];

async function carriedFingerprints(url: string): Promise<Record<string, unknown>> {
  const all = await tableFingerprints(url);
  return Object.fromEntries(CARRIED_TABLES.map((table) => [table, all[table]]));
}

async function plainFile(dir: string, name: string): Promise<string> {
  return zlib.zstdDecompressSync(await fs.readFile(path.join(dir, name))).toString('utf8');
}

describe('Supabase profile: pure rules', () => {
  it('comments out reserved roles, keeps custom roles restorable over an existing one', () => {
    assert.equal(rewriteRolesLine('CREATE ROLE "anon";'), '-- left out for Supabase: CREATE ROLE "anon";');
    assert.equal(rewriteRolesLine('CREATE ROLE "supabase_custom_thing";'), '-- left out for Supabase: CREATE ROLE "supabase_custom_thing";');
    assert.match(rewriteRolesLine('ALTER ROLE "authenticator" WITH NOSUPERUSER NOINHERIT LOGIN;'), /^-- left out/);
    assert.match(rewriteRolesLine('ALTER ROLE "service_role" SET "statement_timeout" TO \'8s\';'), /^-- left out/);
    assert.match(rewriteRolesLine('GRANT "app" TO "authenticator" GRANTED BY "postgres";'), /^-- left out/);
    assert.equal(rewriteRolesLine('GRANT "anon" TO "app_login" GRANTED BY "postgres";'), 'GRANT "anon" TO "app_login" GRANTED BY "postgres";');
    assert.equal(rewriteRolesLine('CREATE ROLE "my ""odd"" role";'), 'DO $backstop$ BEGIN CREATE ROLE "my ""odd"" role"; EXCEPTION WHEN duplicate_object THEN NULL; END $backstop$;');
    assert.equal(
      rewriteRolesLine('ALTER ROLE "app" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 3;'),
      'ALTER ROLE "app" WITH INHERIT NOCREATEROLE NOCREATEDB LOGIN CONNECTION LIMIT 3;',
    );
    for (const role of RESERVED_ROLES) assert.match(rewriteRolesLine(`CREATE ROLE "${role}";`), /^-- left out/);
  });

  it('comments out platform entries of a schema dump, up to the next entry, and nothing else', () => {
    const dump = [
      '\\restrict abc',
      '--',
      '-- Name: EXTENSION "uuid-ossp"; Type: COMMENT; Schema: -; Owner: ',
      '--',
      '',
      `COMMENT ON EXTENSION "uuid-ossp" IS 'generate UUIDs';`,
      '',
      '--',
      '-- Name: notes; Type: TABLE; Schema: public; Owner: postgres',
      '--',
      '',
      'CREATE TABLE public.notes (',
      '    id bigint NOT NULL',
      ');',
      '',
      '--',
      '-- Name: issue_pg_net_access; Type: EVENT TRIGGER; Schema: -; Owner: supabase_admin',
      '--',
      '',
      'CREATE EVENT TRIGGER issue_pg_net_access ON ddl_command_end',
      "         WHEN TAG IN ('CREATE EXTENSION')",
      '   EXECUTE FUNCTION extensions.grant_pg_net_access();',
      '',
      '--',
      '-- PostgreSQL database dump complete',
      '--',
      '',
      '\\unrestrict abc',
    ];
    const rewrite = createSchemaRewriter();
    const out = dump.map(rewrite);
    const changed = out.map((line, i) => (line === dump[i] ? null : i)).filter((i) => i !== null);
    assert.deepEqual(changed, [5, 19, 20, 21]);
    assert.ok(out.every((line) => !/^(COMMENT ON EXTENSION|CREATE EVENT TRIGGER)/.test(line)));
    assert.equal(out.at(-1), '\\unrestrict abc');
  });

  it('plans dumps that name only managed schemas and migration tables that exist', () => {
    const plan = planSupabaseDump(
      {
        schemas: ['auth', 'storage', 'public', 'extensions', 'app', 'timescaledb_information', 'pg_catalog', 'information_schema', 'cron'],
        migrationTables: [{ schema: 'auth', name: 'schema_migrations' }],
      },
      '00000003-0000001B-1',
    );
    assert.deepEqual(plan.schema, [
      '--format=plain',
      '--snapshot=00000003-0000001B-1',
      '--schema-only',
      '--exclude-schema="auth"',
      '--exclude-schema="cron"',
      '--exclude-schema="extensions"',
      '--exclude-schema="storage"',
      '--exclude-schema="timescaledb_information"',
    ]);
    assert.deepEqual(plan.data, [
      '--format=plain',
      '--snapshot=00000003-0000001B-1',
      '--data-only',
      '--exclude-schema="extensions"',
      '--exclude-schema="timescaledb_information"',
      '--exclude-table="auth"."schema_migrations"',
    ]);
    assert.equal(isDumpedDataTable({ schema: 'auth', name: 'users' }), true);
    assert.equal(isDumpedDataTable({ schema: 'auth', name: 'schema_migrations' }), false);
    assert.equal(isDumpedDataTable({ schema: 'storage', name: 'migrations' }), false);
    assert.equal(isDumpedDataTable({ schema: 'realtime', name: 'messages' }), false);
    assert.equal(isDumpedDataTable({ schema: 'public', name: 'notes' }), true);
  });
});

describe('Supabase profile against a Supabase-like database', () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let app: SupabaseApp;
  let workDir: string;
  let store: Store;
  let env: Record<string, string>;
  const drops: Array<() => Promise<void>> = [];

  before(async () => {
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-supabase-'));
    store = localStore(path.join(workDir, 'store'));
    catalog = await createTestCatalog();
    source = await createSupabaseProject('supabase_src');
    app = await addSupabaseApp(source.url);
    env = { BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${path.join(workDir, 'cli-store')}` };
  });
  after(async () => {
    for (const drop of drops) await drop().catch(() => {});
    await source?.drop();
    await catalog?.close();
    // Roles last: every database that names them is gone by now.
    await app?.dropRoles();
    await store?.close();
    await fs.rm(workDir, { recursive: true, force: true });
  });

  const newProject = async () => {
    const project = await createSupabaseProject('supabase_dst');
    drops.push(project.drop);
    return project;
  };

  const backUp = async (): Promise<{ manifest: Manifest; prefix: string; dir: string }> => {
    const artifact = await backupSupabase({
      runId: randomUUID(),
      attempt: 1,
      targetName: 'supabase',
      createdAt: new Date().toISOString(),
      databaseUrl: source.url,
      store,
      signal: new AbortController().signal,
    });
    const { manifest } = await readManifest(store, artifact.prefix);
    return { manifest, prefix: artifact.prefix, dir: path.join(workDir, 'store', artifact.prefix) };
  };

  it('writes roles, schema and data files the way `supabase db dump` splits them, and the manifest last', async () => {
    const { manifest, dir } = await backUp();
    assert.equal(manifest.profile, 'supabase');
    assert.deepEqual(
      manifest.files.map((file) => [file.role, file.name, file.format, file.dumpedBy?.tool]),
      [
        ['roles', 'roles.sql.zst', 'sql', 'pg_dumpall'],
        ['schema', 'schema.sql.zst', 'sql', 'pg_dump'],
        ['data', 'data.sql.zst', 'sql', 'pg_dump'],
      ],
    );
    assert.deepEqual((await fs.readdir(dir)).sort(), ['data.sql.zst', 'manifest.json', 'roles.sql.zst', 'schema.sql.zst']);
    // When the snapshot was exported, both pg_dump runs read it (and the row counts do too).
    const snapshotOption = manifest.pgDump.options.find((option) => option.startsWith('--snapshot='));
    assert.equal(snapshotOption !== undefined, manifest.pgDump.snapshot);
    for (const file of manifest.files.filter((candidate) => candidate.dumpedBy?.tool === 'pg_dump')) {
      assert.equal(
        file.dumpedBy!.options.some((option) => option.startsWith('--snapshot=')),
        manifest.pgDump.snapshot,
      );
    }

    // Row counts for exactly the tables whose rows are in the data file.
    const counted = Object.fromEntries(manifest.tables.map((table) => [`${table.schema}.${table.name}`, table.rows]));
    assert.deepEqual(Object.keys(counted).sort(), CARRIED_TABLES);
    assert.equal(counted['auth.users'], 20);
    assert.equal(counted['storage.objects'], 40);
    assert.equal(counted['public.notes'], 200);

    const roles = await plainFile(dir, 'roles.sql.zst');
    for (const reserved of ['anon', 'authenticated', 'service_role', 'authenticator', 'postgres', 'supabase_admin', 'supabase_auth_admin', 'dashboard_user']) {
      assert.doesNotMatch(roles, new RegExp(`^(CREATE|ALTER) ROLE "${reserved}"`, 'm'), `${reserved} is left out`);
      assert.match(roles, new RegExp(`^-- left out for Supabase: CREATE ROLE "${reserved}";$`, 'm'));
    }
    assert.match(roles, new RegExp(`CREATE ROLE "${app.appRole}";`));
    assert.match(roles, new RegExp(`^ALTER ROLE "${app.loginRole}" .*LOGIN.*CONNECTION LIMIT 5;$`, 'm'));
    assert.match(roles, new RegExp(`^-- left out for Supabase: GRANT "${app.appRole}" TO "authenticator"`, 'm'));
    assert.doesNotMatch(roles, /PASSWORD/);

    const schema = await plainFile(dir, 'schema.sql.zst');
    assert.doesNotMatch(schema, /CREATE SCHEMA (")?(auth|storage|extensions|realtime)\b/);
    assert.doesNotMatch(schema, /CREATE TABLE (auth|storage)\./);
    assert.match(schema, /CREATE SCHEMA app_private;/);
    assert.match(schema, /CREATE POLICY "owners and public notes" ON public\.notes/);
    assert.match(schema, /REFERENCES auth\.users\(id\)/);
    assert.doesNotMatch(schema, /^CREATE EVENT TRIGGER/m);
    assert.doesNotMatch(schema, /^CREATE PUBLICATION supabase_realtime/m);
    assert.match(schema, /^ALTER PUBLICATION supabase_realtime ADD TABLE ONLY public\.notes;$/m);
    assert.match(schema, /RESET ALL;\n$/);

    const data = await plainFile(dir, 'data.sql.zst');
    assert.ok(data.startsWith('SET session_replication_role = replica;\n'));
    assert.match(data, /^COPY auth\.users /m);
    assert.match(data, /^COPY storage\.objects /m);
    assert.match(data, /^COPY public\.notes /m);
    assert.doesNotMatch(data, /schema_migrations|storage\.migrations|20990101000000/);
  });

  it('dumps schema and data in the snapshot the row counts read', async () => {
    const { manifest } = await backUp();
    assert.equal(manifest.pgDump.snapshot, true);
  });

  it('restores into a new Supabase project: roles, rows, auth and storage data, policies, grants; not platform migrations', async () => {
    const { manifest, prefix } = await backUp();
    // A role the project lacks (as on another cluster): the roles file must create it.
    await adminQuery(`drop role ${app.loginRole}`);
    const target = await newProject();
    const events: string[] = [];
    const result = await restoreArtifact({ store, prefix, manifest, toUrl: target.url, onEvent: (kind, message) => events.push(`${kind}: ${message}`) });
    assert.equal(result.tablesChecked, CARRIED_TABLES.length);
    assert.deepEqual(
      events,
      ['roles.sql.zst', 'schema.sql.zst', 'data.sql.zst'].map((file) => `restore_verified: ${file}: size and SHA-256 match the manifest`),
    );

    assert.deepEqual(await carriedFingerprints(target.url), await carriedFingerprints(source.url));
    assert.deepEqual(await appSecurity(target.url), await appSecurity(source.url));
    for (const userId of app.userIds) assert.equal(await notesVisibleTo(target.url, userId), await notesVisibleTo(source.url, userId));
    assert.ok((await notesVisibleTo(target.url, app.userIds[0]!)) < 200, "RLS hides other users' private notes");

    // The data file did not carry the platform's migration history: the new project keeps its own.
    assert.deepEqual(
      (await adminQuery<{ version: string }>('select version from auth.schema_migrations order by 1', [], target.url)).map((row) => row.version),
      ['20171026211738', '20171026211808', '20171026211834'],
    );
    assert.deepEqual(
      (await adminQuery<{ id: number }>('select id from storage.migrations order by 1', [], target.url)).map((row) => row.id),
      [0, 1],
    );
    // Sequences follow the data.
    const [sequence] = await adminQuery<{ last: string }>(`select last_value as last from auth.refresh_tokens_id_seq`, [], target.url);
    assert.equal(Number(sequence!.last), 30);

    const [login] = await adminQuery<{ rolcanlogin: boolean; rolconnlimit: number; rolconfig: string[]; member: boolean }>(
      `select rolcanlogin, rolconnlimit, rolconfig, pg_has_role(oid, $1, 'member') as member from pg_roles where rolname = $2`,
      [app.appRole, app.loginRole],
    );
    assert.deepEqual(login, { rolcanlogin: true, rolconnlimit: 5, rolconfig: ['statement_timeout=5s'], member: true });
  });

  it('refuses a database that already holds the app, and options psql cannot honour, before writing anything', async () => {
    const { manifest, prefix } = await backUp();
    await assert.rejects(restoreArtifact({ store, prefix, manifest, toUrl: source.url }), { code: 'RESTORE_TARGET_NOT_EMPTY' });
    const target = await newProject();
    await assert.rejects(restoreArtifact({ store, prefix, manifest, toUrl: target.url, clean: true }), { code: 'INVALID_INPUT', message: /--clean/ });
    await assert.rejects(restoreArtifact({ store, prefix, manifest, toUrl: target.url, jobs: 4 }), { code: 'INVALID_INPUT', message: /--jobs/ });
    await adminQuery(`insert into storage.buckets (id, name) values ('existing', 'existing')`, [], target.url);
    await assert.rejects(restoreArtifact({ store, prefix, manifest, toUrl: target.url }), { code: 'RESTORE_TARGET_NOT_EMPTY', message: /storage\.buckets/ });
    assert.equal((await adminQuery('select 1 from pg_tables where schemaname = $1', ['public'], target.url)).length, 0);
  });

  it('checks every file before running any: a damaged data file leaves the project untouched', async () => {
    const { manifest, prefix, dir } = await backUp();
    const dataPath = path.join(dir, 'data.sql.zst');
    const bytes = await fs.readFile(dataPath);
    bytes[bytes.length - 10]! ^= 0xff;
    await fs.writeFile(dataPath, bytes);
    const target = await newProject();
    await assert.rejects(restoreArtifact({ store, prefix, manifest, toUrl: target.url }), { code: 'ARTIFACT_CORRUPT', message: /Checksum mismatch for .*data\.sql\.zst/ });
    assert.equal((await adminQuery('select 1 from pg_tables where schemaname = $1', ['public'], target.url)).length, 0);
    assert.equal((await adminQuery('select 1 from auth.users', [], target.url)).length, 0);
  });

  it('is restorable with standard tools alone: zstd -d, then psql roles, schema, data in one transaction', async () => {
    const { dir } = await backUp();
    const target = await newProject();
    const script = `set -e
      for f in roles schema data; do zstd -q -d "$1/$f.sql.zst" -o "$1/$f.sql"; done
      psql --no-psqlrc -q -v ON_ERROR_STOP=1 --single-transaction -f "$1/roles.sql" -f "$1/schema.sql" -f "$1/data.sql" -d "$2" > /dev/null`;
    await run('bash', ['-c', script, 'restore', dir, target.url]);
    assert.deepEqual(await carriedFingerprints(target.url), await carriedFingerprints(source.url));
    assert.deepEqual(await appSecurity(target.url), await appSecurity(source.url));
  });

  it('a cancel mid-dump stops the running tool and leaves nothing under the prefix', async () => {
    const runId = randomUUID();
    const controller = new AbortController();
    // pg_dump locks every table it dumps: it waits here after the roles file is stored.
    const lock = await holdTableLock(source.url, 'public.notes');
    try {
      const backup = backupSupabase({
        runId,
        attempt: 1,
        targetName: 'supabase',
        createdAt: new Date().toISOString(),
        databaseUrl: source.url,
        store,
        signal: controller.signal,
      });
      backup.catch(() => {});
      await waitFor('pg_dump to wait on the lock', async () => {
        const [row] = await adminQuery<{ count: string }>(`select count(*) as count from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'`, [
          `backstop:${runId}`,
        ]);
        return Number(row!.count) > 0;
      });
      controller.abort(new BackstopError('CANCELLED', 'Cancelled by the test.'));
      await assert.rejects(backup, { code: 'CANCELLED' });
    } finally {
      await lock.release();
    }
    await waitFor('the dump sessions to end', async () => (await dumpSessions(runId)) === 0);
    assert.deepEqual(
      (await filesUnder(path.join(workDir, 'store'))).filter((file) => file.includes(runId)),
      [],
    );
  });

  it('through the CLI: backup --profile supabase, restore RUN_ID --to a new project', async () => {
    const bad = await runCli(['backup', source.url, '--profile', 'firebase'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--profile: "firebase" is not a profile: use default or supabase/);

    const backup = await runCli(['backup', source.url, '--profile', 'supabase', '--json'], env);
    assert.equal(backup.code, 0, backup.stderr);
    const result = JSON.parse(backup.stdout);
    assert.equal(result.status, 'succeeded');
    assert.deepEqual(
      result.artifact.files.map((file: { name: string }) => file.name),
      ['roles.sql.zst', 'schema.sql.zst', 'data.sql.zst'],
    );

    const shown = JSON.parse((await runCli(['runs', 'show', result.id, '--json'], env)).stdout);
    assert.deepEqual(
      shown.events.map((event: { kind: string }) => event.kind),
      ['created', 'claimed', 'dump_started', 'dump_stored', 'dump_stored', 'dump_stored', 'finished'],
    );

    // Same database, other profile: refused rather than silently dumped the other way.
    const mixed = await runCli(['backup', source.url, '--profile', 'default'], env);
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /--profile: the target ".*" has the supabase profile, not the default profile\. Change the target with `backstop target update \S+ --profile default`/);

    const target = await newProject();
    const restore = await runCli(['restore', result.id, '--to', target.url, '--json'], env);
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(JSON.parse(restore.stdout).tablesChecked, CARRIED_TABLES.length);
    assert.deepEqual(await carriedFingerprints(target.url), await carriedFingerprints(source.url));
    assert.deepEqual(await appSecurity(target.url), await appSecurity(source.url));

    // A drill: a scratch database made like a new project of the source, the three files
    // restored into it, every carried table's rows compared, the scratch dropped.
    const drill = await runCli(['verify', result.id, '--json'], { ...env, BACKSTOP_SCRATCH_URL: adminUrl(), BACKSTOP_SCRATCH_SUPERUSER_OK: 'postgres' });
    assert.equal(drill.code, 0, `${drill.stdout}\n${drill.stderr}`);
    const verification = JSON.parse(drill.stdout);
    assert.equal(verification.status, 'succeeded', JSON.stringify(verification.error));
    const subject = await getRun(catalog.pool, result.id);
    assert.equal(subject.verification?.status, 'passed');
    assert.equal(subject.verification?.tables, CARRIED_TABLES.length);
    const drillEvents = await listRunEvents(catalog.pool, verification.id);
    assert.deepEqual(
      drillEvents.map((event) => event.kind),
      ['created', 'claimed', 'verify_started', 'verify_digests_ok', 'verify_scaffolded', 'verify_passed', 'finished'],
    );
    assert.deepEqual(
      (drillEvents.find((event) => event.kind === 'verify_scaffolded')!.data as { schemas: string[] }).schemas.filter((schema) => ['auth', 'storage'].includes(schema)),
      ['auth', 'storage'],
    );
    assert.deepEqual(await adminQuery(`select datname from pg_database where datname like 'backstop_verify_%'`), [], 'the scratch database is dropped');

    const added = await runCli(['target', 'add', 'supabase-app', '--database-url', source.url, '--profile', 'supabase', '--json'], env);
    assert.equal(added.code, 0, added.stderr);
    assert.equal(JSON.parse(added.stdout).options.profile, 'supabase');
  });
});
