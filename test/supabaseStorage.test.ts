import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { CreateBucketCommand, GetObjectCommand, ListBucketsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { isBackstopError } from '../src/core/errors.ts';
import { generateIdentity, parseIdentities } from '../src/pipeline/age.ts';
import { readManifest } from '../src/pipeline/readManifest.ts';
import { backupSupabase } from '../src/pipeline/supabaseSource/backupSupabase.ts';
import { openStorageEndpoint, storageEndpointFromEnv } from '../src/pipeline/supabaseSource/storageEndpoint.ts';
import { restoreStorageObjects, storageFileName } from '../src/pipeline/supabaseSource/storageObjects.ts';
import { digestOf } from '../src/pipeline/spoolVerifiedFile.ts';
import { localStore } from '../src/storage/localStore.ts';
import { runCli } from './support/cli.ts';
import { adminQuery, createTestCatalog, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startS3rver, type S3rverHandle } from './support/s3rver.ts';
import { createSupabaseProject } from './support/supabase.ts';

interface SeedObject {
  bucket: string;
  key: string;
  body: Buffer;
  contentType: string;
}

const SEED: SeedObject[] = [
  { bucket: 'avatars', key: 'users/1/avatar.png', body: randomBytes(200 * 1024), contentType: 'image/png' },
  { bucket: 'avatars', key: 'hello.txt', body: Buffer.from('hello, storage\n'), contentType: 'text/plain' },
  { bucket: 'documents', key: 'reports/2026/q3.pdf', body: randomBytes(3 * 1024 * 1024 + 17), contentType: 'application/pdf' },
  { bucket: 'documents', key: 'ünï cödé & spaces.txt', body: Buffer.from('non-ascii key\n'), contentType: 'text/plain; charset=utf-8' },
  { bucket: 'documents', key: 'empty.bin', body: Buffer.alloc(0), contentType: 'application/octet-stream' },
];
const BUCKETS = ['avatars', 'documents', 'empty-bucket'];

/** The dedicated variables (not AWS_*): a project whose backups also go to S3 keeps two sets of keys apart. */
function storageEnv(server: S3rverHandle): Record<string, string> {
  return {
    SUPABASE_STORAGE_S3_ENDPOINT: server.endpoint,
    SUPABASE_STORAGE_S3_ACCESS_KEY_ID: server.env.AWS_ACCESS_KEY_ID!,
    SUPABASE_STORAGE_S3_SECRET_ACCESS_KEY: server.env.AWS_SECRET_ACCESS_KEY!,
    SUPABASE_STORAGE_S3_REGION: server.env.AWS_REGION!,
  };
}

function s3Client(server: S3rverHandle): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: server.env.AWS_REGION!,
    forcePathStyle: true,
    credentials: { accessKeyId: server.env.AWS_ACCESS_KEY_ID!, secretAccessKey: server.env.AWS_SECRET_ACCESS_KEY! },
  });
}

/** Every object of every bucket with its bytes' digest and content type, to compare two endpoints. */
async function contentsOf(server: S3rverHandle, buckets: string[]): Promise<Record<string, { sha256: string; size: number; contentType: string | undefined }>> {
  const client = s3Client(server);
  try {
    const result: Record<string, { sha256: string; size: number; contentType: string | undefined }> = {};
    for (const bucket of buckets) {
      const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
      for (const item of listed.Contents ?? []) {
        const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: item.Key! }));
        const bytes = Buffer.from(await object.Body!.transformToByteArray());
        result[`${bucket}/${item.Key}`] = { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, contentType: object.ContentType };
      }
    }
    return result;
  } finally {
    client.destroy();
  }
}

const expectedContents = () =>
  Object.fromEntries(
    SEED.map((object) => [
      `${object.bucket}/${object.key}`,
      { sha256: createHash('sha256').update(object.body).digest('hex'), size: object.body.length, contentType: object.contentType },
    ]),
  );

async function bucketsOf(server: S3rverHandle): Promise<string[]> {
  const client = s3Client(server);
  try {
    return ((await client.send(new ListBucketsCommand({}))).Buckets ?? []).map((bucket) => bucket.Name!).sort();
  } finally {
    client.destroy();
  }
}

describe('Supabase Storage objects in a backup (--with-storage), through the S3 endpoint (s3rver stands in for it)', () => {
  let source: S3rverHandle;
  let project: TestDatabase;
  let workDir: string;
  const servers: S3rverHandle[] = [];
  const databases: TestDatabase[] = [];
  let catalog: TestCatalog;

  /** A fresh, empty endpoint to restore into (s3rver always makes one bucket of its own). */
  const emptyEndpoint = async () => {
    const server = await startS3rver(`spare-${randomBytes(3).toString('hex')}`);
    servers.push(server);
    return server;
  };

  before(async () => {
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-sbstorage-'));
    source = await startS3rver('avatars');
    servers.push(source);
    const client = s3Client(source);
    try {
      for (const bucket of BUCKETS.slice(1)) await client.send(new CreateBucketCommand({ Bucket: bucket }));
      for (const object of SEED) {
        await client.send(new PutObjectCommand({ Bucket: object.bucket, Key: object.key, Body: object.body, ContentType: object.contentType }));
      }
    } finally {
      client.destroy();
    }
    project = await createSupabaseProject('sbstorage');
    databases.push(project);
    await adminQuery(
      `create table public.items (id serial primary key, name text); insert into public.items (name) select 'item ' || i from generate_series(1, 50) i;`,
      [],
      project.url,
    );
    catalog = await createTestCatalog();
  });

  after(async () => {
    for (const server of servers) await server.stop().catch(() => {});
    for (const database of databases) await database.drop().catch(() => {});
    await catalog?.close();
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  });

  const backup = async (storeDir: string, options: { encryptTo?: string[] } = {}) => {
    const store = localStore(storeDir);
    const artifact = await backupSupabase({
      runId: randomUUID(),
      attempt: 1,
      targetName: 'storage-app',
      createdAt: new Date().toISOString(),
      databaseUrl: project.url,
      store,
      encryptTo: options.encryptTo,
      signal: new AbortController().signal,
      withStorage: true,
      storageEnv: storageEnv(source),
    });
    return { store, artifact, ...(await readManifest(store, artifact.prefix)) };
  };

  it('stores every object of every bucket as storage/<bucket>/<key>.zst, listed in the manifest with size, digest, key and content type', async () => {
    const { store, artifact, manifest } = await backup(path.join(workDir, 'plain'));
    assert.deepEqual(manifest.storage, { buckets: BUCKETS });
    assert.deepEqual(
      manifest.files.slice(0, 3).map((file) => file.role),
      ['roles', 'schema', 'data'],
    );
    const storage = manifest.files.filter((file) => file.role === 'storage');
    assert.equal(storage.length, SEED.length);
    for (const object of SEED) {
      const file = storage.find((candidate) => candidate.object?.bucket === object.bucket && candidate.object.key === object.key);
      assert.ok(file, `${object.bucket}/${object.key} is in the manifest`);
      assert.equal(file.name, storageFileName(object.bucket, object.key, '.zst'));
      assert.equal(file.format, 'object');
      assert.equal(file.uncompressedSize, object.body.length);
      assert.equal(file.object!.contentType, object.contentType);
      assert.deepEqual(await digestOf(store, artifact.prefix + file.name), { sha256: file.sha256, size: file.size });
      // With standard tools alone: the file is the object, zstd-compressed.
      const stored = await fs.readFile(path.join(workDir, 'plain', artifact.prefix, file.name));
      assert.ok(zlib.zstdDecompressSync(stored).equals(object.body), `${file.name} decompresses to the object`);
    }
    assert.equal(artifact.files.length, manifest.files.length, 'the run records every file of the artifact');
  });

  it('names artifact files injectively, whatever the key holds', () => {
    const names = ['a/b', 'a//b', 'a/./b', 'a/../b', 'a/%2E/b', 'a/%/b', '/a', 'a/'].map((key) => storageFileName('bucket', key, ''));
    assert.equal(new Set(names).size, names.length);
    for (const name of names)
      assert.ok(
        name.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..'),
        name,
      );
  });

  it('restores every object into its bucket with its bytes and content type, creating missing buckets (empty ones too)', async () => {
    const { store, artifact, manifest } = await backup(path.join(workDir, 'restore'));
    const target = await emptyEndpoint();
    const endpoint = openStorageEndpoint(storageEndpointFromEnv(storageEnv(target)));
    try {
      const result = await restoreStorageObjects({ endpoint, store, prefix: artifact.prefix, manifest, signal: new AbortController().signal });
      assert.deepEqual(result, { objects: SEED.length, bytes: SEED.reduce((sum, object) => sum + object.body.length, 0), buckets: BUCKETS });
    } finally {
      endpoint.close();
    }
    assert.deepEqual(await contentsOf(target, BUCKETS), expectedContents());
    for (const bucket of BUCKETS) assert.ok((await bucketsOf(target)).includes(bucket), `bucket ${bucket} exists`);
  });

  it('encrypted with age: restorable only with the identity', async () => {
    const { identity, recipient } = generateIdentity();
    const { store, artifact, manifest } = await backup(path.join(workDir, 'encrypted'), { encryptTo: [recipient] });
    assert.ok(manifest.files.filter((file) => file.role === 'storage').every((file) => file.name.endsWith('.zst.age')));
    const target = await emptyEndpoint();
    const endpoint = openStorageEndpoint(storageEndpointFromEnv(storageEnv(target)));
    try {
      await assert.rejects(
        restoreStorageObjects({ endpoint, store, prefix: artifact.prefix, manifest, signal: new AbortController().signal }),
        (error) => isBackstopError(error, 'INVALID_INPUT') && /--identity/.test(error.message),
      );
      await restoreStorageObjects({ endpoint, store, prefix: artifact.prefix, manifest, identities: parseIdentities(identity), signal: new AbortController().signal });
    } finally {
      endpoint.close();
    }
    assert.deepEqual(await contentsOf(target, BUCKETS), expectedContents());
  });

  it('a damaged object is refused before it is uploaded', async () => {
    const { store, artifact, manifest } = await backup(path.join(workDir, 'damaged'));
    const victim = manifest.files.find((file) => file.object?.key === 'reports/2026/q3.pdf')!;
    const victimPath = path.join(workDir, 'damaged', artifact.prefix, victim.name);
    const bytes = await fs.readFile(victimPath);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await fs.writeFile(victimPath, bytes);
    const target = await emptyEndpoint();
    const endpoint = openStorageEndpoint(storageEndpointFromEnv(storageEnv(target)));
    try {
      await assert.rejects(
        restoreStorageObjects({ endpoint, store, prefix: artifact.prefix, manifest, signal: new AbortController().signal }),
        (error) => isBackstopError(error, 'ARTIFACT_CORRUPT') && error.message.includes(victim.name),
      );
    } finally {
      endpoint.close();
    }
    assert.equal((await contentsOf(target, ['documents']))['documents/reports/2026/q3.pdf'], undefined);
  });

  it('through the CLI: backup --profile supabase --with-storage, then restore RUN_ID --with-storage into a new project and an empty endpoint', async () => {
    const env = { BACKSTOP_DATABASE_URL: catalog.url, ...storageEnv(source) };
    const storeDir = path.join(workDir, 'cli');
    const backed = await runCli(['backup', project.url, '--profile', 'supabase', '--with-storage', '--store', storeDir, '--target', 'cli-storage', '--json'], env);
    assert.equal(backed.code, 0, backed.stderr);
    const run = JSON.parse(backed.stdout) as { id: string; status: string; artifact: { files: Array<{ name: string }> } };
    assert.equal(run.status, 'succeeded');
    assert.equal(run.artifact.files.filter((file) => file.name.startsWith('storage/')).length, SEED.length);

    const intoDatabase = await createSupabaseProject('sbstorage_dst');
    databases.push(intoDatabase);
    const target = await emptyEndpoint();
    const restored = await runCli(['restore', run.id, '--to', intoDatabase.url, '--with-storage', '--json'], { ...env, ...storageEnv(target) });
    assert.equal(restored.code, 0, restored.stderr);
    const result = JSON.parse(restored.stdout) as { status: string; storage: { objects: number; buckets: string[] } };
    assert.equal(result.status, 'restored');
    assert.deepEqual(result.storage.buckets, BUCKETS);
    assert.deepEqual(await contentsOf(target, BUCKETS), expectedContents());
    const [rows] = await adminQuery<{ count: number }>('select count(*)::int as count from public.items', [], intoDatabase.url);
    assert.equal(rows!.count, 50);

    const secondDatabase = await createSupabaseProject('sbstorage_dst2');
    databases.push(secondDatabase);
    const withoutStorage = await runCli(['restore', run.id, '--to', secondDatabase.url], env);
    assert.equal(withoutStorage.code, 0, withoutStorage.stderr);
    assert.match(withoutStorage.stdout, new RegExp(`also holds ${SEED.length} Storage object\\(s\\), not restored: pass --with-storage`));
  });

  it('refuses --with-storage without the Supabase profile, without an endpoint, or for a backup without objects, before doing anything', async () => {
    const env = { BACKSTOP_DATABASE_URL: catalog.url, SUPABASE_STORAGE_S3_ENDPOINT: '' };
    const storeDir = path.join(workDir, 'refusals');
    const noProfile = await runCli(['backup', project.url, '--with-storage', '--store', storeDir, '--target', 'no-profile'], { ...env, ...storageEnv(source) });
    assert.equal(noProfile.code, 2);
    assert.match(noProfile.stderr, /--with-storage: copies the Storage objects of a Supabase project: it needs the supabase profile/);
    const targetAdd = await runCli(['target', 'add', 'no-profile-target', '--database-url', project.url, '--with-storage'], env);
    assert.equal(targetAdd.code, 2);
    assert.match(targetAdd.stderr, /--with-storage: copies the Storage objects of a Supabase project: it needs the supabase profile/);
    const noEndpoint = await runCli(['backup', project.url, '--profile', 'supabase', '--with-storage', '--store', storeDir, '--target', 'no-endpoint'], env);
    assert.equal(noEndpoint.code, 2);
    assert.match(noEndpoint.stderr, /SUPABASE_STORAGE_S3_ENDPOINT/);
    const { rows } = await catalog.pool.query(`select 1 from backstop.targets where name in ('no-profile', 'no-profile-target', 'no-endpoint')`);
    assert.equal(rows.length, 0, 'nothing was registered');

    const plain = await runCli(['backup', project.url, '--profile', 'supabase', '--store', storeDir, '--target', 'plain-supabase', '--json'], env);
    assert.equal(plain.code, 0, plain.stderr);
    const runId = (JSON.parse(plain.stdout) as { id: string }).id;
    const intoDatabase = await createSupabaseProject('sbstorage_dst3');
    databases.push(intoDatabase);
    const refused = await runCli(['restore', runId, '--to', intoDatabase.url, '--with-storage'], { ...env, ...storageEnv(source) });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /holds no Supabase Storage objects/);
    const [tables] = await adminQuery<{ count: number }>(`select count(*)::int as count from pg_tables where schemaname = 'public'`, [], intoDatabase.url);
    assert.equal(tables!.count, 0, 'nothing was restored');
  });
});
