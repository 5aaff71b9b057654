import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import { startNotifier } from '../src/control/notifier.ts';
import { parseDatabaseUrl } from '../src/core/databaseUrl.ts';
import { listNotifications } from '../src/db/notifications.ts';
import { claimRunById, finalizeRun } from '../src/db/runLeases.ts';
import { createRun } from '../src/db/runRecords.ts';
import { createTarget, updateTargetPolicies, type TargetRecord } from '../src/db/targets.ts';
import { githubClient } from '../src/executors/github/githubClient.ts';
import { backupDatabase } from '../src/pipeline/backup.ts';
import { localStore } from '../src/storage/localStore.ts';
import { s3Store } from '../src/storage/s3Store.ts';
import { runCli } from './support/cli.ts';
import { adminQuery, adminUrl, createSampleDatabase, createTestCatalog, dumpSessions, holdTableLock, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startS3rver, type S3rverHandle } from './support/s3rver.ts';
import { startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * Outbound requests and child processes as an attacker uses them: a target whose webhook,
 * Slack or S3 URL points at the server's own loopback services, the cloud metadata service or
 * the private network; and a database password that `ps` would show to every user of the
 * machine. The test harness allows loopback for the other test files; this one removes the
 * setting so that Backstop's defaults are what is attacked. Only loopback servers listen, and
 * no request is ever sent anywhere else: every refusal happens before a socket connects.
 */
delete process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS;

const SETTING = /BACKSTOP_ALLOW_PRIVATE_ENDPOINTS/;
const HOUR = 3_600_000;
const log = pino({ level: 'silent' });

interface Listener {
  port: number;
  /** TCP connections accepted: any refused request that got this far would show here. */
  connections: number;
  requests: string[];
  close(): Promise<void>;
}

async function listen(host = '127.0.0.1'): Promise<Listener> {
  const listener: Listener = { port: 0, connections: 0, requests: [], close: async () => {} };
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      listener.requests.push(`${request.method} ${request.url} ${body}`);
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  server.on('connection', () => listener.connections++);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  listener.port = (server.address() as AddressInfo).port;
  listener.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return listener;
}

/** Whether this machine has IPv6 loopback (a container may not). */
async function hasIpv6Loopback(): Promise<boolean> {
  const probe = http.createServer();
  return new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(0, '::1', () => probe.close(() => resolve(true)));
  });
}

describe('outbound requests reach only public addresses unless BACKSTOP_ALLOW_PRIVATE_ENDPOINTS allows more', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let api: TestServer;
  let hook: Listener;
  let hook6: Listener | null = null;

  before(async () => {
    catalog = await createTestCatalog();
    api = await startTestServer({ catalogUrl: catalog.url });
    hook = await listen();
    if (await hasIpv6Loopback()) hook6 = await listen('::1');
  });
  after(async () => {
    await hook?.close();
    await hook6?.close();
    await api?.close();
    await catalog?.close();
  });

  /** Every form of "this machine" or "the network it is in" an attacker would try. */
  const attackUrls = () => [
    `http://127.0.0.1:${hook.port}/hook`,
    `http://localhost:${hook.port}/hook`,
    // The URL parser turns these into 127.0.0.1: the guard must judge what is connected to, not the text.
    `http://0x7f000001:${hook.port}/hook`,
    `http://127.1:${hook.port}/hook`,
    `http://2130706433:${hook.port}/hook`,
    `http://0.0.0.0:${hook.port}/hook`,
    `http://[::ffff:127.0.0.1]:${hook.port}/hook`,
    `http://[::1]:${hook6?.port ?? hook.port}/hook`,
    'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
    'http://10.0.0.1/hook',
    'http://100.64.0.1/hook',
    'http://192.168.1.1/hook',
    'http://[fd00::1]/hook',
    'http://[fe80::1]/hook',
  ];

  it('the API refuses a target whose webhook or Slack URL is loopback, link-local or private, naming the setting', async () => {
    for (const [index, url] of attackUrls().entries()) {
      const kind = index % 2 === 0 ? 'webhook' : 'slack';
      const created = await api.request('POST', '/api/v1/targets', {
        token: api.tokens.admin,
        body: { name: `hook-${index}`, databaseUrl: 'postgres://u:p@db.example.com/app', notifications: [{ kind, url, on: ['failed'] }] },
      });
      assert.equal(created.status, 400, `${url}: ${created.text}`);
      assert.equal(created.json.error.code, 'INVALID_INPUT');
      assert.match(created.json.error.message, SETTING, url);
      assert.match(created.json.error.message, /only to public addresses/);
    }
    // A target that exists cannot be given one either.
    const plain = await api.request('POST', '/api/v1/targets', { token: api.tokens.admin, body: { name: 'plain', databaseUrl: 'postgres://u:p@db.example.com/app', checks: false } });
    assert.equal(plain.status, 201, plain.text);
    const patched = await api.request('PATCH', '/api/v1/targets/plain', {
      token: api.tokens.admin,
      body: { notifications: [{ kind: 'webhook', url: `http://127.0.0.1:${hook.port}/hook`, on: ['failed'] }] },
    });
    assert.equal(patched.status, 400, patched.text);
    assert.match(patched.json.error.message, /The webhook URL points at 127\.0\.0\.1, a loopback address \(127\.0\.0\.0\/8\).*BACKSTOP_ALLOW_PRIVATE_ENDPOINTS=127\.0\.0\.1/);
    const listed = await api.request('GET', '/api/v1/targets', { token: api.tokens.admin });
    assert.deepEqual(
      listed.json.items.map((target: TargetRecord) => target.name),
      ['plain'],
    );
    assert.equal(hook.connections + (hook6?.connections ?? 0), 0, 'nothing connected to the listeners');
  });

  it('the CLI refuses them too, with the same message, and stores nothing', async () => {
    const env = { BACKSTOP_DATABASE_URL: catalog.url };
    const added = await runCli(['target', 'add', 'cli-hook', '--database-url', 'postgres://u:p@db.example.com/app', '--notify-webhook', `http://localhost:${hook.port}/x`], env);
    assert.equal(added.code, 2, added.stderr);
    assert.match(added.stderr, /The webhook URL points at localhost \(127\.0\.0\.1\).*BACKSTOP_ALLOW_PRIVATE_ENDPOINTS/);
    const slack = await runCli(['target', 'add', 'cli-slack', '--database-url', 'postgres://u:p@db.example.com/app', '--notify-slack', 'http://169.254.169.254/hooks'], env);
    assert.equal(slack.code, 2, slack.stderr);
    assert.match(slack.stderr, /Slack incoming-webhook URL points at 169\.254\.169\.254, a link-local address/);
    const listed = await runCli(['target', 'list', '--json'], env);
    assert.ok(!listed.stdout.includes('cli-hook') && !listed.stdout.includes('cli-slack'), listed.stdout);
    // Allowed by the setting: the same command works.
    const allowed = await runCli(
      ['target', 'add', 'cli-allowed', '--database-url', 'postgres://u:p@db.example.com/app', '--notify-webhook', `http://localhost:${hook.port}/x`, '--skip-checks'],
      { ...env, BACKSTOP_ALLOW_PRIVATE_ENDPOINTS: '127.0.0.0/8,::1' },
    );
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(hook.connections, 0);
  });

  describe('at send time', () => {
    let target: TargetRecord;
    let counter = 0;

    beforeEach(async () => {
      target = await createTarget(catalog.pool, { name: `send-${++counter}`, databaseUrl: 'postgres://u:p@127.0.0.1:1/app', storeUrl: 'file:///var/backups' });
    });
    afterEach(() => {
      delete process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS;
    });

    const failRun = async () => {
      const run = await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: HOUR });
      const claimed = await claimRunById(catalog.pool, run.id, { leaseTtlMs: 60_000, claimedBy: 'test-runner' });
      await finalizeRun(catalog.pool, { runId: run.id, leaseId: claimed.leaseId, outcome: 'failed', error: { code: 'DUMP_FAILED', message: 'boom' }, artifact: null });
    };

    it('a channel stored while loopback was allowed is refused once it is not: nothing arrives, and the delivery fails with the reason and is retried', async () => {
      // Stored the way a server with the setting on stores it (the check at creation passed then).
      const urls = [`http://127.0.0.1:${hook.port}/stored`, `http://localhost:${hook.port}/stored`, `http://[::ffff:7f00:1]:${hook.port}/stored`];
      await updateTargetPolicies(catalog.pool, target.name, {
        addChannels: urls.map((url, index) => ({ id: `c${index}`, kind: 'webhook' as const, url, secret: 'never-sent', on: ['failed' as const] })),
      });
      await failRun();
      const notifier = startNotifier({ db: catalog.pool, log }, { pollIntervalMs: 3_600_000, retryBaseMs: 50, retryMaxMs: 50 });
      try {
        const outcomes = await waitFor('three deliveries attempted', async () => {
          const pass = await notifier.deliverOnce();
          return pass.length === 3 ? pass : null;
        });
        for (const outcome of outcomes) {
          assert.equal(outcome.delivered, false);
          assert.equal(outcome.final, false, 'a refusal is retried like any failed delivery');
          assert.match(outcome.error ?? '', /^Refused to connect to (127\.0\.0\.1|localhost \(127\.0\.0\.1\)|::ffff:7f00:1), a loopback address/);
          assert.match(outcome.error ?? '', SETTING);
        }
        const rows = await listNotifications(catalog.pool, { targetId: target.id });
        assert.equal(rows.length, 3);
        for (const row of rows) {
          assert.equal(row.deliveredAt, null);
          assert.match(row.lastError ?? '', SETTING);
        }
        assert.equal(hook.connections, 0, 'the receiver never saw a connection');

        // The same rows, once the operator allows loopback: delivered on the next attempt.
        process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS = '127.0.0.1';
        await waitFor('delivered once allowed', async () => {
          await notifier.deliverOnce();
          const after = await listNotifications(catalog.pool, { targetId: target.id });
          return after.every((row) => row.deliveredAt !== null);
        });
        assert.equal(hook.requests.filter((request) => request.startsWith('POST /stored')).length, 3);
      } finally {
        await notifier.stop();
      }
    });

    it('the GitHub API client refuses a loopback base URL before connecting', async () => {
      const connectionsBefore = hook.connections;
      const client = githubClient({ apiUrl: `http://localhost:${hook.port}`, token: 'ghp_never_sent' });
      await assert.rejects(
        client.getRun({ owner: 'acme', repo: 'infra', workflow: 'backstop.yml', ref: 'main' }, 1),
        (error: Error & { code?: string }) => error.code === 'GITHUB_UNAVAILABLE' && /localhost \(127\.0\.0\.1\), a loopback address/.test(error.message) && SETTING.test(error.message),
      );
      assert.equal(hook.connections, connectionsBefore);
    });
  });

  describe('S3 endpoints', () => {
    let s3: S3rverHandle;

    before(async () => {
      s3 = await startS3rver();
    });
    after(async () => {
      await s3?.stop();
    });

    it('a store on a loopback endpoint (a real s3rver) is refused before any request, with the setting named; allowed, it works', async () => {
      const before = (await s3.requests()).length;
      const refused = s3Store(s3.storeUrl(`refused-${randomUUID()}`), s3.env);
      try {
        await assert.rejects(refused.put('probe', Readable.from([Buffer.from('data')])), (error: Error & { code?: string }) => {
          assert.equal(error.code, 'STORE_WRITE_FAILED');
          assert.match(error.message, /Refused to connect to 127\.0\.0\.1, a loopback address .*BACKSTOP_ALLOW_PRIVATE_ENDPOINTS=127\.0\.0\.1/);
          return true;
        });
        await assert.rejects(refused.stat('probe'), SETTING);
      } finally {
        await refused.close();
      }
      assert.equal((await s3.requests()).length, before, 's3rver received nothing');

      const allowed = s3Store(s3.storeUrl(`allowed-${randomUUID()}`), { ...s3.env, BACKSTOP_ALLOW_PRIVATE_ENDPOINTS: '127.0.0.1' });
      try {
        const stored = await allowed.put('probe', Readable.from([Buffer.from('data')]));
        assert.equal(stored.size, 4);
        assert.deepEqual(await allowed.stat('probe'), { size: 4 });
      } finally {
        await allowed.close();
      }
    });

    it('the API refuses a target whose S3 endpoint is loopback or private', async () => {
      for (const endpoint of [s3.endpoint, 'http://localhost:9000', 'http://169.254.169.254', 'http://172.16.0.10:9000', 'http://[fc00::5]:9000']) {
        const storeUrl = `s3://bucket/prefix?endpoint=${endpoint}`;
        const created = await api.request('POST', '/api/v1/targets', {
          token: api.tokens.admin,
          body: { name: `s3-${randomBytes(3).toString('hex')}`, databaseUrl: 'postgres://u:p@db.example.com/app', storeUrl },
        });
        assert.equal(created.status, 400, `${endpoint}: ${created.text}`);
        assert.match(created.json.error.message, /^The S3 endpoint points at .*BACKSTOP_ALLOW_PRIVATE_ENDPOINTS/);
      }
      const before = (await s3.requests()).length;
      const backup = await runCli(['backup', 'postgres://u:p@127.0.0.1:1/app', '--target', 'cli-s3', '--store', s3.storeUrl('cli')], { BACKSTOP_DATABASE_URL: catalog.url, ...s3.env });
      assert.equal(backup.code, 2, backup.stderr);
      assert.match(backup.stderr, /The S3 endpoint points at 127\.0\.0\.1, a loopback address .*BACKSTOP_ALLOW_PRIVATE_ENDPOINTS=127\.0\.0\.1/);
      assert.equal((await s3.requests()).length, before, 's3rver received nothing');
    });
  });
});

/** NUL-separated /proc files of every process this user can read. */
async function readProcFiles(file: 'cmdline' | 'environ'): Promise<Array<{ pid: number; text: string }>> {
  const result: Array<{ pid: number; text: string }> = [];
  for (const entry of await fs.readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      result.push({ pid: Number(entry), text: (await fs.readFile(`/proc/${entry}/${file}`)).toString('utf8') });
    } catch {
      // Gone, or not ours to read.
    }
  }
  return result;
}

describe('no secret in any argv, and pg tools get a minimal environment', { timeout: 300_000 }, () => {
  let source: TestDatabase;
  let role: string;
  let storeDir: string;
  const saved: Record<string, string | undefined> = {};
  /** Secrets of Backstop's own environment that a pg tool must never inherit. */
  const parentSecrets = {
    BACKSTOP_RUNNER_TOKEN: `runner-token-${randomBytes(8).toString('hex')}`,
    AWS_SECRET_ACCESS_KEY: `aws-secret-${randomBytes(8).toString('hex')}`,
    BACKSTOP_DATABASE_URL: `postgres://backstop:catalog-password-${randomBytes(8).toString('hex')}@catalog.example.com/backstop`,
    BACKSTOP_GITHUB_TOKEN: `ghp_${randomBytes(8).toString('hex')}`,
    GITHUB_TOKEN: `ghs_${randomBytes(8).toString('hex')}`,
    // A password meant for some other server: sent to this one, its owner would learn it.
    PGPASSWORD: `other-server-${randomBytes(8).toString('hex')}`,
  };

  before(async () => {
    source = await createSampleDatabase(500);
    role = `dumper_${randomBytes(4).toString('hex')}`;
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-trust-argv-'));
    for (const [name, value] of Object.entries(parentSecrets)) {
      saved[name] = process.env[name];
      process.env[name] = value;
    }
  });
  after(async () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await source?.drop();
    if (role) await adminQuery(`drop role if exists ${role}`).catch(() => {});
    await fs.rm(storeDir, { recursive: true, force: true });
  });

  /** Backs up `databaseUrl` with pg_dump held on a table lock, and returns what /proc showed meanwhile. */
  const backupWhileWatched = async (databaseUrl: string, secret: string) => {
    const runId = randomUUID();
    const lock = await holdTableLock(source.url, 'orders');
    const controller = new AbortController();
    const store = localStore(storeDir);
    const running = backupDatabase({
      runId,
      attempt: 1,
      targetName: 'trust-argv',
      createdAt: new Date().toISOString(),
      databaseUrl,
      store,
      signal: controller.signal,
    });
    running.catch(() => {});
    try {
      // pg_dump is connected and waits for the lock: it is running, with its final argv and environment.
      await waitFor('pg_dump blocked on the lock', async () => (await dumpSessions(runId)) > 0);
      const everyCmdline = await readProcFiles('cmdline');
      const dumps = everyCmdline.filter(({ text }) => path.basename(text.split('\0')[0] ?? '') === 'pg_dump' && text.includes(source.name));
      assert.equal(dumps.length, 1, 'found the running pg_dump');
      const [environ] = (await readProcFiles('environ')).filter(({ pid }) => pid === dumps[0]!.pid);
      const serviceFile = environ!.text
        .split('\0')
        .find((line) => line.startsWith('PGSERVICEFILE='))
        ?.slice('PGSERVICEFILE='.length);
      const serviceFileMode = serviceFile ? (await fs.stat(serviceFile)).mode & 0o777 : null;
      const serviceFolderMode = serviceFile ? (await fs.stat(path.dirname(serviceFile))).mode & 0o777 : null;
      return {
        runId,
        cmdlines: everyCmdline.filter(({ text }) => text.includes(secret)).map(({ pid, text }) => `${pid}: ${text.replaceAll('\0', ' ')}`),
        dumpArgv: dumps[0]!.text.split('\0'),
        dumpEnv: environ!.text.split('\0').filter(Boolean),
        serviceFile,
        serviceFileMode,
        serviceFolderMode,
        finish: async () => {
          await lock.release();
          return running;
        },
      };
    } catch (error) {
      controller.abort();
      await lock.release();
      const ended = await Promise.race([
        running.then(
          () => 'succeeded',
          (failure: Error) => failure.message,
        ),
        new Promise((resolve) => setTimeout(resolve, 2000, 'still running')),
      ]);
      throw new Error(`${(error as Error).message}; the backup: ${ended}`);
    }
  };

  it("a password in the query string, in the userinfo, and an sslpassword never reach a command line; pg_dump inherits none of Backstop's secrets", async () => {
    const passwords = { query: `query-SECRET-${randomBytes(6).toString('hex')}`, userinfo: `userinfo-SECRET-${randomBytes(6).toString('hex')}` };
    const sslPassword = `sslkey-SECRET-${randomBytes(6).toString('hex')}`;
    // The cluster checks passwords (scram-sha-256): a dump that succeeds got its password from the environment.
    await adminQuery(`create role ${role} login superuser password '${passwords.query}'`);
    const server = parseDatabaseUrl(adminUrl());
    const base = `postgres://${role}@${server.hostname}:${server.port}/${source.name}`;
    const cases = [
      { name: 'query string', url: `${base}?password=${encodeURIComponent(passwords.query)}&sslpassword=${sslPassword}&keepalives=1`, secret: passwords.query },
      { name: 'userinfo', url: `postgres://${role}:${encodeURIComponent(passwords.userinfo)}@${server.hostname}:${server.port}/${source.name}`, secret: passwords.userinfo },
    ];
    for (const testCase of cases) {
      await adminQuery(`alter role ${role} password '${testCase.secret}'`);
      const watched = await backupWhileWatched(testCase.url, testCase.secret);
      assert.deepEqual(watched.cmdlines, [], `${testCase.name}: no process shows the password in its argv`);
      assert.ok(!watched.dumpArgv.join(' ').includes(sslPassword), `${testCase.name}: nor the sslpassword`);
      assert.ok(
        watched.dumpArgv.some((arg) => arg.startsWith('--dbname=') && arg.includes(source.name)),
        'the rest of the URL is still in argv',
      );
      assert.ok(watched.dumpEnv.includes(`PGPASSWORD=${testCase.secret}`), `${testCase.name}: the password went through the environment`);
      for (const [name, value] of Object.entries(parentSecrets)) {
        assert.ok(!watched.dumpEnv.some((line) => line.includes(value)), `pg_dump's environment holds no ${name} of Backstop's`);
      }
      assert.deepEqual(
        watched.dumpEnv.map((line) => line.slice(0, line.indexOf('='))).filter((name) => !/^(PATH|HOME|LANG|LANGUAGE|TZ|LC_\w+|LD_LIBRARY_PATH|PG\w+|_STDBUF_O|LD_PRELOAD)$/.test(name)),
        [],
        'nothing else in the environment',
      );
      if (testCase.name === 'query string') {
        // sslpassword has no environment variable in libpq: it is in a private service file while pg_dump runs.
        assert.ok(watched.serviceFile, 'a service file was given');
        assert.equal(watched.serviceFileMode, 0o600);
        assert.equal(watched.serviceFolderMode, 0o700);
        assert.match(await fs.readFile(watched.serviceFile!, 'utf8'), new RegExp(`^\\[backstop\\]\\nsslpassword=${sslPassword}\\n$`));
      }
      const artifact = await watched.finish();
      assert.equal(artifact.files.length, 1, `${testCase.name}: the dump succeeded with the password from the environment`);
      if (watched.serviceFile) {
        await assert.rejects(fs.stat(path.dirname(watched.serviceFile)), { code: 'ENOENT' }, 'the service file is removed when pg_dump exits');
      }
    }
  });
});
