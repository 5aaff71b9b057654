/// <reference lib="dom" />
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { defaultNotificationEvents } from '../src/core/notificationChannels.ts';
import { getTargetWithSecret } from '../src/db/targets.ts';
import { openPage } from './support/browser.ts';
import { launchChromium } from './support/chromium.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import { finishRun } from './support/runRows.ts';
import { startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * The channels page and the target form's channels in headless Chromium against a real
 * server: an admin adds a shared ntfy channel (its token write-only), sends it a test, has a
 * target use it, and sees it failing, with the error, once the service refuses.
 */

/** The events a new channel hears, as the dashboard lists them. */
const defaults = defaultNotificationEvents.map((event) => event.replace('_', ' ')).join(', ');
const NTFY_TOKEN = 'tk_dashboard-token-never-shown';
const BOT_TOKEN = '123456789:AAH-dashboard-bot-token_0123456789';

describe('notification channels in the dashboard', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let api: TestServer;
  let browser: Browser;
  let page: Page;
  let pageErrors: string[] = [];
  let ntfy: http.Server;
  let ntfyUrl = '';
  let ntfyStatus = 200;
  const received: { path: string; headers: http.IncomingHttpHeaders; body: string }[] = [];

  before(async () => {
    catalog = await createTestCatalog();
    ntfy = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        received.push({ path: request.url ?? '', headers: request.headers, body });
        response.writeHead(ntfyStatus, { 'content-type': 'application/json' }).end(ntfyStatus === 200 ? '{"id":"x"}' : '{"error":"unauthorized"}');
      });
    });
    await new Promise<void>((resolve) => ntfy.listen(0, '127.0.0.1', resolve));
    ntfyUrl = `http://127.0.0.1:${(ntfy.address() as AddressInfo).port}/backstop-alerts`;
    api = await startTestServer({ catalogUrl: catalog.url, env: { BACKSTOP_PUBLIC_URL: 'https://backstop.example.com' } });
    const created = await api.request('POST', '/api/v1/targets', {
      body: { name: 'shop', databaseUrl: 'postgres://u:p@127.0.0.1:1/shop', storeUrl: 'file:///tmp/shop', checks: false },
    });
    assert.equal(created.status, 201, created.text);
    browser = await launchChromium();
    ({ page, pageErrors } = await openPage(browser));
    await page.context().addInitScript((token) => sessionStorage.setItem('backstop.token', token), api.tokens.admin);
  });

  after(async () => {
    await browser?.close();
    await api?.close();
    ntfy?.closeAllConnections();
    await new Promise<void>((resolve) => (ntfy ? ntfy.close(() => resolve()) : resolve()));
    await catalog?.close();
  });

  it('adds a shared channel, tests it, lets a target use it, and shows it failing with its error', async () => {
    await page.goto(`${api.url}/#/`);
    await page.getByRole('link', { name: 'Channels' }).click();
    await page.getByRole('heading', { name: 'Add a channel' }).waitFor();
    await page.getByLabel('Name').fill('ops-ntfy');
    await page.getByLabel('Kind').selectOption('ntfy');
    // A refusal lands at its field.
    await page.getByLabel('Its URL (write-only)').fill('not a url');
    await page.getByRole('button', { name: 'Add the channel' }).click();
    await page.locator('#channel-form-url-error', { hasText: 'is not an http:// or https:// URL' }).waitFor();
    await page.getByLabel('Its URL (write-only)').fill(ntfyUrl);
    await page.getByLabel('Access token (write-only)').fill(NTFY_TOKEN);
    await page.getByRole('button', { name: 'Add the channel' }).click();
    const row = page.locator('tr[data-channel="ops-ntfy"]');
    await row.getByText('Nothing sent yet').waitFor();
    assert.ok(!(await page.content()).includes(NTFY_TOKEN), 'the token is on the page');

    await row.getByRole('button', { name: 'Send test' }).click();
    await row.getByText('Delivered (the service answered 200).').waitFor();
    assert.equal(received.at(-1)!.headers.authorization, `Bearer ${NTFY_TOKEN}`);
    assert.equal(received.at(-1)!.headers.title, 'Test notification from Backstop');
    await row.getByText(/^Working: last delivered/).waitFor();

    // The target form offers it by name.
    await page.goto(`${api.url}/#/targets/shop/edit`);
    await page.getByLabel('New channel', { exact: true }).selectOption('shared');
    await page.getByLabel('Shared channel').selectOption('ops-ntfy');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.waitForURL(/#\/targets\/shop$/);
    const channel = page.locator('.channels li').first();
    await channel.getByText(`shared channel ops-ntfy on ${defaults}`).waitFor();
    const stored = await getTargetWithSecret(catalog.pool, (await api.request('GET', '/api/v1/targets/shop')).json.id);
    assert.deepEqual(
      stored.notificationChannels.map(({ kind, on, ...rest }) => ({ kind, on, channel: 'channel' in rest ? rest.channel : undefined })),
      [{ kind: 'shared', on: [...defaultNotificationEvents], channel: 'ops-ntfy' }],
    );

    // A channel of the target's own, of a kind with several settings; a missing one is said at its field.
    await page.getByRole('link', { name: 'Edit' }).click();
    await page.getByLabel('New channel', { exact: true }).selectOption('telegram');
    await page.getByLabel('Chat id').fill('@backstop_ops');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('#channel-botToken-error', { hasText: 'is required for a telegram channel' }).waitFor();
    await page.getByLabel('Bot token (write-only)').fill(BOT_TOKEN);
    // Nothing leaves this machine: the Bot API is a closed local port.
    await page.getByLabel('Bot API address').fill('http://127.0.0.1:1');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.waitForURL(/#\/targets\/shop$/);
    await page.locator('.channels li', { hasText: `telegram on ${defaults}` }).waitFor();
    assert.ok(!(await page.content()).includes(BOT_TOKEN), 'the bot token is on the page');
    const withTelegram = await getTargetWithSecret(catalog.pool, stored.id);
    assert.deepEqual(
      withTelegram.notificationChannels.map((channel) => channel.kind),
      ['shared', 'telegram'],
    );
    assert.equal((withTelegram.notificationChannels[1] as { botToken?: string }).botToken, BOT_TOKEN);

    // The service starts refusing: a failed backup's notification fails, and the page says so.
    ntfyStatus = 401;
    const { run } = await finishRun(catalog.pool, stored.id, 'failed', { error: { code: 'DUMP_FAILED', message: 'boom' } });
    await waitFor('the failed delivery', () => received.some((request) => request.headers.click === `https://backstop.example.com/#/runs/${run.id}`), 30_000);
    await waitFor('recorded failing', async () => (await api.request('GET', '/api/v1/channels/ops-ntfy')).json.health.failingSince);
    await page.goto(`${api.url}/#/channels`);
    await row.getByText(/^Failing since .*: HTTP 401/).waitFor();
    await page.goto(`${api.url}/#/targets/shop`);
    await page.locator('.channels li .channel-bad', { hasText: /^Failing since .*: HTTP 401/ }).waitFor();

    // Editing keeps the token when its field is left blank.
    await page.goto(`${api.url}/#/channels`);
    await row.getByRole('button', { name: 'Edit' }).click();
    await page.getByRole('heading', { name: 'Change ops-ntfy' }).waitFor();
    assert.equal(await page.getByLabel(/Access token/).inputValue(), '');
    assert.equal(await page.getByLabel(/Its URL/).inputValue(), '');
    ntfyStatus = 200;
    await page.getByLabel(/Its URL/).fill(`${ntfyUrl}-2`);
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.getByRole('heading', { name: 'Add a channel' }).waitFor();
    await row.getByRole('button', { name: 'Send test' }).click();
    await row.getByText('Delivered (the service answered 200).').waitFor();
    assert.equal(received.at(-1)!.path, '/backstop-alerts-2');
    assert.equal(received.at(-1)!.headers.authorization, `Bearer ${NTFY_TOKEN}`, 'the token was kept');
    await row.getByText(/^Working: last delivered/).waitFor();
    assert.ok(!(await page.content()).includes(NTFY_TOKEN));
    assert.deepEqual(pageErrors, []);
  });
});
