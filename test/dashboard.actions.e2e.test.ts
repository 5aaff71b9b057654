/// <reference lib="dom" />
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { getRun } from '../src/db/runRecords.ts';
import { generateIdentity } from '../src/pipeline/age.ts';
import { openPage } from './support/browser.ts';
import { launchChromium } from './support/chromium.ts';
import { createSampleDatabase, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { backUpThroughApi, startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * The dashboard's actions in headless Chromium against a real server, catalog, worker and
 * backups: what the server cannot do is a disabled button with its reason (an encrypted
 * target's drill without an identity), refusals at their fields, a backup's file downloaded
 * byte for byte, a webhook made in the UI signed with the secret shown once and tested, the
 * restore history with its own outcomes, and a target's lifecycle.
 */

const WAIT = 60_000;

interface Receiver {
  url: string;
  received: { headers: http.IncomingHttpHeaders; body: string }[];
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const received: Receiver['received'] = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      received.push({ headers: request.headers, body });
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/backstop`,
    received,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('dashboard actions in headless Chromium', { timeout: 600_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let api: TestServer;
  let browser: Browser;
  let page: Page;
  let receiver: Receiver;
  let pageErrors: string[] = [];
  const key = generateIdentity();
  let sealedRun = '';
  let plainRun = '';

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(150);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-actions-ui-'));
    receiver = await startReceiver();
    // The server holds no age identity (no BACKSTOP_IDENTITY_FILE): its worker cannot decrypt.
    api = await startTestServer({ catalogUrl: catalog.url, worker: true, env: { BACKSTOP_STORE: `file://${storeDir}` } });
    for (const [name, encryptTo] of [
      ['vault', [key.recipient]],
      ['plain', []],
    ] as const) {
      const created = await api.request('POST', '/api/v1/targets', { body: { name, databaseUrl: source.url, storeUrl: `file://${storeDir}`, options: { encryptTo } } });
      assert.equal(created.status, 201, created.text);
    }
    sealedRun = await backUpThroughApi(api, 'vault');
    plainRun = await backUpThroughApi(api, 'plain');

    browser = await launchChromium();
    ({ page, pageErrors } = await openPage(browser, { acceptDownloads: true }));
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: api.url });
    await page.context().addInitScript((token) => sessionStorage.setItem('backstop.token', token), api.tokens.admin);
  });

  after(async () => {
    await browser?.close();
    await api?.close();
    await receiver?.close();
    await catalog?.close();
    await source?.drop();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  it("disables an encrypted target's drill, saying why, when the server holds no identity; the API refuses it and the target stays OK", async () => {
    await page.goto(`${api.url}/#/targets/vault`);
    const verify = page.getByRole('button', { name: 'Verify newest backup' });
    await verify.waitFor();
    assert.equal(await verify.isDisabled(), true);
    const reason = page.locator(`[id="${await verify.getAttribute('aria-describedby')}"]`);
    assert.match(await reason.innerText(), /encrypted, and the server holds no age identity to decrypt it/);
    assert.doesNotMatch(await reason.innerText(), /--|`|pg_restore/);
    // A plain target's drill stays possible.
    await page.goto(`${api.url}/#/targets/plain`);
    await page.locator('#action-verify-newest:enabled').waitFor();

    await page.goto(`${api.url}/#/runs/${sealedRun}`);
    const runVerify = page.getByRole('button', { name: 'Verify (restore drill)' });
    await runVerify.waitFor();
    assert.equal(await runVerify.isDisabled(), true);
    await page.locator('#action-verify-reason', { hasText: 'holds no age identity' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Restore…' }).isEnabled(), true);

    const refused = await api.request('POST', `/api/v1/runs/${sealedRun}/verify`, { token: api.tokens.operator });
    assert.equal(refused.status, 409);
    const { rows } = await catalog.pool.query(`select count(*)::int as n from backstop.runs where kind = 'verify'`);
    assert.equal(rows[0].n, 0, 'a drill was queued');
    await page.goto(`${api.url}/#/`);
    await page.locator('.target-card[data-target="vault"] [data-health="ok"]').waitFor();
  });

  it('restores an encrypted backup only with an identity, and shows a wrong one at its field', async () => {
    const destination = await createTestDatabase('vault_restored');
    try {
      await page.goto(`${api.url}/#/runs/${sealedRun}`);
      await page.getByRole('button', { name: 'Restore…' }).click();
      const dialog = page.getByRole('dialog', { name: 'Restore this backup' });
      await dialog.getByLabel('Database URL to restore into').fill(destination.url);
      await dialog.getByLabel(/to confirm/).fill('vault');
      await dialog.getByLabel('Accept a privileged role (optional)').fill('postgres');
      const restore = dialog.getByRole('button', { name: 'Restore', exact: true });
      // The server holds no identity: the field is required before anything is sent.
      assert.equal(await restore.isDisabled(), true);
      await dialog.locator('#restore-identity-help', { hasText: 'paste the identity of one of its recipients' }).waitFor();
      await dialog.getByLabel(/age identity/).fill(generateIdentity().identity);
      await restore.click();
      const error = dialog.locator('#restore-identity-error');
      await error.waitFor();
      assert.match(await error.innerText(), /does not decrypt this backup/);
      assert.equal(await dialog.getByLabel(/age identity/).getAttribute('aria-invalid'), 'true');
      assert.equal(await dialog.getByRole('alert').count(), 0, 'the field error is also a banner');

      await dialog.getByLabel(/age identity/).fill(key.identity);
      await restore.click();
      await page.locator('.timeline [data-kind="restored"]').waitFor({ timeout: WAIT });
      await page.getByText('Restore finished').waitFor();
    } finally {
      await destination.drop();
    }
  });

  it("downloads a backup's files; the bytes are the ones the manifest's SHA-256 names", async () => {
    await page.goto(`${api.url}/#/runs/${sealedRun}`);
    const run = await getRun(catalog.pool, sealedRun);
    const manifestBytes = await fs.readFile(path.join(storeDir, run.artifact!.prefix, 'manifest.json'));
    const manifest = JSON.parse(manifestBytes.toString('utf8')) as { files: { name: string; sha256: string; size: number }[] };
    for (const file of manifest.files) {
      const row = page.locator(`.files-table tr[data-file="${file.name}"]`);
      const [download] = await Promise.all([page.waitForEvent('download'), row.getByRole('button', { name: `Download ${file.name}` }).click()]);
      assert.equal(download.suggestedFilename(), file.name);
      const bytes = await fs.readFile((await download.path())!);
      assert.equal(bytes.length, file.size);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), file.sha256);
    }
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download manifest.json' }).click()]);
    assert.deepEqual(await fs.readFile((await download.path())!), manifestBytes);
    assert.equal(createHash('sha256').update(manifestBytes).digest('hex'), run.artifact!.manifest.sha256);

    // An operator sees the files, no download, and why.
    const operator = await browser.newContext();
    try {
      await operator.addInitScript((token) => sessionStorage.setItem('backstop.token', token), api.tokens.operator);
      const other = await operator.newPage();
      await other.goto(`${api.url}/#/runs/${sealedRun}`);
      await other.locator('.files-table tbody tr').first().waitFor();
      assert.equal(await other.getByRole('button', { name: /^Download / }).count(), 0);
      await other.locator('#download-reason', { hasText: 'needs the admin role' }).waitFor();
    } finally {
      await operator.close();
    }
  });

  it('gives a webhook made in the UI a signing secret shown once, and sends it a signed test notification', async () => {
    await page.goto(`${api.url}/#/targets/plain/edit`);
    await page.getByLabel('Its URL (write-only)').fill(receiver.url);
    await page.getByRole('button', { name: 'Save changes' }).click();
    const shown = page.getByRole('textbox', { name: 'Signing secret' });
    await shown.waitFor();
    const secret = await shown.inputValue();
    await page.getByRole('button', { name: 'Copy the secret' }).click();
    await page.getByText('Copied.').waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
    await page.getByRole('link', { name: 'Continue to plain' }).click();
    await page.waitForURL(/#\/targets\/plain$/);
    assert.ok(!(await page.content()).includes(secret), 'the secret is shown again');

    const channel = page.locator('.channels li').first();
    await channel.getByText('(signed)').waitFor();
    await channel.getByRole('button', { name: 'Send test notification' }).click();
    await channel.getByText('Delivered (the receiver answered 204).').waitFor();
    const delivery = receiver.received.at(-1)!;
    assert.equal(delivery.headers['x-backstop-event'], 'test');
    const expected = `sha256=${createHmac('sha256', secret).update(`${delivery.headers['x-backstop-timestamp']}.${delivery.body}`).digest('hex')}`;
    assert.equal(delivery.headers['x-backstop-signature'], expected);
  });

  it("lists a target's restores with their own outcome: a failed restore is red, in the history and in its backup's events", async () => {
    const destination = await createTestDatabase('plain_restored');
    try {
      for (const expected of ['restored', 'failed']) {
        // The second restore meets a database the first filled: it fails.
        const started = await api.request('POST', `/api/v1/runs/${plainRun}/restore`, { body: { databaseUrl: destination.url, privilegedRole: 'postgres' } });
        assert.equal(started.status, 202, started.text);
        await waitFor(
          `restore ${expected}`,
          async () => {
            const items = (await api.request('GET', '/api/v1/targets/plain/restores')).json.items as { id: string; status: string }[];
            return items.find((item) => item.id === started.json.restoreId)?.status === expected;
          },
          WAIT,
        );
      }
      // The page may already be this target's (the test before ends there): a hash change alone
      // would keep the history it fetched while a restore ran. Load it afresh.
      await page.goto(`${api.url}/#/targets/plain`);
      await page.reload();
      const rows = page.locator('#restores tbody tr');
      await rows.nth(1).waitFor();
      await rows.nth(0).locator('[data-restore="failed"]').waitFor();
      assert.equal(await rows.nth(0).locator('[data-restore]').getAttribute('data-restore'), 'failed');
      assert.match((await rows.nth(0).locator('[data-restore]').getAttribute('class')) ?? '', /status-failed/);
      assert.match(await rows.nth(0).innerText(), /RESTORE_TARGET_NOT_EMPTY/);
      assert.equal(await rows.nth(1).locator('[data-restore]').getAttribute('data-restore'), 'restored');

      await page.goto(`${api.url}/#/runs/${plainRun}`);
      const failed = page.locator('.timeline [data-kind="restore_failed"]');
      await failed.waitFor();
      assert.match((await failed.locator('.status').getAttribute('class')) ?? '', /status-failed/);
      assert.equal(await failed.locator('[data-status="succeeded"]').count(), 0, "the failed restore wears its backup's green badge");
    } finally {
      await destination.drop();
    }
  });

  it('shows every refusal of the target form next to its field, all at once', async () => {
    await page.goto(`${api.url}/#/targets/new`);
    await page.getByLabel('Name').fill('Not A Name');
    await page.getByLabel('Database URL').fill('mysql://nope');
    await page.getByLabel(/Encryption recipients/).fill('age1nope');
    await page.getByLabel('Cron expression').fill('every day');
    await page.getByLabel('Check that the database and the store can be reached before saving').uncheck();
    await page.getByRole('button', { name: 'Create target' }).click();
    for (const id of ['target-name', 'target-database-url', 'target-encrypt', 'target-cron']) {
      const message = page.locator(`#${id}-error`);
      await message.waitFor();
      assert.notEqual((await message.innerText()).trim(), '', id);
      assert.doesNotMatch(await message.innerText(), /body\/|must match pattern|`|--/);
      assert.equal(await page.locator(`#${id}`).getAttribute('aria-invalid'), 'true');
      assert.match((await page.locator(`#${id}`).getAttribute('aria-describedby')) ?? '', new RegExp(`${id}-error`));
    }
    await page.locator('#form-error', { hasText: 'Each field at fault says why' }).waitFor();
  });

  it('shows which database a target points at, never its password', async () => {
    await page.goto(`${api.url}/#/targets/plain`);
    const database = page.locator('#target-database');
    await database.waitFor();
    const url = new URL(source.url);
    assert.match(await database.innerText(), new RegExp(`${url.pathname.slice(1)} on ${url.hostname}:${url.port}`));
    if (url.password) assert.ok(!(await page.content()).includes(url.password), 'the password is on the page');
  });

  it('tests the connection check by check, pauses and resumes, renames and deletes a target, listing the backups it keeps', async () => {
    await page.goto(`${api.url}/#/targets/plain`);
    await page.getByRole('button', { name: 'Test connection' }).click();
    const result = page.locator('#test-result');
    await result.waitFor({ timeout: WAIT });
    assert.deepEqual(await result.locator('[data-check]').evaluateAll((items) => items.map((item) => [item.getAttribute('data-check'), item.getAttribute('data-ok')])), [
      ['store-url', 'true'],
      ['database', 'true'],
      ['pg-dump', 'true'],
      ['store-write', 'true'],
    ]);

    await page.getByRole('button', { name: 'Pause schedule' }).click();
    await page.locator('[data-paused="true"]').waitFor();
    assert.equal((await api.request('GET', '/api/v1/targets/plain')).json.paused, true);
    await page.getByRole('button', { name: 'Resume schedule' }).click();
    await page.getByRole('button', { name: 'Pause schedule' }).waitFor();
    assert.equal((await api.request('GET', '/api/v1/targets/plain')).json.paused, false);

    await page.getByRole('button', { name: 'Rename…' }).click();
    const rename = page.getByRole('dialog', { name: 'Rename plain' });
    await rename.getByLabel('New name').fill('vault');
    await rename.getByRole('button', { name: 'Rename' }).click();
    await rename.locator('#rename-name-error').waitFor();
    await rename.getByLabel('New name').fill('plain-two');
    await rename.getByRole('button', { name: 'Rename' }).click();
    await page.waitForURL(/#\/targets\/plain-two$/);
    assert.equal((await api.request('GET', '/api/v1/targets/plain-two')).status, 200);

    await page.getByRole('button', { name: 'Delete…' }).click();
    const remove = page.getByRole('dialog', { name: 'Delete plain-two' });
    const confirm = remove.getByRole('button', { name: 'Delete', exact: true });
    assert.equal(await confirm.isDisabled(), true);
    await remove.getByLabel(/to confirm/).fill('plain-two');
    await confirm.click();
    const deleted = page.locator('#deleted-target');
    await deleted.waitFor();
    const run = await getRun(catalog.pool, plainRun).catch(() => null);
    assert.equal(run, null, 'the run rows went with the target');
    assert.match(await deleted.innerText(), /backup(s)? stays? in/);
    assert.ok((await deleted.locator('.kept-backups li').count()) >= 1);
    assert.equal((await api.request('GET', '/api/v1/targets/plain-two')).status, 404);
  });

  it('no page error was logged', () => {
    assert.deepEqual(pageErrors, []);
  });
});
