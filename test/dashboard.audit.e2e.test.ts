/// <reference lib="dom" />
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { openPage } from './support/browser.ts';
import { launchChromium } from './support/chromium.ts';
import { createSampleDatabase, createTestCatalog, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startTestServer, type TestServer } from './support/server.ts';

/**
 * The audit trail in headless Chromium: an action done from the dashboard (a backup started,
 * then cancelled, from its pages) is found on the audit page with the token that did it, from
 * the dashboard and the browser's address; the page and its nav link are for admins only.
 */

describe('audit trail in the dashboard (headless Chromium)', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let api: TestServer;
  let browser: Browser;
  let page: Page;
  let pageErrors: string[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(20);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-audit-ui-'));
    // No worker: the backup started from the page stays queued, so cancelling it is certain.
    api = await startTestServer({ catalogUrl: catalog.url, env: { BACKSTOP_STORE: `file://${storeDir}` } });
    const created = await api.request('POST', '/api/v1/targets', { body: { name: 'webapp', databaseUrl: source.url } });
    assert.equal(created.status, 201, created.text);
    browser = await launchChromium();
    ({ page, pageErrors } = await openPage(browser));
    await page.context().addInitScript((token) => sessionStorage.setItem('backstop.token', token), api.tokens.operator);
  });

  after(async () => {
    await browser?.close();
    await api?.close();
    await catalog?.close();
    await source?.drop();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  it('an operator starts and cancels a backup from the dashboard; an admin finds both on the audit page, with who and from where', async () => {
    await page.goto(`${api.url}/#/targets/webapp`);
    await page.getByRole('button', { name: 'Back up now' }).click();
    await page.waitForURL(/#\/runs\/[0-9a-f-]{36}$/);
    const runId = page.url().split('/').pop()!;
    await page.getByRole('button', { name: 'Cancel run' }).click();
    await page.locator('.status', { hasText: 'cancelled' }).first().waitFor();
    // An operator has no audit link, and the page says why.
    assert.equal(await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit' }).count(), 0);
    await page.goto(`${api.url}/#/audit`);
    await page.getByText('Only admins can read the audit trail.').waitFor();

    const admin = await browser.newContext();
    try {
      await admin.addInitScript((token) => sessionStorage.setItem('backstop.token', token), api.tokens.admin);
      const adminPage = await admin.newPage();
      await adminPage.goto(`${api.url}/#/`);
      await adminPage.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit' }).click();
      await adminPage.waitForURL(/#\/audit$/);
      for (const action of ['run.trigger', 'run.cancel']) {
        const row = adminPage.locator(`.audit-table tr[data-action="${action}"]`);
        await row.waitFor();
        assert.equal(await row.count(), 1, action);
        assert.equal(await row.locator('.audit-actor').innerText(), 'Token test operator (operator)');
        assert.equal(await row.locator('.audit-from').innerText(), 'dashboard 127.0.0.1');
        assert.equal(await row.locator('.audit-outcome').innerText(), 'succeeded');
      }
      const cancelSubject = adminPage.locator('.audit-table tr[data-action="run.cancel"] .audit-subject a');
      assert.equal(await cancelSubject.getAttribute('href'), `#/runs/${runId}`);
      // The target created through the API (no dashboard header) says so.
      assert.equal(await adminPage.locator('.audit-table tr[data-action="target.create"] .audit-from').innerText(), 'api 127.0.0.1');

      // Filters live in the URL and go to the API.
      await adminPage.getByLabel('Action').selectOption('target');
      await adminPage.waitForURL(/#\/audit\?action=target$/);
      await adminPage.locator('.audit-table tr[data-action="run.trigger"]').waitFor({ state: 'detached' });
      assert.equal(await adminPage.locator('.audit-table tbody tr').count(), 1);
    } finally {
      await admin.close();
    }
    assert.deepEqual(pageErrors, []);
  });
});
