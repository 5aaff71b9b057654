import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { isBackstopError } from '../src/core/errors.ts';
import { localStore } from '../src/storage/localStore.ts';
import { openStore } from '../src/storage/openStore.ts';
import { s3Store } from '../src/storage/s3Store.ts';
import { parseS3Url, partSizeFor } from '../src/storage/s3Url.ts';
import type { Store } from '../src/storage/store.ts';
import { startS3rver, type S3rverHandle } from './support/s3rver.ts';
import { listAll, MIB, putText, readAll, storeContract, testBody } from './storeContract.ts';

/** Polls `check` until it returns true; fails after `timeoutMs`. */
async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

let nextPrefix = 0;
const uniquePrefix = (label: string): string => `${label}-${process.pid}-${++nextPrefix}`;

storeContract('localStore', async () => {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-local-store-'));
  const store = localStore(root);
  return {
    store,
    cleanup: async () => {
      await store.close();
      await fs.rm(root, { recursive: true, force: true });
    },
  };
});

describe('s3Store on s3rver', () => {
  let s3: S3rverHandle;
  before(async () => {
    s3 = await startS3rver();
  });
  after(async () => {
    await s3?.stop();
  });

  storeContract('s3Store', async () => {
    const store = s3Store(s3.storeUrl(uniquePrefix('contract')), s3.env);
    return { store, cleanup: () => store.close() };
  });

  describe('S3 specifics', () => {
    const opened: Store[] = [];
    const open = (prefix: string, options?: Record<string, string>): Store => {
      const store = s3Store(s3.storeUrl(prefix, options), s3.env);
      opened.push(store);
      return store;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });

    it('round-trips a multipart object (12 MiB in 5 MiB parts = 3 parts)', async () => {
      const store = open(uniquePrefix('multipart'), { partSize: '5' });
      const body = testBody({ size: 12 * MIB + 1 });
      const firstRequest = (await s3.requests()).length;
      const stored = await store.put('big/dump.bin', body.stream);

      assert.equal(stored.size, 12 * MIB + 1);
      assert.equal(stored.sha256, body.sha256());
      const parts = (await s3.requests()).slice(firstRequest).filter((request) => request.method === 'PUT' && request.query.partNumber !== undefined);
      assert.deepEqual(
        parts.map((request) => request.query.partNumber),
        ['1', '2', '3'],
      );
      assert.deepEqual(await store.stat('big/dump.bin'), { size: stored.size });
      const read = await readAll(await store.get('big/dump.bin'));
      assert.equal(read.sha256, stored.sha256);
      assert.deepEqual(await s3.pendingMultipartUploads(), []);
    });

    it('aborting a multipart put mid-stream aborts the upload and leaves no object', async () => {
      const store = open(uniquePrefix('multipart-abort'), { partSize: '5' });
      const before = await s3.pendingMultipartUploads();
      const body = testBody({ size: 20 * MIB, stallAt: 11 * MIB });
      const controller = new AbortController();
      const put = store.put('big/dump.bin', body.stream, { signal: controller.signal });
      await body.stalled;
      // Parts 1 and 2 are on the server once their .md5 files exist.
      await waitFor('two uploaded parts', async () => {
        const [uploadId] = (await s3.pendingMultipartUploads()).filter((id) => !before.includes(id));
        if (uploadId === undefined) return false;
        const files = await s3.multipartUploadFiles(uploadId);
        return files.includes('1.md5') && files.includes('2.md5');
      });
      const reason = new Error('cancelled mid-upload');
      controller.abort(reason);

      await assert.rejects(put, (error: unknown) => error === reason);
      assert.deepEqual(await s3.pendingMultipartUploads(), before, 'the multipart upload was aborted');
      assert.equal(await store.stat('big/dump.bin'), null);
      assert.deepEqual(await listAll(store, ''), []);
    });

    it('a body failing after parts were uploaded aborts the multipart upload', async () => {
      const store = open(uniquePrefix('multipart-fail'), { partSize: '5' });
      const before = await s3.pendingMultipartUploads();
      const body = testBody({ size: 20 * MIB, failAt: 16 * MIB });
      await assert.rejects(store.put('big/dump.bin', body.stream), (error: unknown) => {
        assert.ok(isBackstopError(error, 'STORE_WRITE_FAILED'), String(error));
        assert.match(error.message, /body failed on purpose/);
        assert.doesNotMatch(error.message, /Cleanup was incomplete/);
        return true;
      });
      assert.deepEqual(await s3.pendingMultipartUploads(), before);
      assert.equal(await store.stat('big/dump.bin'), null);
    });

    it('paginates listings', async () => {
      const prefix = uniquePrefix('pages');
      const store = open(prefix);
      const keys = Array.from({ length: 25 }, (_, i) => `page/${String(i).padStart(3, '0')}`);
      for (const key of keys) await putText(store, key, key);
      const paged = s3Store(s3.storeUrl(prefix), s3.env, { listPageSize: 10 });
      opened.push(paged);
      const firstRequest = (await s3.requests()).length;
      assert.deepEqual(
        (await listAll(paged, 'page/')).map((item) => item.key),
        keys,
      );
      assert.equal((await s3.requests()).slice(firstRequest).filter((request) => request.query['list-type'] === '2').length, 3);
    });

    it('openStore opens s3:// URLs with the s3 store', async () => {
      const prefix = uniquePrefix('open');
      const saved = { ...process.env };
      Object.assign(process.env, s3.env);
      try {
        const store = await openStore(s3.storeUrl(prefix));
        opened.push(store);
        await putText(store, 'x', 'hello');
        assert.equal((await readAll(await store.get('x'))).text, 'hello');
      } finally {
        for (const name of Object.keys(s3.env)) {
          if (saved[name] === undefined) delete process.env[name];
          else process.env[name] = saved[name];
        }
      }
    });

    // s3rver checks only the access key id of a V4 signature, so a wrong id stands in for wrong credentials.
    it('wrong credentials fail with STORE_WRITE_FAILED naming the variables to check', async () => {
      const store = s3Store(s3.storeUrl(uniquePrefix('badkey')), { ...s3.env, AWS_ACCESS_KEY_ID: 'NOT-A-KEY' });
      opened.push(store);
      await assert.rejects(putText(store, 'x', 'hello'), (error: unknown) => {
        assert.ok(isBackstopError(error, 'STORE_WRITE_FAILED'), String(error));
        assert.match(error.message, /AWS_ACCESS_KEY_ID/);
        assert.doesNotMatch(error.message, /S3RVER/);
        return true;
      });
      await assert.rejects(store.stat('x'), (error: unknown) => isBackstopError(error, 'STORE_READ_FAILED'));
    });
  });
});

describe('s3Store when the server goes away mid-upload', () => {
  let s3: S3rverHandle;
  let store: Store | undefined;
  before(async () => {
    s3 = await startS3rver();
  });
  after(async () => {
    await store?.close();
    await s3?.stop();
  });

  it('rejects with STORE_WRITE_FAILED, and no object exists once the server is back', async () => {
    store = s3Store(s3.storeUrl('outage', { partSize: '5' }), s3.env);
    const body = testBody({ size: 16 * MIB, stallAt: 6 * MIB });
    const put = store.put('run/dump.bin', body.stream);
    put.catch(() => {});
    await body.stalled;
    await waitFor('the first part on the server', async () => {
      const [uploadId] = await s3.pendingMultipartUploads();
      if (uploadId === undefined) return false;
      return (await s3.multipartUploadFiles(uploadId)).includes('1.md5');
    });
    await s3.halt();
    body.release();

    await assert.rejects(put, (error: unknown) => {
      assert.ok(isBackstopError(error, 'STORE_WRITE_FAILED'), String(error));
      assert.match(error.message, /run\/dump\.bin/);
      assert.match(error.message, /ECONNREFUSED|socket hang up|ECONNRESET/);
      // The upload could not be aborted while the server was down: the message says what remains.
      assert.match(error.message, /AbortIncompleteMultipartUpload/);
      return true;
    });

    await s3.restart();
    assert.equal(await store.stat('run/dump.bin'), null);
    assert.deepEqual(await listAll(store, ''), []);
  });
});

describe('s3 store URLs', () => {
  it('parses bucket, prefix and options', () => {
    const location = parseS3Url('s3://my-bucket/team/backups/?endpoint=https://acc.r2.cloudflarestorage.com&region=auto&partSize=16', {});
    assert.equal(location.bucket, 'my-bucket');
    assert.equal(location.keyPrefix, 'team/backups/');
    assert.equal(location.endpoint, 'https://acc.r2.cloudflarestorage.com');
    assert.equal(location.region, 'auto');
    assert.equal(location.forcePathStyle, false);
    assert.equal(location.partSizeBytes, 16 * MIB);
    assert.equal(location.printableUrl, 's3://my-bucket/team/backups?endpoint=https://acc.r2.cloudflarestorage.com&region=auto&partSize=16');
  });

  it('parts are sized for the object a put expects: 5 MiB, raised so that it fits in 8,000 parts', () => {
    assert.equal(partSizeFor(5 * MIB, undefined), 5 * MIB);
    assert.equal(partSizeFor(5 * MIB, 300e6), 5 * MIB);
    assert.equal(partSizeFor(16 * MIB, 300e6), 16 * MIB, 'a part size from the URL is a floor');
    // 500 GB: 5 MiB parts would need about 95,000 parts; S3 allows 10,000.
    const large = partSizeFor(5 * MIB, 500e9);
    assert.equal(large % MIB, 0);
    assert.ok(500e9 / large <= 8000 && 500e9 / large > 7000, `${large / MIB} MiB parts`);
    assert.equal(partSizeFor(5 * MIB, 1e15), 5 * 1024 * MIB, 'never above the 5 GiB S3 allows');
  });

  it('defaults: no prefix, AWS_REGION or us-east-1, 5 MiB parts, path style for IP endpoints', () => {
    const plain = parseS3Url('s3://bucket', {});
    assert.equal(plain.keyPrefix, '');
    assert.equal(plain.region, 'us-east-1');
    assert.equal(plain.partSizeBytes, 5 * MIB);
    assert.equal(plain.endpoint, undefined);
    assert.equal(parseS3Url('s3://bucket', { AWS_REGION: 'eu-west-1' }).region, 'eu-west-1');
    assert.equal(parseS3Url('s3://bucket?region=ap-south-1', { AWS_REGION: 'eu-west-1' }).region, 'ap-south-1');
    assert.equal(parseS3Url('s3://bucket?endpoint=http://127.0.0.1:9000', {}).forcePathStyle, true);
    assert.equal(parseS3Url('s3://bucket?endpoint=http://minio.internal:9000&path-style=true', {}).forcePathStyle, true);
    assert.equal(parseS3Url('s3://bucket?endpoint=http://minio.internal:9000&forcePathStyle=false', {}).forcePathStyle, false);
  });

  it('refuses credentials in the URL or the endpoint, without echoing them', () => {
    for (const url of [
      's3://AKIAEXAMPLE:supersecret@bucket/prefix',
      's3://AKIAEXAMPLE@bucket/prefix',
      's3://bucket/prefix?endpoint=https://AKIAEXAMPLE:supersecret@minio.example.com',
    ]) {
      assert.throws(
        () => s3Store(url, {}),
        (error: unknown) => {
          assert.ok(isBackstopError(error, 'INVALID_INPUT'), String(error));
          assert.match(error.message, /AWS_ACCESS_KEY_ID/);
          assert.match(error.message, /AWS_SECRET_ACCESS_KEY/);
          assert.doesNotMatch(error.message, /supersecret|AKIAEXAMPLE/);
          return true;
        },
      );
    }
  });

  it('reports every problem at once', () => {
    assert.throws(
      () => parseS3Url('s3://bucket?partSize=2&forcepathstyle=true&region=', {}),
      (error: unknown) => {
        assert.ok(isBackstopError(error, 'INVALID_INPUT'));
        assert.match(error.message, /partSize/);
        assert.match(error.message, /unknown option "forcepathstyle"/);
        assert.match(error.message, /region is empty/);
        return true;
      },
    );
  });

  it('url holds no secret, even when credentials come from the environment', async () => {
    const secret = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY';
    const store = s3Store('s3://bucket/prefix?endpoint=https://s3.us-west-004.backblazeb2.com&region=us-west-004', {
      AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
      AWS_SECRET_ACCESS_KEY: secret,
      AWS_SESSION_TOKEN: 'session-token-value',
    });
    try {
      assert.equal(store.url, 's3://bucket/prefix?endpoint=https://s3.us-west-004.backblazeb2.com&region=us-west-004');
      assert.doesNotMatch(JSON.stringify(store), /wJalrXUtnFEMI|AKIAIOSFODNN7EXAMPLE|session-token-value/);
    } finally {
      await store.close();
    }
  });
});

describe('test body', () => {
  it('stalls at stallAt and resumes on release', async () => {
    const body = testBody({ size: 3 * MIB, stallAt: MIB });
    const reading = readAll(body.stream);
    await body.stalled;
    assert.equal(body.produced(), MIB);
    body.release();
    const read = await reading;
    assert.equal(read.size, 3 * MIB);
    assert.equal(read.sha256, body.sha256());
  });
});
