/// <reference lib="dom" />
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { trackRestoreProgress } from '../src/operations/trackRestoreProgress.ts';
import { openPage } from './support/browser.ts';
import { launchChromium } from './support/chromium.ts';
import { addContinuousTargetThroughApi, currentLsn, dropSourceWithSlots, waitForWindowTo } from './support/continuous.ts';
import { adminQuery, adminUrl, createTestCatalog, createTestDatabase, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { startTestServer, type TestServer } from './support/server.ts';

/**
 * A continuous target on the dashboard, in headless Chromium, against a real server whose
 * worker takes the base backup and whose streamer stores the changes: its page shows the
 * stream, the RPO against its bound, the window, the limits and the tables not continuously
 * protected; an operator restores it to a time between two changes from the page.
 */

const WAIT = 30_000;

describe('a continuous target on the dashboard', { timeout: 600_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let destination: TestDatabase;
  let storeDir: string;
  let api: TestServer;
  let browser: Browser;
  let page: Page;
  let pageErrors: string[] = [];
  /** A time after the first change's commit and before the second's. */
  let between = '';
  let baseRunId = '';

  before(async () => {
    catalog = await createTestCatalog();
    source = await createTestDatabase('contuisrc');
    destination = await createTestDatabase('contuidst');
    await adminQuery(
      `create table items (id int primary key, name text not null);
       insert into items select g, 'item ' || g from generate_series(1, 5) g;
       create table notes (body text);`,
      [],
      source.url,
    );
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-continuous-ui-'));
    api = await startTestServer({ catalogUrl: catalog.url, worker: true, env: { BACKSTOP_STORE: `file://${storeDir}` } });
    const target = new URL(destination.url);
    baseRunId = await addContinuousTargetThroughApi(api, {
      name: 'cont-ui',
      databaseUrl: source.url,
      storeUrl: `file://${path.join(storeDir, 'store')}`,
      options: { restoreTo: [`${target.hostname}:${target.port || '5432'}${target.pathname}`] },
      continuous: { segmentSeconds: 1, maxRpoSeconds: 600 },
    });
    // Two changes after the base, with a known time between them.
    await adminQuery("insert into items values (101, 'first change')", [], source.url);
    between = (await adminQuery<{ at: string }>(`select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at`, [], source.url))[0]!.at;
    await adminQuery("insert into items values (102, 'second change')", [], source.url);
    await waitForWindowTo(api, 'cont-ui', source.url, await currentLsn(source.url));

    browser = await launchChromium();
    ({ page, pageErrors } = await openPage(browser));
    // An operator: a point-in-time restore is an operator's action.
    await page.context().addInitScript((token) => sessionStorage.setItem('backstop.token', token), api.tokens.operator);
  });

  after(async () => {
    await browser?.close();
    await api?.close();
    if (source) await dropSourceWithSlots(source);
    await destination?.drop();
    await catalog?.close();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
  });

  it('shows the stream, the RPO against its bound, the window, every limit, the unprotected table with its fix and the settings', async () => {
    const shown = (await api.request('GET', '/api/v1/targets/cont-ui')).json;
    await page.goto(`${api.url}/#/targets/cont-ui`);
    const panel = page.getByRole('region', { name: 'Continuous backup' });
    await panel.waitFor({ timeout: WAIT });
    assert.equal(await panel.locator('#continuity-state').getAttribute('data-state'), 'streaming');

    // The RPO: the server's figure, against the target's bound (600 s), and under it.
    const rpoText = await panel.locator('#continuity-rpo').innerText();
    const rpo = /^([\d.]+) (ms|s)$/.exec(rpoText);
    assert.ok(rpo, `an RPO in seconds: ${rpoText}`);
    const seconds = Number(rpo[1]) / (rpo[2] === 'ms' ? 1000 : 1);
    assert.ok(Math.abs(seconds - shown.continuity.rpoSeconds) <= 10, `${seconds} s shown, ${shown.continuity.rpoSeconds} s answered`);
    assert.match(await panel.innerText(), /bound 10 min 0 s/);
    assert.equal(await panel.locator('#continuity-rpo').getAttribute('data-rpo-over'), 'false');

    // The window: each range from the base to the newest stored commit, as the API says.
    const ranges = panel.locator('#continuity-window li');
    assert.equal(await ranges.count(), shown.continuity.window.ranges.length);
    assert.equal(await ranges.first().getAttribute('data-from'), shown.continuity.window.ranges[0].from.at);
    assert.equal(await ranges.last().getAttribute('data-to'), shown.continuity.window.to.at);
    assert.ok(Date.parse(shown.continuity.window.to.at) > Date.parse(between), 'the window reaches past the time between the changes');

    // Every limit with its message; the table without a key, with its fix.
    const limits = panel.locator('#continuity-limits li');
    assert.deepEqual(
      await limits.evaluateAll((items) => items.map((item) => item.getAttribute('data-limit'))),
      shown.continuity.window.limits.map((limit: { kind: string }) => limit.kind),
    );
    assert.match(await panel.locator('#continuity-limits [data-limit="unprotected_tables"]').innerText(), /public\.notes/);
    const unprotected = panel.locator('#continuity-unprotected [data-table="public.notes"]');
    const fix = await unprotected.innerText();
    assert.match(fix, /no primary key and no replica identity/);
    assert.match(fix, /Fix:\s+ALTER TABLE public\.notes ADD PRIMARY KEY \(…\), or ALTER TABLE public\.notes REPLICA IDENTITY FULL, then have an administrator turn continuity on again/);
    assert.doesNotMatch(await panel.innerText(), /backstop |--continuous|\/api\//, 'no command line on the dashboard');

    const settings = await panel.locator('#continuity-settings').innerText();
    assert.match(settings, /A segment closes after\s+1\.0 s or 16 MiB/);
    assert.match(settings, /Maximum RPO\s+10 min 0 s/);
    assert.match(settings, new RegExp(shown.continuity.slot));

    // The targets list: the RPO of a continuous target.
    await page.goto(`${api.url}/#/targets`);
    const cell = page.locator('.targets-table td[data-label="RPO"]').first();
    await cell.waitFor({ timeout: WAIT });
    assert.equal(await cell.getAttribute('data-rpo'), 'streaming');
    assert.match(await cell.innerText(), /\d+(\.\d)? (ms|s) \(bound 10 min 0 s\)/);
  });

  it('an operator restores it to a time between two changes from the page: the first change is there, the second is not', async () => {
    await page.goto(`${api.url}/#/targets/cont-ui`);
    await page.getByRole('button', { name: 'Restore to a point in time…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Restore to a point in time' });
    await dialog.waitFor();
    const point = dialog.getByLabel('Point in time');
    assert.equal(await point.inputValue(), 'latest', 'the default point is the latest');
    await point.fill(between);
    await dialog.getByLabel('Database URL to restore into').fill(destination.url);
    await dialog.getByLabel(/Accept a privileged role/).fill(decodeURIComponent(new URL(adminUrl()).username));
    const restore = dialog.getByRole('button', { name: 'Restore', exact: true });
    assert.equal(await restore.isDisabled(), true, 'restore allowed before confirmation');
    await dialog.getByLabel(/to confirm/).fill('cont-ui');
    await restore.click();
    await page.locator('#restore-started').waitFor({ timeout: WAIT });
    assert.match(await page.locator('#restore-started').innerText(), new RegExp(`Restoring cont-ui to ${between.replace(/[.]/g, '\\.')} into`));

    // The restore history shows it end restored, with the point it reached.
    const row = page.locator('.restores-table tbody tr').first();
    await row.locator('[data-restore="restored"]').waitFor({ timeout: 120_000 });
    assert.match(await row.innerText(), /restored to .* into .*1 transaction\(s\) replayed; reached LSN/);
    const rows = await adminQuery<{ id: number }>('select id from items where id > 100 order by id', [], destination.url);
    assert.deepEqual(
      rows.map((item) => item.id),
      [101],
    );
    assert.ok(!(await page.content()).includes(destination.url), 'the database URL stayed on the page');
  });

  it("a restore's replay shows on the base run's page as transactions replayed of those to replay, and goes with it", async () => {
    // A replay's progress, recorded by the tracker every restore records its progress with.
    const tracker = trackRestoreProgress({ catalog: { db: catalog.pool, runId: baseRunId, log: { warn: () => {} } } });
    try {
      tracker.update({ phase: 'checking', bytesRead: 2048, bytesTotal: 2048, bytesRestored: 8192, bytesRestoredTotal: 8192, elapsedMs: 10 });
      tracker.replaying(12_000, 247_575);
      await page.goto(`${api.url}/#/runs/${baseRunId}`);
      const text = page.locator('#run-progress-text');
      await text.filter({ hasText: 'Replaying' }).waitFor({ timeout: WAIT });
      assert.match(await text.innerText(), /^Replaying: 12,000 of 247,575 transactions/);
      assert.equal(await page.locator('#progress-title').innerText(), 'Restore in progress');
      assert.equal(await page.locator('#run-progress').getAttribute('data-phase'), 'replaying');
    } finally {
      await tracker.end();
    }
    await page.reload();
    await page.locator('#events-title').waitFor({ timeout: WAIT });
    assert.equal(await page.locator('#run-progress').count(), 0, 'the restore ended: no progress');
  });

  it('a point outside the window is refused in the dialog, naming the window', async () => {
    await page.goto(`${api.url}/#/targets/cont-ui`);
    await page.getByRole('button', { name: 'Restore to a point in time…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Restore to a point in time' });
    await dialog.waitFor();
    await dialog.getByLabel('Point in time').fill('2001-01-01T00:00:00Z');
    await dialog.getByLabel('Database URL to restore into').fill(destination.url);
    await dialog.getByLabel(/to confirm/).fill('cont-ui');
    await dialog.getByRole('button', { name: 'Restore', exact: true }).click();
    const refusal = dialog.getByRole('alert').filter({ hasText: /Restorable/ });
    await refusal.waitFor({ timeout: WAIT });
    assert.match(await refusal.innerText(), /No base backup and unbroken run of change segments reaches 2001-01-01T00:00:00Z/);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
  });

  it('no page error was logged', () => {
    assert.deepEqual(pageErrors, []);
  });
});
