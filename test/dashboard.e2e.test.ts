/// <reference lib="dom" />
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { getRun } from '../src/db/runRecords.ts';
import { getTargetWithSecret } from '../src/db/targets.ts';
import { layoutProblems, openPage } from './support/browser.ts';
import { launchChromium } from './support/chromium.ts';
import { startCli, type CliProcess } from './support/cli.ts';
import { adminQuery, createSampleDatabase, createTestCatalog, createTestDatabase, dumpSessions, holdTableLock, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { closedPort, startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * The dashboard end to end, in headless Chromium (Debian's), against a real server, catalog,
 * pg_dump and a `backstop worker` child process: sign in, create and edit a target, watch a
 * backup go queued → running → succeeded without reloading, kill -9 the worker and watch the
 * run turn timed_out, cancel, restore with a confirmation, charts, roles, a phone-width page.
 * A table lock makes pg_dump wait exactly as long as a step needs; waits poll the page with
 * deadlines, never sleeps.
 */

const WAIT = 30_000;

describe('dashboard in headless Chromium', { timeout: 600_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let api: TestServer;
  let browser: Browser;
  let page: Page;
  let worker: CliProcess | undefined;
  let lock: { release(): Promise<void> } | undefined;
  let pageErrors: string[] = [];
  let succeededRunId = '';

  const workerEnv = () => ({
    BACKSTOP_DATABASE_URL: catalog.url,
    BACKSTOP_STORE: `file://${storeDir}`,
    // A separate process with its heartbeat in a thread: a short lease, still safe on a busy machine.
    BACKSTOP_LEASE_TTL: '4',
    BACKSTOP_HEARTBEAT_INTERVAL: '0.5',
    BACKSTOP_REAPER_INTERVAL: '0.5',
  });
  const startWorker = () => {
    worker = startCli(['worker', '--poll-interval', '0.1'], workerEnv());
    return worker;
  };
  const stopWorker = async () => {
    if (worker && worker.child.exitCode === null && worker.child.signalCode === null) worker.child.kill('SIGKILL');
    await worker?.exited;
    worker = undefined;
  };

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(300);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-dashboard-store-'));
    // No in-process worker: runs are executed by a `backstop worker` child this test can kill.
    // The server's reaper runs every 0.5 s (test/support/server.ts).
    api = await startTestServer({ catalogUrl: catalog.url, env: { BACKSTOP_STORE: `file://${storeDir}`, BACKSTOP_ALARM_INTERVAL: '0.5' } });
    browser = await launchChromium();
    ({ page, pageErrors } = await openPage(browser));
  });

  afterEach(async () => {
    await lock?.release();
    lock = undefined;
  });

  after(async () => {
    await lock?.release();
    await stopWorker();
    await browser?.close();
    await api?.close();
    await catalog?.close();
    await source?.drop();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  const waitForStatus = (selector: string, status: string, timeout = WAIT) => page.locator(`${selector} [data-status="${status}"]`).first().waitFor({ timeout });
  const currentRunId = () => /#\/runs\/([0-9a-f-]{36})/.exec(page.url())?.[1] ?? '';

  /** Records every status text shown in `selector`, from now on, without reloading the page. */
  const recordStatuses = (selector: string) =>
    page.evaluate((selector) => {
      const seen: string[] = [];
      const element = document.querySelector(selector)!;
      const note = () => {
        const text = element.textContent?.trim() ?? '';
        if (text && seen.at(-1) !== text) seen.push(text);
      };
      note();
      new MutationObserver(note).observe(element, { subtree: true, childList: true, characterData: true });
      (window as unknown as { seenStatuses: string[] }).seenStatuses = seen;
      // A page that reloads loses this marker.
      (window as unknown as { sameDocument: boolean }).sameDocument = true;
    }, selector);
  const recordedStatuses = () => page.evaluate(() => ({ seen: (window as any).seenStatuses as string[], sameDocument: (window as any).sameDocument === true }));

  it('signs in with an API token, using the keyboard only; a bad token is refused with what to do', async () => {
    await page.goto(api.url);
    const csp = (await page.request.get(api.url)).headers()['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self' 'sha256-/);
    await page.getByLabel('API token').waitFor();
    // The token field is the first stop of the keyboard.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'token');
    await page.keyboard.type('bst_not-a-real-token');
    await page.keyboard.press('Enter');
    await page.getByRole('alert').filter({ hasText: 'unknown or was revoked' }).waitFor();
    await page.getByLabel('API token').fill(api.tokens.admin);
    await page.keyboard.press('Tab');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
    assert.notEqual(outline, 'none', 'the focused button shows no focus ring');
    await page.keyboard.press('Enter');
    await page.locator('#page-title', { hasText: 'Overview' }).waitFor();
    await page.getByText('No targets yet').waitFor();
    assert.match(await page.locator('.who').innerText(), /test admin\s+admin/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('backstop.token')), api.tokens.admin);
  });

  it('creates a target from the form; the database URL is stored and never shown', async () => {
    await page.getByRole('link', { name: 'Targets', exact: true }).click();
    await page.getByRole('link', { name: 'New target' }).click();
    await page.getByLabel('Name').fill('shop');
    await page.getByLabel('Database URL').fill(source.url);
    await page.getByLabel('Store URL').fill(`file://${storeDir}`);
    await page.getByLabel('Cron expression').fill('every day');
    await page.getByRole('button', { name: 'Create target' }).click();
    // Bad input: the API's message, which says what to write instead, at the field it names.
    await page.locator('#target-cron-error', { hasText: 'is not a cron expression' }).waitFor();
    assert.equal(await page.getByLabel('Cron expression').getAttribute('aria-invalid'), 'true');
    await page.getByLabel('Cron expression').fill('0 3 * * *');
    await page.getByLabel('Time zone').fill('Europe/Paris');
    await page.getByLabel('Keep the last').fill('5');
    await page.getByRole('button', { name: 'Create target' }).click();
    await page.locator('#page-title', { hasText: 'shop' }).waitFor();
    assert.match(page.url(), /#\/targets\/shop$/);
    const target = await api.request('GET', '/api/v1/targets/shop');
    assert.deepEqual(target.json.schedule, { cron: '0 3 * * *', timezone: 'Europe/Paris' });
    assert.deepEqual(target.json.retention, { keepLast: 5 });
    assert.equal((await getTargetWithSecret(catalog.pool, target.json.id)).databaseUrl, source.url);
    assert.ok(!(await page.content()).includes(source.url), 'the database URL is on the page');
  });

  it('edits a target: the secret field starts empty and, left blank, keeps the stored URL', async () => {
    await page.getByRole('link', { name: 'Edit' }).click();
    const databaseUrl = page.getByLabel(/Database URL/);
    await databaseUrl.waitFor();
    assert.equal(await databaseUrl.inputValue(), '');
    assert.equal(await page.getByLabel('Cron expression').inputValue(), '0 3 * * *');
    await page.getByLabel('Keep the last').fill('7');
    await page.getByLabel('Daily').fill('3');
    await page.getByLabel('Its URL (write-only)').fill('https://hooks.example.com/hook-SECRET-9f2');
    await page.getByRole('button', { name: 'Save changes' }).click();
    // A new webhook gets a signing secret, shown this once.
    const shown = page.getByRole('textbox', { name: 'Signing secret' });
    await shown.waitFor();
    const secret = await shown.inputValue();
    assert.match(secret, /^[0-9a-f]{64}$/);
    await page.getByRole('link', { name: 'Continue to shop' }).click();
    await page.waitForURL(/#\/targets\/shop$/);
    await page.getByRole('heading', { name: 'Settings' }).waitFor();
    await page.getByText('keep last 7, 3 daily').waitFor();
    await page.getByText('webhook on failed, timed out, recovered, alarm (signed)').waitFor();
    assert.ok(!(await page.content()).includes(secret), 'the secret is shown again');
    const id = (await api.request('GET', '/api/v1/targets/shop')).json.id;
    const stored = await getTargetWithSecret(catalog.pool, id);
    assert.equal(stored.databaseUrl, source.url);
    assert.deepEqual(stored.retention, { keepLast: 7, daily: 3 });
    assert.equal((stored.notificationChannels[0] as { url?: string; secret?: string }).url, 'https://hooks.example.com/hook-SECRET-9f2');
    assert.equal((stored.notificationChannels[0] as { url?: string; secret?: string }).secret, secret);

    // Editing again shows neither secret, and saving keeps both.
    await page.getByRole('link', { name: 'Edit' }).click();
    await page.getByLabel('Its URL (write-only)').waitFor();
    assert.ok(!(await page.content()).includes('hook-SECRET-9f2'), 'the channel URL is on the page');
    assert.equal(await page.getByLabel('Its URL (write-only)').inputValue(), '');
    await page.getByLabel('Time zone').fill('UTC');
    await page.getByRole('button', { name: 'Save changes' }).click();
    // The edit page's title also says "shop": wait for the target's own page.
    await page.waitForURL(/#\/targets\/shop$/);
    await page.getByRole('heading', { name: 'Settings' }).waitFor();
    const again = await getTargetWithSecret(catalog.pool, id);
    assert.equal(again.schedule?.timezone, 'UTC');
    assert.equal(again.databaseUrl, source.url);
    assert.equal((again.notificationChannels[0] as { url?: string; secret?: string }).url, 'https://hooks.example.com/hook-SECRET-9f2');
    assert.equal((again.notificationChannels[0] as { url?: string; secret?: string }).secret, secret);
  });

  it('triggers a backup and shows it go queued → running → succeeded live, without reloading', async () => {
    lock = await holdTableLock(source.url, 'orders');
    // No worker yet: the run stays queued until the test starts one.
    await page.getByRole('button', { name: 'Back up now' }).click();
    await page.waitForURL(/#\/runs\/[0-9a-f-]{36}$/);
    const runId = currentRunId();
    await waitForStatus('#run-status', 'queued');
    await recordStatuses('#run-status');
    await page.getByText('Waiting for a worker').waitFor();

    startWorker();
    await waitForStatus('#run-status', 'running');
    await waitFor('pg_dump of the run connected', async () => (await dumpSessions(runId)) > 0, WAIT);
    await page.locator('#run-progress').waitFor();
    await page.locator('.timeline [data-kind="claimed"]').waitFor();
    // Measured with the catalog's clock only: nothing until the run ends, never below zero.
    assert.equal(await page.locator('#run-duration').innerText(), 'still running');
    await lock.release();
    lock = undefined;
    await waitForStatus('#run-status', 'succeeded');
    await page.locator('#run-duration', { hasText: /^\d/ }).waitFor();
    const finished = await getRun(catalog.pool, runId);
    const seconds = (Date.parse(finished.finishedAt!) - Date.parse(finished.startedAt!)) / 1000;
    const shown = /^(\d+(?:\.\d+)?) (ms|s)$/.exec(await page.locator('#run-duration').innerText());
    assert.ok(shown, `duration shown as "${await page.locator('#run-duration').innerText()}"`);
    const shownSeconds = Number(shown[1]) / (shown[2] === 'ms' ? 1000 : 1);
    assert.ok(Math.abs(shownSeconds - seconds) <= 0.05 + seconds * 0.05, `shown ${shownSeconds} s, the catalog says ${seconds} s`);

    const { seen, sameDocument } = await recordedStatuses();
    assert.ok(sameDocument, 'the page was reloaded');
    assert.deepEqual(seen, ['queued', 'running', 'succeeded']);
    // Files with sizes and checksums, as the catalog has them.
    const run = await getRun(catalog.pool, runId);
    for (const file of [...run.artifact!.files, run.artifact!.manifest]) {
      const row = page.locator('.files-table tbody tr', { hasText: file.name });
      await row.waitFor();
      assert.match(await row.innerText(), new RegExp(file.sha256));
    }
    await page.locator('.timeline [data-kind="finished"]').waitFor();
    succeededRunId = runId;
  });

  it('shows a run in the list turn timed_out live when its worker is killed with SIGKILL', async () => {
    await page.getByRole('link', { name: 'Runs', exact: true }).click();
    await page.locator('#page-title', { hasText: 'Runs' }).waitFor();
    await page.locator(`tr[data-run="${succeededRunId}"]`).waitFor();
    await page.locator('.live-on').waitFor();
    lock = await holdTableLock(source.url, 'orders');
    const triggered = await api.request('POST', '/api/v1/runs', { token: api.tokens.operator, body: { target: 'shop' } });
    assert.equal(triggered.status, 201, triggered.text);
    const runId = triggered.json.id as string;
    // The new run appears by itself (the feed of all runs), then turns running.
    const row = `tr[data-run="${runId}"]`;
    await page.locator(row).waitFor({ timeout: WAIT });
    await recordStatuses(`${row} .run-status`);
    await waitForStatus(row, 'running');
    await waitFor('pg_dump of the run connected', async () => (await dumpSessions(runId)) > 0, WAIT);

    const killed = worker!;
    killed.child.kill('SIGKILL');
    assert.equal((await killed.exited).signal, 'SIGKILL');
    worker = undefined;
    await waitForStatus(row, 'timed_out');
    const { seen, sameDocument } = await recordedStatuses();
    assert.ok(sameDocument, 'the page was reloaded');
    assert.deepEqual(seen.slice(-2), ['running', 'timed out']);
    assert.equal((await getRun(catalog.pool, runId)).error?.code, 'LEASE_EXPIRED');

    // Its page says what happened in plain words.
    await page.locator(`${row} a[href="#/runs/${runId}"]`).click();
    await page.locator('.run-error-plain', { hasText: 'stopped reporting' }).waitFor();
    await page.locator('.run-error-detail', { hasText: 'LEASE_EXPIRED' }).waitFor();
    await lock.release();
    lock = undefined;
    startWorker();
  });

  it('cancels a running backup from its page', async () => {
    lock = await holdTableLock(source.url, 'orders');
    await page.goto(`${api.url}/#/targets/shop`);
    await page.getByRole('button', { name: 'Back up now' }).click();
    await page.waitForURL(/#\/runs\/[0-9a-f-]{36}$/);
    const runId = currentRunId();
    await waitForStatus('#run-status', 'running');
    await waitFor('pg_dump of the run connected', async () => (await dumpSessions(runId)) > 0, WAIT);
    await recordStatuses('#run-status');
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await waitForStatus('#run-status', 'cancelled');
    const { seen } = await recordedStatuses();
    assert.equal(seen.at(-1), 'cancelled');
    assert.equal(await page.getByRole('button', { name: 'Cancel run' }).count(), 0);
    await page.locator('.run-error-detail', { hasText: 'CANCELLED' }).waitFor();
  });

  it('restores a backup into a database the user types, after typing the target name to confirm', async () => {
    const destination = await createTestDatabase('restored');
    try {
      await page.goto(`${api.url}/#/runs/${succeededRunId}`);
      await page.getByRole('button', { name: 'Restore…' }).click();
      const dialog = page.getByRole('dialog', { name: 'Restore this backup' });
      await dialog.waitFor();
      await dialog.getByLabel('Database URL to restore into').fill(destination.url);
      const restore = dialog.getByRole('button', { name: 'Restore', exact: true });
      assert.equal(await restore.isDisabled(), true, 'restore allowed before confirmation');
      await dialog.getByLabel(/to confirm/).fill('sho');
      assert.equal(await restore.isDisabled(), true);
      await dialog.getByLabel(/to confirm/).fill('shop');
      // The test server's role is a superuser: refused, saying what to do, until accepted by name.
      await restore.click();
      await dialog.getByRole('alert').filter({ hasText: 'RESTORE_ROLE_PRIVILEGED' }).waitFor();
      // In the dashboard's words, pointing at the field that accepts the role (not at the API's).
      const refusal = await dialog.getByRole('alert').innerText();
      assert.match(refusal, /owns the destination database and nothing more, or accept "postgres" by typing its name below/);
      assert.doesNotMatch(refusal, /privilegedRole|`/);
      await dialog.getByLabel(/Accept a privileged role/).fill('postgres');
      await restore.click();
      await page.locator('.timeline [data-kind="restored"]').waitFor({ timeout: 60_000 });
      await page.getByText('Restore finished').waitFor();
      const [row] = await adminQuery<{ count: string }>('select count(*) as count from orders', [], destination.url);
      assert.equal(Number(row!.count), 300);
      assert.ok(!(await page.content()).includes(destination.url), 'the database URL stayed on the page');
    } finally {
      await destination.drop();
    }
  });

  it("draws a target's backup size and duration over time", async () => {
    await page.goto(`${api.url}/#/targets/shop`);
    await page.locator('#chart-size circle.point').first().waitFor();
    assert.equal(await page.locator('#chart-size circle.point').count(), 1);
    // The timed-out run drew a cross in the duration chart, next to the good backup's point.
    await page.locator('#chart-duration .point-bad').first().waitFor();
    assert.equal(await page.locator('#chart-duration circle.point').count(), 1);
    assert.match((await page.locator('#chart-size desc').textContent()) ?? '', /latest .*(B|KiB|MiB)/);
  });

  it('the overview puts a failing target first and says why', async () => {
    const port = await closedPort();
    const created = await api.request('POST', '/api/v1/targets', {
      body: { name: 'broken', databaseUrl: `postgres://u:p@127.0.0.1:${port}/x`, storeUrl: `file://${storeDir}`, checks: false },
    });
    assert.equal(created.status, 201, created.text);
    const triggered = await api.request('POST', '/api/v1/runs', { body: { target: 'broken' } });
    await waitFor('the broken backup failed', async () => (await getRun(catalog.pool, triggered.json.id)).status === 'failed', WAIT);
    await page.getByRole('link', { name: 'Overview' }).first().click();
    const first = page.locator('.target-card').first();
    await first.locator('[data-health="failing"]').waitFor();
    assert.equal(await first.getAttribute('data-target'), 'broken');
    assert.match(await first.innerText(), /last backup failed \(DATABASE_UNREACHABLE\)/);
    const shop = page.locator('.target-card[data-target="shop"]');
    assert.match(await shop.innerText(), /Newest good backup\s+\d+ (s|min) ago/);
    assert.match(await shop.innerText(), /Next scheduled run\s+in /);
  });

  it("a target's page shows its active alarms, with when they began and what to do", async () => {
    const updated = await api.request('PATCH', '/api/v1/targets/broken', { body: { maxBackupAge: 1 } });
    assert.equal(updated.status, 200, updated.text);
    assert.equal(updated.json.maxBackupAge, 1);
    await waitFor(
      'the backup_overdue alarm',
      async () => (await api.request('GET', '/api/v1/alarms?target=broken')).json.items.some((alarm: { kind: string }) => alarm.kind === 'backup_overdue'),
      WAIT,
      200,
    );
    await page.goto(`${api.url}/#/targets/broken`);
    const alarms = page.locator('#active-alarms');
    await alarms.locator('[data-alarm="backup_overdue"]').waitFor();
    assert.match(await alarms.innerText(), /backup_overdue, since .*broken has no good backup/);
    assert.match(await alarms.innerText(), /What to do: .*backstop trigger broken/);
    assert.equal(await page.locator('#active-alarms').count(), 1);
    await page.goto(`${api.url}/#/targets/shop`);
    await page.locator('#chart-size').waitFor();
    assert.equal(await page.locator('#active-alarms').count(), 0, 'a target without alarms shows none');
    // Back where the tests after this one expect the page: the overview.
    await page.getByRole('link', { name: 'Overview' }).first().click();
    await page.locator('.target-card').first().waitFor();
  });

  it('is readable on a phone (390×844): nothing scrolls sideways, no word is cut in two', async () => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 3 });
    try {
      await phone.addInitScript((token) => sessionStorage.setItem('backstop.token', token), api.tokens.admin);
      const small = await phone.newPage();
      for (const [hash, ready] of [
        ['#/', '.target-card'],
        [`#/runs/${succeededRunId}`, '.files-table tbody tr'],
        ['#/targets/shop', '#chart-size svg'],
        ['#/targets/shop', '#restores tbody tr'],
        ['#/targets/shop/edit', '#target-cron'],
        ['#/targets', '.targets-table tbody tr'],
        ['#/runs', 'tr[data-run]'],
      ] as const) {
        await small.goto(`${api.url}/${hash}`);
        await small.locator(ready).first().waitFor();
        const problems = await layoutProblems(small);
        assert.equal(problems.pageScroll, null, `${hash} scrolls sideways on a phone`);
        assert.deepEqual(problems.sideways, [], `${hash}: content wider than the phone`);
        assert.deepEqual(problems.brokenWords, [], `${hash}: words cut in two`);
      }
    } finally {
      await phone.close();
    }
  });

  it('a viewer sees no button that acts, and the API refuses it anyway', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByText('You are logged out').waitFor();
    await page.getByLabel('API token').fill(api.tokens.viewer);
    await page.keyboard.press('Enter');
    await page.locator('#page-title', { hasText: 'Overview' }).waitFor();
    await page.locator('.target-card').first().waitFor();

    await page.goto(`${api.url}/#/targets/shop`);
    await page.locator('#chart-size svg').waitFor();
    await page.goto(`${api.url}/#/runs/${succeededRunId}`);
    await page.locator('.files-table').waitFor();
    await page.goto(`${api.url}/#/targets`);
    await page.locator('td a', { hasText: 'shop' }).waitFor();
    // Every button that acts is disabled and says why; no link that acts is left.
    for (const hash of ['#/targets/shop', `#/runs/${succeededRunId}`, '#/targets', '#/runs', '#/']) {
      await page.goto(`${api.url}/${hash}`);
      await page.locator('#page-title').waitFor();
      await page.locator('.loading').waitFor({ state: 'detached' });
      if (hash !== '#/targets' && hash !== '#/runs' && hash !== '#/') await page.locator('main button').first().waitFor();
      const enabled = await page.locator('main button:enabled, main a.button').allInnerTexts();
      // "Load older runs" only reads.
      assert.deepEqual(
        enabled.filter((text) => !/Load older/.test(text)),
        [],
        `${hash} offers ${enabled.join(', ')}`,
      );
      for (const button of await page.locator('main button:disabled').all()) {
        const reasonId = await button.getAttribute('aria-describedby');
        assert.ok(reasonId, `${hash}: "${await button.innerText()}" is disabled without a reason`);
        assert.match(await page.locator(`[id="${reasonId.split(' ')[0]}"]`).innerText(), /needs the (operator|admin) role/);
      }
    }
    await page.goto(`${api.url}/#/targets/shop`);
    assert.equal(await page.getByRole('button', { name: 'Back up now' }).isDisabled(), true);
    await page.locator('#action-backup-reason', { hasText: 'Backing up needs the operator role' }).waitFor();
    await page.goto(`${api.url}/#/targets/new`);
    await page.getByText('Only an admin token').waitFor();
    assert.equal(await page.locator('form').count(), 0);

    const status = await page.evaluate(async () => {
      const response = await fetch('/api/v1/runs', {
        method: 'POST',
        headers: { authorization: `Bearer ${sessionStorage.getItem('backstop.token')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ target: 'shop' }),
      });
      return response.status;
    });
    assert.equal(status, 403);
  });

  it('a revoked token sends the user back to the sign-in page', async () => {
    const tokens = await api.request('GET', '/api/v1/tokens');
    const viewer = tokens.json.items.find((token: { name: string }) => token.name === 'test viewer');
    assert.equal((await api.request('DELETE', `/api/v1/tokens/${viewer.id}`)).status, 200);
    // Any request with the revoked token signs the page out: navigating asks the API again, but
    // a live event stream may reconnect first and sign out before a click could land, so the
    // navigation is made through the URL rather than by clicking a link that may already be gone.
    await page.evaluate(() => {
      location.hash = '#/runs';
    });
    await page.getByText('Your session ended').waitFor();
    await page.getByLabel('API token').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('backstop.token')), null);
  });

  it('no page error was logged', () => {
    assert.deepEqual(pageErrors, []);
  });
});
