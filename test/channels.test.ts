import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import pino from 'pino';
import { SMTPServer } from 'smtp-server';
import { startNotifier, type Notifier, type NotifierOptions } from '../src/control/notifier.ts';
import { channelRequest } from '../src/core/channelRequests.ts';
import type { RunnerOutcome } from '../src/core/runState.ts';
import { notificationMessage } from '../src/core/notificationMessage.ts';
import { listNotifications, type NotificationRecord } from '../src/db/notifications.ts';
import { createTarget, type TargetRecord } from '../src/db/targets.ts';
import { sendSharedChannelTest, sendTestNotification } from '../src/operations/sendTestNotification.ts';
import { addSharedChannel as addSharedChannelAs, showChannel, updateSharedChannel as updateSharedChannelAs } from '../src/operations/sharedChannels.ts';
import { showTarget } from '../src/operations/targets/listTargets.ts';
import { updateTarget as updateTargetAs } from '../src/operations/targets/updateTarget.ts';
import { systemActor } from '../src/core/auditActor.ts';
import { runCli } from './support/cli.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import { finishRun } from './support/runRows.ts';
import { startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/** The target changes these tests make are not what they test: one actor for all. */
const testActor = systemActor('channels test', null);
const updateTarget = (...args: [Parameters<typeof updateTargetAs>[0], string, unknown]) => updateTargetAs(...args, testActor);
const addSharedChannel = (pool: Parameters<typeof addSharedChannelAs>[0], input: unknown) => addSharedChannelAs(pool, input, testActor);
const updateSharedChannel = (pool: Parameters<typeof updateSharedChannelAs>[0], name: string, input: unknown) => updateSharedChannelAs(pool, name, input, testActor);

/**
 * Notification channels against real local servers: an SMTP server (smtp-server, with
 * STARTTLS on a self-signed certificate and AUTH), and HTTP servers that answer as Discord,
 * Telegram, Teams and ntfy do and check each request against what their published APIs take.
 */

const log = pino({ level: 'silent' });
const PUBLIC_URL = 'https://backstop.example.com';
const SMTP_PASSWORD = 'smtp-password-never-shown';
const BOT_TOKEN = '123456789:AAH-bot-token-never-shown_0123456789';
const NTFY_TOKEN = 'tk_ntfy-token-never-shown';
const DISCORD_PATH = '/api/webhooks/111/discord-token-never-shown';
const TEAMS_PATH = '/workflows/teams-signature-never-shown/triggers/manual/paths/invoke';
const SECRETS = [SMTP_PASSWORD, BOT_TOKEN, NTFY_TOKEN, 'discord-token-never-shown', 'teams-signature-never-shown'];

interface Mail {
  subject: string;
  text: string;
  from: string;
  to: string[];
  /** The session had upgraded to TLS when the message was sent. */
  secure: boolean;
  user: unknown;
}

interface SmtpHandle {
  port: number;
  /** TCP connections accepted: a refused delivery that got this far would show here. */
  connections: number;
  mails: Mail[];
  authAttempts: { username: string; password: string; secure: boolean }[];
  close(): Promise<void>;
}

async function startSmtp(options: { key: Buffer; cert: Buffer; implicitTls?: boolean; noStarttls?: boolean }): Promise<SmtpHandle> {
  const handle: SmtpHandle = { port: 0, connections: 0, mails: [], authAttempts: [], close: async () => {} };
  const server = new SMTPServer({
    secure: options.implicitTls ?? false,
    disabledCommands: options.noStarttls ? ['STARTTLS'] : [],
    key: options.key,
    cert: options.cert,
    authMethods: ['PLAIN', 'LOGIN'],
    // The default: AUTH is offered only once the connection is encrypted.
    allowInsecureAuth: false,
    logger: false,
    onConnect(_session, callback) {
      handle.connections++;
      callback();
    },
    onAuth(auth, session, callback) {
      handle.authAttempts.push({ username: auth.username ?? '', password: auth.password ?? '', secure: session.secure });
      if (auth.username === 'backstop' && auth.password === SMTP_PASSWORD) callback(null, { user: 'backstop' });
      else callback(new Error('Invalid username or password'));
    },
    onData(stream, session, callback) {
      simpleParser(stream)
        .then((parsed) => {
          handle.mails.push({
            subject: parsed.subject ?? '',
            text: parsed.text ?? '',
            from: parsed.from?.value[0]?.address ?? '',
            to: session.envelope.rcptTo.map((rcpt) => rcpt.address),
            secure: session.secure,
            user: session.user,
          });
          callback();
        })
        .catch(callback);
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  handle.port = (server.server.address() as AddressInfo).port;
  handle.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return handle;
}

/** An e-mail channel to the local SMTP server, with AUTH, as most of these tests want it. */
function mailSettings(port: number) {
  return { kind: 'email', host: '127.0.0.1', port, username: 'backstop', password: SMTP_PASSWORD, from: 'backstop@example.com', to: ['ops@example.com'] } as const;
}

interface Received {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  at: number;
}

interface FakeServices {
  url: string;
  received: Received[];
  /** Status per path; default: what the service answers on success. */
  status: Map<string, number>;
  /** A 200 answer's body per path, instead of the service's success. */
  answers: Map<string, string>;
  close(): Promise<void>;
}

/** One HTTP server playing Discord, Telegram, Teams and ntfy, each at its own path. */
async function startFakeServices(): Promise<FakeServices> {
  const fake: FakeServices = { url: '', received: [], status: new Map(), answers: new Map(), close: async () => {} };
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const url = request.url ?? '';
      fake.received.push({ method: request.method ?? '', path: url, headers: request.headers, body, at: performance.now() });
      const forced = fake.status.get(url);
      const answer = fake.answers.get(url);
      if (answer !== undefined) {
        response.writeHead(200, { 'content-type': 'application/json' }).end(answer);
      } else if (forced !== undefined) {
        // As some services and proxies do, the refusal repeats the path it was sent to.
        response.writeHead(forced, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'the service says no', path: url }));
      } else if (url === DISCORD_PATH) {
        response.writeHead(204).end(); // execute-webhook without ?wait=true
      } else if (url.startsWith('/bot')) {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, result: { message_id: 1 } }));
      } else if (url === TEAMS_PATH) {
        response.writeHead(202).end();
      } else {
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'x', event: 'message' }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return fake;
}

/** A self-signed certificate for 127.0.0.1 (and localhost), made with openssl. */
async function selfSignedCertificate(folder: string): Promise<{ key: Buffer; cert: Buffer }> {
  const keyFile = path.join(folder, 'key.pem');
  const certFile = path.join(folder, 'cert.pem');
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '1',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  return { key: await fs.readFile(keyFile), cert: await fs.readFile(certFile) };
}

describe('notification channels', { timeout: 300_000 }, () => {
  let folder: string;
  let certificate: { key: Buffer; cert: Buffer };
  let catalog: TestCatalog;
  let target: TargetRecord;
  let notifiers: Notifier[] = [];
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    folder = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-channels-'));
    certificate = await selfSignedCertificate(folder);
  });
  after(async () => {
    await fs.rm(folder, { recursive: true, force: true });
  });

  beforeEach(async () => {
    catalog = await createTestCatalog();
    target = await createTarget(catalog.pool, { name: 'app', databaseUrl: 'postgres://backstop:pw@127.0.0.1:5432/app', storeUrl: 'file:///var/backups' });
  });

  afterEach(async () => {
    await Promise.all(notifiers.map((notifier) => notifier.stop()));
    notifiers = [];
    for (const close of closers.splice(0)) await close();
    await catalog.close();
  });

  const notifier = (options: NotifierOptions = {}) => {
    const started = startNotifier({ db: catalog.pool, log }, { pollIntervalMs: 50, retryBaseMs: 100, publicUrl: PUBLIC_URL, ...options });
    notifiers.push(started);
    return started;
  };

  const finish = (outcome: RunnerOutcome, error: { code: string; message: string } | null = null) => finishRun(catalog.pool, target.id, outcome, { error });

  const outbox = async (): Promise<NotificationRecord[]> => listNotifications(catalog.pool, { targetId: target.id });

  it('e-mail: through STARTTLS with a self-signed certificate and AUTH, the mail says what failed, since when, what to do, and links to the run', async () => {
    const smtp = await startSmtp(certificate);
    closers.push(smtp.close);
    await addSharedChannel(catalog.pool, {
      name: 'ops-mail',
      ...mailSettings(smtp.port),
      security: 'starttls',
      to: ['ops@example.com', 'dba@example.com'],
    });

    // The certificate is checked: not trusted yet, the test is refused and nothing is sent.
    const untrusted = await sendSharedChannelTest(catalog.pool, { name: 'ops-mail', requestedBy: 'test' });
    assert.equal(untrusted.delivered, false);
    assert.match(untrusted.error!, /self[- ]signed certificate/i);
    assert.equal(smtp.authAttempts.length, 0, 'no password is sent over a connection whose certificate failed');
    const defaults = tls.getCACertificates('default');
    tls.setDefaultCACertificates([...defaults, certificate.cert.toString()]);
    closers.push(async () => tls.setDefaultCACertificates(defaults));

    await updateTarget({ pool: catalog.pool, config: { defaultStoreUrl: 'file:///var/backups', pgTools: { dirs: [], only: false } } }, 'app', {
      notifications: [{ kind: 'shared', channel: 'ops-mail', on: ['failed'] }],
      checks: false,
    });
    const first = await finish('failed', { code: 'DATABASE_UNREACHABLE', message: 'could not connect to db.internal:5432' });
    const { run } = await finish('failed', { code: 'DUMP_FAILED', message: 'pg_dump exited with code 1: permission denied for table orders' });
    notifier();
    await waitFor('two mails', () => smtp.mails.length === 2);
    const mail = smtp.mails.find((candidate) => candidate.text.includes('DUMP_FAILED'))!;
    assert.equal(mail.secure, true, 'sent after STARTTLS');
    assert.equal(mail.user, 'backstop', 'authenticated');
    assert.deepEqual(
      smtp.authAttempts.map((attempt) => attempt.secure),
      [true, true],
    );
    assert.equal(mail.subject, '[Backstop] FAILED: Backup of app failed');
    assert.equal(mail.from, 'backstop@example.com');
    assert.deepEqual(mail.to, ['ops@example.com', 'dba@example.com']);
    assert.match(mail.text, /^The backup of app failed: \[DUMP_FAILED\] pg_dump exited with code 1: permission denied for table orders$/m);
    assert.match(mail.text, new RegExp(`^Failing since ${first.run.finishedAt!.replace(/[.]/g, '\\.')}\\.$`, 'm'), 'since the first failure of the streak');
    assert.match(mail.text, /^What to do: Read the error on the run page/m);
    assert.match(mail.text, new RegExp(`^Open: ${PUBLIC_URL}/#/runs/${run.id}$`, 'm'));
    assert.ok(!mail.text.includes(SMTP_PASSWORD));
    // A delivery is marked after the channel's health is recorded: once both are, read it.
    await waitFor('both marked delivered', async () => (await outbox()).filter((row) => row.deliveredAt).length === 2);
    const health = (await showChannel(catalog.pool, 'ops-mail')).health;
    assert.equal(health.failingSince, null, 'delivered: not failing');
    assert.ok(health.lastDeliveredAt);
    assert.match(health.lastError ?? '', /self[- ]signed/, 'the last error stays on record');
  });

  it('e-mail: implicit TLS (port 465 style), and a wrong password is a failed delivery that never shows the password', async () => {
    const smtp = await startSmtp({ ...certificate, implicitTls: true });
    closers.push(smtp.close);
    const defaults = tls.getCACertificates('default');
    tls.setDefaultCACertificates([...defaults, certificate.cert.toString()]);
    closers.push(async () => tls.setDefaultCACertificates(defaults));
    await addSharedChannel(catalog.pool, {
      name: 'tls-mail',
      ...mailSettings(smtp.port),
      security: 'tls',
      password: 'a-wrong-password-never-shown',
    });
    const refused = await sendSharedChannelTest(catalog.pool, { name: 'tls-mail', requestedBy: 'test' });
    assert.equal(refused.delivered, false);
    assert.match(refused.error!, /Invalid username or password/);
    assert.ok(!refused.error!.includes('a-wrong-password-never-shown'));
    const failing = (await showChannel(catalog.pool, 'tls-mail')).health;
    assert.ok(failing.failingSince, 'shown failing');
    assert.equal(failing.failures, 1);

    await updateSharedChannel(catalog.pool, 'tls-mail', { password: SMTP_PASSWORD });
    const sent = await sendSharedChannelTest(catalog.pool, { name: 'tls-mail', requestedBy: 'test' }, { publicUrl: PUBLIC_URL });
    assert.deepEqual(sent, { delivered: true });
    assert.equal(smtp.mails.length, 1);
    assert.equal(smtp.mails[0]!.secure, true);
    assert.equal(smtp.mails[0]!.subject, '[Backstop] Test notification from Backstop');
    assert.equal((await showChannel(catalog.pool, 'tls-mail')).health.failingSince, null, 'a good test ends the failing streak');
  });

  it('e-mail: a server that does not offer STARTTLS is refused before the password is sent', async () => {
    const smtp = await startSmtp({ ...certificate, noStarttls: true });
    closers.push(smtp.close);
    await addSharedChannel(catalog.pool, {
      name: 'plain-mail',
      ...mailSettings(smtp.port),
    });
    const refused = await sendSharedChannelTest(catalog.pool, { name: 'plain-mail', requestedBy: 'test' });
    assert.equal(refused.delivered, false);
    assert.match(refused.error!, /STARTTLS/);
    assert.equal(smtp.connections, 1);
    assert.deepEqual(smtp.authAttempts, []);
    assert.deepEqual(smtp.mails, []);
  });

  it('Discord, Telegram, Teams and ntfy each get the request their published API takes', async () => {
    const fake = await startFakeServices();
    closers.push(fake.close);
    await updateTarget({ pool: catalog.pool, config: { defaultStoreUrl: 'file:///var/backups', pgTools: { dirs: [], only: false } } }, 'app', {
      notifications: [
        { id: 'discord', kind: 'discord', url: `${fake.url}${DISCORD_PATH}`, on: ['failed'] },
        { id: 'telegram', kind: 'telegram', botToken: BOT_TOKEN, chatId: '-100123456', apiUrl: fake.url, on: ['failed'] },
        { id: 'teams', kind: 'teams', url: `${fake.url}${TEAMS_PATH}`, on: ['failed'] },
        { id: 'ntfy', kind: 'ntfy', url: `${fake.url}/backstop-alerts`, token: NTFY_TOKEN, on: ['failed'] },
      ],
      checks: false,
    });
    const { run } = await finish('failed', { code: 'DATABASE_UNREACHABLE', message: 'Cannot connect to <db> & retry @everyone' });
    notifier();
    await waitFor('all four delivered', async () => (await outbox()).filter((row) => row.deliveredAt).length === 4);
    const link = `${PUBLIC_URL}/#/runs/${run.id}`;
    const at = (predicate: (request: Received) => boolean) => {
      const found = fake.received.filter(predicate);
      assert.equal(found.length, 1, fake.received.map((request) => request.path).join(', '));
      return found[0]!;
    };

    // Discord execute-webhook: JSON with content and/or embeds.
    const discord = at((request) => request.path === DISCORD_PATH);
    assert.equal(discord.method, 'POST');
    assert.equal(discord.headers['content-type'], 'application/json');
    const discordBody = JSON.parse(discord.body);
    assert.equal(discordBody.content, 'Backup of app failed');
    assert.equal(discordBody.embeds.length, 1);
    const embed = discordBody.embeds[0];
    assert.equal(embed.title, 'Backup of app failed');
    assert.equal(embed.url, link);
    assert.ok(Number.isInteger(embed.color));
    assert.match(embed.description, /\[DATABASE_UNREACHABLE\] Cannot connect to <db> & retry @everyone/);
    assert.match(embed.description, /\*\*What to do:\*\*/);
    assert.ok(embed.fields.every((field: { name: string; value: string }) => typeof field.name === 'string' && field.value.length <= 1024));
    assert.deepEqual(
      embed.fields.map((field: { name: string }) => field.name),
      ['Target', 'Run', 'Error', 'Failing since', 'Finished'],
    );
    assert.deepEqual(discordBody.allowed_mentions, { parse: [] }, 'an error text cannot ping @everyone');

    // Telegram Bot API: POST /bot<token>/sendMessage with chat_id, text, parse_mode.
    const telegram = at((request) => request.path.startsWith('/bot'));
    assert.equal(telegram.method, 'POST');
    assert.equal(telegram.path, `/bot${BOT_TOKEN}/sendMessage`);
    assert.equal(telegram.headers['content-type'], 'application/json');
    const telegramBody = JSON.parse(telegram.body);
    assert.equal(telegramBody.chat_id, '-100123456');
    assert.equal(telegramBody.parse_mode, 'HTML');
    assert.match(telegramBody.text, /^<b>Backup of app failed<\/b>\n/);
    assert.match(telegramBody.text, /Cannot connect to &lt;db&gt; &amp; retry/, 'HTML-escaped');
    assert.ok(telegramBody.text.includes(`<a href="${link}">Open in Backstop</a>`));

    // Teams workflow webhook: a message whose attachment is an Adaptive Card.
    const teams = at((request) => request.path === TEAMS_PATH);
    assert.equal(teams.method, 'POST');
    assert.equal(teams.headers['content-type'], 'application/json');
    const teamsBody = JSON.parse(teams.body);
    assert.equal(teamsBody.type, 'message');
    assert.equal(teamsBody.attachments.length, 1);
    assert.equal(teamsBody.attachments[0].contentType, 'application/vnd.microsoft.card.adaptive');
    const card = teamsBody.attachments[0].content;
    assert.equal(card.type, 'AdaptiveCard');
    assert.equal(card.$schema, 'http://adaptivecards.io/schemas/adaptive-card.json');
    assert.match(card.version, /^1\.\d$/);
    assert.equal(card.body[0].type, 'TextBlock');
    assert.equal(card.body[0].text, 'Backup of app failed');
    assert.ok(card.body.some((block: { type: string }) => block.type === 'FactSet'));
    assert.deepEqual(card.actions, [{ type: 'Action.OpenUrl', title: 'Open in Backstop', url: link }]);

    // ntfy: POST /<topic>, the message as the body, the rest in headers.
    const ntfy = at((request) => request.path === '/backstop-alerts');
    assert.equal(ntfy.method, 'POST');
    assert.equal(ntfy.headers.title, 'Backup of app failed');
    assert.equal(ntfy.headers.priority, '4');
    assert.equal(ntfy.headers.tags, 'rotating_light,backstop');
    assert.equal(ntfy.headers.click, link);
    assert.equal(ntfy.headers.authorization, `Bearer ${NTFY_TOKEN}`);
    assert.match(ntfy.body, /^The backup of app failed: \[DATABASE_UNREACHABLE\] Cannot connect to <db> & retry @everyone\n/);

    // The Bot API can refuse in its answer's body: that is a failed delivery, without the token.
    fake.answers.set(`/bot${BOT_TOKEN}/sendMessage`, JSON.stringify({ ok: false, error_code: 400, description: 'Bad Request: chat not found' }));
    const refused = await sendTestNotification(catalog.pool, { targetName: 'app', channelId: 'telegram', requestedBy: 'test' });
    assert.equal(refused.delivered, false);
    assert.match(refused.error!, /^Telegram refused: .*chat not found/);
  });

  it('a channel that keeps failing is retried with backoff, shown failing with its last error, and never delays the run', async () => {
    const fake = await startFakeServices();
    closers.push(fake.close);
    fake.status.set(DISCORD_PATH, 500);
    await updateTarget({ pool: catalog.pool, config: { defaultStoreUrl: 'file:///var/backups', pgTools: { dirs: [], only: false } } }, 'app', {
      notifications: [{ id: 'discord', kind: 'discord', url: `${fake.url}${DISCORD_PATH}`, on: ['failed'] }],
      checks: false,
    });
    notifier({ maxAttempts: 4, retryBaseMs: 200 });
    const { run, finalizeMs } = await finish('failed', { code: 'DUMP_FAILED', message: 'boom' });
    assert.equal(run.status, 'failed');
    assert.ok(finalizeMs < 1000, `finalize took ${Math.round(finalizeMs)} ms`);

    await waitFor('given up after 4 attempts', async () => (await outbox())[0]?.failedAt, 30_000);
    const attempts = fake.received.filter((request) => request.path === DISCORD_PATH);
    assert.equal(attempts.length, 4);
    const gaps = attempts.slice(1).map((request, index) => request.at - attempts[index]!.at);
    // 200 ms, then 400, then 800: each wait at least the backoff.
    for (const [index, gap] of gaps.entries()) assert.ok(gap >= 200 * 2 ** index - 20, `gap ${index}: ${Math.round(gap)} ms`);
    const shown = (await showTarget({ pool: catalog.pool }, 'app')).notifications[0]!;
    assert.ok(shown.health?.failingSince, 'shown failing');
    assert.equal(shown.health?.failures, 4);
    assert.equal(shown.health?.lastError, 'HTTP 500: {"message":"the service says no","path":"*****"}', 'the path, which holds the key, is not kept');
    assert.ok(!shown.health?.lastError?.includes('discord-token-never-shown'));
  });

  it('the outbound guard holds every channel to public addresses, the SMTP server included: at creation, naming the field, and at delivery', async () => {
    const smtp = await startSmtp(certificate);
    closers.push(smtp.close);
    const mail = { kind: 'email', host: '127.0.0.1', port: smtp.port, security: 'none', from: 'backstop@example.com', to: ['ops@example.com'] } as const;
    await addSharedChannel(catalog.pool, { name: 'local-mail', ...mail });
    const allowance = process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS;
    delete process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS;
    try {
      const refusals: [unknown, string, RegExp][] = [
        [{ name: 'refused-mail', ...mail }, 'host', /SMTP server points at 127\.0\.0\.1, a loopback address/],
        [{ name: 'refused-telegram', kind: 'telegram', botToken: BOT_TOKEN, chatId: '1', apiUrl: 'http://169.254.169.254/' }, 'apiUrl', /Telegram API URL points at 169\.254\.169\.254/],
        [{ name: 'refused-ntfy', kind: 'ntfy', url: 'http://10.1.2.3/topic' }, 'url', /ntfy topic URL points at 10\.1\.2\.3, a private address/],
      ];
      for (const [input, field, says] of refusals) {
        await assert.rejects(addSharedChannel(catalog.pool, input), (error: Error & { code?: string; field?: string }) => {
          assert.equal(error.code, 'INVALID_INPUT');
          assert.equal(error.field, field);
          assert.match(error.message, says);
          assert.match(error.message, /BACKSTOP_ALLOW_PRIVATE_ENDPOINTS/);
          return true;
        });
      }
      await assert.rejects(
        updateTarget({ pool: catalog.pool, config: { defaultStoreUrl: 'file:///var/backups', pgTools: { dirs: [], only: false } } }, 'app', {
          notifications: [{ kind: 'discord', url: 'http://127.0.0.1:9/api/webhooks/1/x', on: ['failed'] }],
          checks: false,
        }),
        (error: Error & { field?: string }) => error.field === 'notifications.0.url' && /Discord webhook URL points at 127\.0\.0\.1/.test(error.message),
      );
      // Stored while loopback was allowed: refused when sent, before any connection.
      const sent = await sendSharedChannelTest(catalog.pool, { name: 'local-mail', requestedBy: 'test' });
      assert.equal(sent.delivered, false);
      assert.match(sent.error!, /Refused to connect to 127\.0\.0\.1, a loopback address/);
      assert.equal(smtp.connections, 0);
    } finally {
      if (allowance === undefined) delete process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS;
      else process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS = allowance;
    }
    // Allowed again, the server is reached (and, as this one wants AUTH over TLS, refuses a plain-text sender).
    const reached = await sendSharedChannelTest(catalog.pool, { name: 'local-mail', requestedBy: 'test' });
    assert.match(reached.error!, /530 Error: authentication Required/);
    assert.equal(smtp.connections, 1);
  });

  it('a new event kind renders on every channel from its own fields, without code per channel', () => {
    const payload = {
      event: 'stale_backup',
      target: { name: 'app' },
      run: null,
      severity: 'warning',
      summary: 'No good backup of app for 26 hours; its schedule expects one every 24.',
      action: 'Check the scheduler and the last runs.',
      since: '2026-12-05T03:00:00.000Z',
      details: { expectedEvery: '24 h', lastGoodBackup: '2026-12-05T03:00:00.000Z' },
    };
    const message = notificationMessage(payload, { publicUrl: PUBLIC_URL });
    assert.equal(message.title, 'Stale backup: app');
    assert.equal(message.link, `${PUBLIC_URL}/#/targets/app`);
    assert.deepEqual(message.facts, [
      { name: 'Target', value: 'app' },
      { name: 'Failing since', value: '2026-12-05T03:00:00.000Z' },
      { name: 'Expected every', value: '24 h' },
      { name: 'Last good backup', value: '2026-12-05T03:00:00.000Z' },
    ]);
    // An alarm (what did not happen) brings its own words: every channel says them.
    const alarm = notificationMessage(
      {
        event: 'alarm',
        target: { name: 'app' },
        alarm: {
          kind: 'backup_overdue',
          what: 'The newest good backup of app is 27 h old, past its bound of 26 h.',
          since: '2026-01-02T04:00:00.000Z',
          whatToDo: 'Take a backup now with `backstop trigger app`.',
          link: `${PUBLIC_URL}/#/targets/app`,
          sentCount: 2,
        },
      },
      { publicUrl: PUBLIC_URL },
    );
    assert.equal(alarm.title, 'Still: Backup overdue: app');
    assert.equal(alarm.summary, 'The newest good backup of app is 27 h old, past its bound of 26 h.');
    assert.equal(alarm.action, 'Take a backup now with `backstop trigger app`.');
    assert.equal(alarm.since, '2026-01-02T04:00:00.000Z');
    assert.equal(alarm.link, `${PUBLIC_URL}/#/targets/app`);
    for (const kind of ['slack', 'discord', 'teams', 'ntfy', 'telegram', 'webhook'] as const) {
      const request = channelRequest({ kind, url: 'https://hooks.example.com/x', botToken: BOT_TOKEN, chatId: '1' }, { id: 1, event: payload.event, document: payload }, message, {
        userAgent: 'test',
        timestamp: '1',
      });
      assert.ok(request.body.includes('No good backup of app for 26 hours'), `${kind}: ${request.body}`);
      assert.ok(request.body.includes('Check the scheduler'), kind);
    }
  });

  describe('through the API and the CLI', () => {
    let api: TestServer;
    let smtp: SmtpHandle;
    let fake: FakeServices;

    beforeEach(async () => {
      smtp = await startSmtp(certificate);
      fake = await startFakeServices();
      api = await startTestServer({ catalogUrl: catalog.url, env: { BACKSTOP_PUBLIC_URL: `${PUBLIC_URL}/` } });
      const defaults = tls.getCACertificates('default');
      tls.setDefaultCACertificates([...defaults, certificate.cert.toString()]);
      closers.push(
        async () => tls.setDefaultCACertificates(defaults),
        () => api.close(),
        smtp.close,
        fake.close,
      );
    });

    it('shared channels: add, list, show, update, test, use from a target, remove; secrets are never returned or printed', async () => {
      const created = await api.request('POST', '/api/v1/channels', {
        body: {
          name: 'ops-mail',
          ...mailSettings(smtp.port),
        },
      });
      assert.equal(created.status, 201, created.text);
      assert.deepEqual(created.json.settings, {
        kind: 'email',
        host: '127.0.0.1',
        port: smtp.port,
        username: 'backstop',
        from: 'backstop@example.com',
        to: ['ops@example.com'],
        secretsSet: ['password'],
      });
      for (const body of [
        { name: 'ops-telegram', kind: 'telegram', botToken: BOT_TOKEN, chatId: '@backstop_ops', apiUrl: fake.url },
        { name: 'ops-ntfy', kind: 'ntfy', url: `${fake.url}/backstop-alerts`, token: NTFY_TOKEN },
        { name: 'ops-discord', kind: 'discord', url: `${fake.url}${DISCORD_PATH}` },
        { name: 'ops-teams', kind: 'teams', url: `${fake.url}${TEAMS_PATH}` },
      ]) {
        const added = await api.request('POST', '/api/v1/channels', { body });
        assert.equal(added.status, 201, added.text);
      }
      const duplicate = await api.request('POST', '/api/v1/channels', { body: { name: 'ops-ntfy', kind: 'ntfy', url: `${fake.url}/x` } });
      assert.equal(duplicate.status, 409);
      assert.equal(duplicate.json.error.code, 'CHANNEL_EXISTS');
      const missing = await api.request('POST', '/api/v1/channels', { body: { name: 'half', kind: 'telegram', chatId: '1' } });
      assert.equal(missing.status, 400);
      assert.deepEqual(missing.json.error.fields, [{ field: 'botToken', message: 'is required for a telegram channel' }]);
      const viewer = await api.request('GET', '/api/v1/channels', { token: api.tokens.viewer });
      assert.equal(viewer.status, 403, 'admins only');

      // A test from the API arrives, with the link from BACKSTOP_PUBLIC_URL.
      const tested = await api.request('POST', '/api/v1/channels/ops-mail/test');
      assert.deepEqual(tested.json, { delivered: true });
      assert.equal(smtp.mails.length, 1);
      assert.match(smtp.mails[0]!.text, new RegExp(`^Open: ${PUBLIC_URL}/$`, 'm'));
      const telegramTest = await api.request('POST', '/api/v1/channels/ops-telegram/test');
      assert.deepEqual(telegramTest.json, { delivered: true, status: 200 });

      // Update keeps the password; a failing test is shown failing, with the error and since when.
      fake.status.set(`/bot${BOT_TOKEN}/sendMessage`, 401);
      const failed = await api.request('POST', '/api/v1/channels/ops-telegram/test');
      assert.equal(failed.json.delivered, false);
      assert.equal(failed.json.status, 401);
      assert.ok(!failed.text.includes(BOT_TOKEN));
      const updated = await api.request('PATCH', '/api/v1/channels/ops-mail', { body: { to: ['ops@example.com', 'dba@example.com'] } });
      assert.equal(updated.status, 200, updated.text);
      assert.deepEqual(updated.json.settings.secretsSet, ['password']);

      // A target uses two shared channels by name; a name that is not a channel is refused at its field.
      const unknown = await api.request('PATCH', '/api/v1/targets/app', { body: { notifications: [{ kind: 'shared', channel: 'nope', on: ['failed'] }] } });
      assert.equal(unknown.status, 400);
      assert.equal(unknown.json.error.field, 'notifications.0.channel');
      const used = await api.request('PATCH', '/api/v1/targets/app', {
        body: {
          notifications: [
            { kind: 'shared', channel: 'ops-mail', on: ['failed'] },
            { kind: 'shared', channel: 'ops-telegram', on: ['failed'] },
          ],
        },
      });
      assert.equal(used.status, 200, used.text);
      const { run } = await finish('failed', { code: 'DUMP_FAILED', message: 'boom' });
      await waitFor('the mail of the failure', () => smtp.mails.length === 2, 30_000);
      assert.match(smtp.mails[1]!.text, new RegExp(`^Open: ${PUBLIC_URL}/#/runs/${run.id}$`, 'm'));
      assert.deepEqual(smtp.mails[1]!.to, ['ops@example.com', 'dba@example.com']);

      const list = await api.request('GET', '/api/v1/channels');
      const telegram = list.json.items.find((item: { name: string }) => item.name === 'ops-telegram');
      assert.deepEqual(telegram.usedBy, ['app']);
      assert.ok(telegram.health.failingSince, 'the telegram channel is shown failing');
      assert.match(telegram.health.lastError, /^HTTP 401/);
      const shownTarget = await api.request('GET', '/api/v1/targets/app');
      assert.deepEqual(
        shownTarget.json.notifications.map((channel: { channel: string; health: { failingSince: string | null } }) => [channel.channel, channel.health.failingSince !== null]),
        [
          ['ops-mail', false],
          ['ops-telegram', true],
        ],
      );
      const inUse = await api.request('DELETE', '/api/v1/channels/ops-mail');
      assert.equal(inUse.status, 409);
      assert.equal(inUse.json.error.code, 'CHANNEL_IN_USE');
      assert.match(inUse.json.error.message, /target\(s\) app/);

      // The CLI: list, show, add, test, remove; nothing it prints holds a secret.
      const env = { BACKSTOP_DATABASE_URL: catalog.url };
      const outputs: string[] = [];
      const cli = async (args: string[], expectedCode = 0) => {
        const result = await runCli(args, env);
        outputs.push(result.stdout, result.stderr);
        assert.equal(result.code, expectedCode, `${args.join(' ')}: ${result.stderr}`);
        return result;
      };
      const listed = await cli(['channel', 'list']);
      assert.match(listed.stdout, /ops-telegram\s+telegram\s+app\s+FAILING since/);
      assert.match(listed.stdout, /ops-mail\s+email\s+app\s+ok, last delivered/);
      const shown = await cli(['channel', 'show', 'ops-mail']);
      assert.match(shown.stdout, /secrets set: password \(never shown\)/);
      await cli(['channel', 'show', 'ops-ntfy', '--json']);
      await cli(['channel', 'list', '--json']);
      await cli(['channel', 'add', 'cli-ntfy', '--kind', 'ntfy', '--url', `${fake.url}/cli-topic`, '--token', 'tk_cli-token-never-shown']);
      const cliTest = await cli(['channel', 'test', 'cli-ntfy']);
      assert.match(cliTest.stdout, /^Test notification delivered to channel cli-ntfy \(HTTP 200\)\.$/m);
      assert.equal(fake.received.at(-1)!.headers.authorization, 'Bearer tk_cli-token-never-shown');
      const badFlag = await cli(['channel', 'add', 'bad', '--kind', 'email', '--smtp-host', '127.0.0.1', '--from', 'x@example.com'], 2);
      assert.match(badFlag.stderr, /--to: is required for a email channel/);
      const ownId = (await api.request('GET', '/api/v1/targets/app')).json.notifications[1].id;
      const targetTest = await cli(['channel', 'test', ownId, '--target', 'app'], 1);
      assert.match(targetTest.stdout, /FAILED: HTTP 401/);
      await cli(['target', 'show', 'app']);
      await cli(['target', 'show', 'app', '--json']);
      await cli(['target', 'update', 'app', '--notify-channel', 'cli-ntfy', '--notify-on', 'failed', '--skip-checks']);
      await cli(['channel', 'remove', 'ops-discord']);
      assert.equal((await api.request('GET', '/api/v1/channels/ops-discord')).status, 404);

      // A body's keys are the sender's text. The API refuses unknown ones before the operation;
      // the operation, which records even a refusal, keeps no key that is not shaped like a field.
      const hostileKey = await api.request('POST', '/api/v1/channels', { body: { name: 'hostile', kind: 'ntfy', url: `${fake.url}/t`, 'https://u:key-named-secret@h/x': 1 } });
      assert.equal(hostileKey.status, 400, hostileKey.text);
      await assert.rejects(
        addSharedChannel(catalog.pool, { name: 'hostile', kind: 'ntfy', url: `${fake.url}/t`, 'https://u:key-named-secret@h/x': 1 }),
        (error: Error & { code?: string }) => error.code === 'INVALID_INPUT',
      );
      // Every change is in the audit trail with who made it and which fields, never their values.
      const audit = (
        await catalog.pool.query<{ action: string; subject: string; actor_kind: string; outcome: string; row: string }>(
          `select action, subject, actor_kind, outcome, to_jsonb(a)::text as row from backstop.audit_log a where action like 'channel.%' order by id`,
        )
      ).rows;
      const changes = audit.map((entry) => `${entry.action} ${entry.subject} ${entry.actor_kind} ${entry.outcome}`);
      for (const expected of [
        'channel.create ops-mail token succeeded',
        'channel.update ops-mail token succeeded',
        'channel.delete ops-mail token refused',
        'channel.create cli-ntfy cli succeeded',
        'channel.delete ops-discord cli succeeded',
      ]) {
        assert.ok(changes.includes(expected), `the audit trail holds "${expected}": ${changes.join('; ')}`);
      }
      for (const entry of audit) assert.ok(!entry.row.includes('key-named-secret'), `an audit entry holds a body's key: ${entry.row.slice(0, 300)}`);
      for (const secret of [...SECRETS, 'tk_cli-token-never-shown']) {
        for (const entry of audit) assert.ok(!entry.row.includes(secret), `an audit entry holds ${secret}: ${entry.row.slice(0, 300)}`);
        for (const body of api.bodies) assert.ok(!body.includes(secret), `an API answer holds ${secret}: ${body.slice(0, 300)}`);
        for (const output of outputs) assert.ok(!output.includes(secret), `the CLI printed ${secret}: ${output.slice(0, 300)}`);
        for (const line of api.logs) assert.ok(!line.includes(secret), `the server logged ${secret}`);
      }
    });
  });
});
