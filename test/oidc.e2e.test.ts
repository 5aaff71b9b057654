/// <reference lib="dom" />
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { listAudit } from '../src/operations/listAudit.ts';
import { openPage } from './support/browser.ts';
import { launchChromium } from './support/chromium.ts';
import { startOidcProvider, type TestOidcProvider } from './support/oidcProvider.ts';
import { createSampleDatabase, createTestCatalog, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { closedPort, readEventStream, startTestServer, type TestServer } from './support/server.ts';
import { waitFor } from './support/wait.ts';

/**
 * Dashboard sign-in with OpenID Connect, in headless Chromium, against a real provider
 * (oidc-provider) on loopback whose people are in two groups: the mapped role decides what the
 * pages offer and what the API allows; a person removed from a group loses it at their next
 * request; writes from another site, or without the CSRF token, change nothing; API tokens
 * keep working as before.
 */

const WAIT = 30_000;
const CLIENT_ID = 'backstop';
const CLIENT_SECRET = 'backstop test client secret';

describe('sign-in with OpenID Connect, in headless Chromium', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let source: TestDatabase;
  let storeDir: string;
  let provider: TestOidcProvider;
  let api: TestServer;
  let browser: Browser;
  const pageErrors: string[] = [];
  const savedAllowance = process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS;

  before(async () => {
    catalog = await createTestCatalog();
    source = await createSampleDatabase(10);
    storeDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-oidc-store-'));
    const port = await closedPort();
    const publicUrl = `http://127.0.0.1:${port}`;
    provider = await startOidcProvider({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      redirectUri: `${publicUrl}/auth/callback`,
      people: {
        olivia: { email: 'olivia@example.com', name: 'Olivia Operator', groups: ['backstop-operators'] },
        vera: { email: 'vera@example.com', name: 'Vera Viewer', groups: ['backstop-viewers'] },
        nadia: { email: 'nadia@elsewhere.example', name: 'Nadia Nobody', groups: ['sales'] },
      },
    });
    // The outbound guard reads this at every request: the provider is on loopback here.
    process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS = '127.0.0.1';
    api = await startTestServer({
      catalogUrl: catalog.url,
      port,
      env: {
        BACKSTOP_STORE: `file://${storeDir}`,
        BACKSTOP_PUBLIC_URL: publicUrl,
        BACKSTOP_OIDC_ISSUER: provider.issuer,
        BACKSTOP_OIDC_CLIENT_ID: CLIENT_ID,
        BACKSTOP_OIDC_CLIENT_SECRET: CLIENT_SECRET,
        BACKSTOP_OIDC_SCOPES: 'openid email profile groups',
        BACKSTOP_OIDC_PROVIDER_NAME: 'Test IdP',
        BACKSTOP_OIDC_ROLE_MAP: 'group:backstop-admins=admin,group:backstop-operators=operator,group:backstop-viewers=viewer',
      },
    });
    const created = await api.request('POST', '/api/v1/targets', { body: { name: 'shop', databaseUrl: source.url, storeUrl: `file://${storeDir}` } });
    assert.equal(created.status, 201, created.text);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await api?.close();
    await provider?.close();
    await catalog?.close();
    await source?.drop();
    if (storeDir) await fs.rm(storeDir, { recursive: true, force: true });
    if (savedAllowance === undefined) delete process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS;
    else process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS = savedAllowance;
  });

  const runCount = async () => (await catalog.pool.query<{ count: number }>('select count(*)::int as count from backstop.runs')).rows[0]!.count;

  /** Signs `login` in through the dashboard's button and the provider's own pages. */
  const signIn = async (login: string): Promise<{ page: Page; context: BrowserContext }> => {
    const opened = await openPage(browser);
    opened.page.on('pageerror', (error) => pageErrors.push(error.message));
    const page = opened.page;
    await page.goto(api.url);
    await page.getByRole('link', { name: 'Sign in with Test IdP' }).click();
    // The provider's development sign-in form: the login name is the account.
    await page.locator('input[name="login"]').fill(login);
    await page.locator('input[name="password"]').fill('any password');
    await page.getByRole('button', { name: 'Sign-in' }).click();
    const consent = page.getByRole('button', { name: 'Continue' });
    const arrived = page.locator('#page-title');
    await Promise.race([consent.waitFor({ timeout: WAIT }), arrived.waitFor({ timeout: WAIT })]);
    if (await consent.isVisible()) await consent.click();
    return { page, context: page.context() };
  };

  /** The session cookie of a signed-in context, as a Cookie header. */
  const cookieHeader = async (context: BrowserContext) =>
    (await context.cookies(api.url))
      .filter((cookie) => cookie.name === 'backstop_session')
      .map((cookie) => `${cookie.name}=${cookie.value}`)
      .join('; ');

  /** A request from the page, with the browser's cookies, as the dashboard's own code makes it. */
  const fetchFromPage = (page: Page, method: string, url: string, headers: Record<string, string> = {}, body?: unknown) =>
    page.evaluate(
      async ({ method, url, headers, body }) => {
        const response = await fetch(url, { method, headers: { 'content-type': 'application/json', ...headers }, body: body === undefined ? undefined : JSON.stringify(body) });
        return { status: response.status, text: await response.text() };
      },
      { method, url, headers, body },
    );

  let operator: { page: Page; context: BrowserContext };
  let viewer: { page: Page; context: BrowserContext };

  it('a person of the operators group signs in at the provider and gets the operator role, in an HttpOnly SameSite=Lax cookie', async () => {
    operator = await signIn('olivia');
    const { page, context } = operator;
    await page.locator('#page-title', { hasText: 'Overview' }).waitFor({ timeout: WAIT });
    assert.match(await page.locator('.who').innerText(), /Olivia Operator\s+operator/);
    const [session] = (await context.cookies(api.url)).filter((cookie) => cookie.name === 'backstop_session');
    assert.ok(session, 'no session cookie');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Lax');
    // The page's script never holds a credential: no token in storage, the cookie out of reach.
    assert.equal(await page.evaluate(() => sessionStorage.getItem('backstop.token')), null);
    assert.equal(await page.evaluate(() => document.cookie), '');
    const me = await fetchFromPage(page, 'GET', '/api/v1/me');
    assert.equal(me.status, 200);
    assert.deepEqual(
      { ...JSON.parse(me.text), id: undefined, csrfToken: undefined },
      {
        id: undefined,
        csrfToken: undefined,
        name: 'Olivia Operator',
        role: 'operator',
        kind: 'user',
        email: 'olivia@example.com',
      },
    );
    const rows = await catalog.pool.query('select subject, email from backstop.user_sessions');
    assert.deepEqual(rows.rows, [{ subject: 'olivia', email: 'olivia@example.com' }]);
    // The sign-in is in the audit trail, with the person and the browser's address.
    const signIns = (await listAudit(catalog.pool, { action: 'sign-in', actor: 'olivia' })).items;
    assert.deepEqual(
      signIns.map((entry) => [entry.actor.kind, entry.actor.name, 'role' in entry.actor ? entry.actor.role : null, entry.actor.address, entry.actor.client, entry.outcome]),
      [['user', 'olivia@example.com', 'operator', '127.0.0.1', 'dashboard', 'succeeded']],
    );
  });

  it('the mapped role governs the pages: the operator may back up, the viewer is offered no operator or admin action', async () => {
    await operator.page.goto(`${api.url}/#/targets/shop`);
    await operator.page.locator('#page-title', { hasText: 'shop' }).waitFor();
    assert.equal(await operator.page.locator('#action-backup').isEnabled(), true);
    assert.equal(await operator.page.getByRole('link', { name: 'Edit' }).count(), 0, 'an operator is offered the admin edit');

    viewer = await signIn('vera');
    const { page } = viewer;
    await page.locator('#page-title', { hasText: 'Overview' }).waitFor({ timeout: WAIT });
    assert.match(await page.locator('.who').innerText(), /Vera Viewer\s+viewer/);
    await page.goto(`${api.url}/#/targets/shop`);
    await page.locator('#page-title', { hasText: 'shop' }).waitFor();
    await page.locator('#action-backup').waitFor();
    assert.equal(await page.locator('#action-backup').isDisabled(), true);
    assert.equal(await page.locator('#action-backup-reason').getAttribute('data-blocked-by'), 'role');
    assert.match(await page.locator('#action-backup-reason').innerText(), /needs the operator role; you are signed in with the viewer role/);
    assert.equal(await page.locator('#action-verify-newest').isDisabled(), true);
    assert.equal(await page.getByRole('link', { name: 'Edit' }).count(), 0);
    await page.getByRole('link', { name: 'Targets', exact: true }).click();
    await page.locator('#page-title', { hasText: 'Targets' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'New target' }).count(), 0);
  });

  it("the API refuses the viewer's cookie a backup (403) even with the CSRF token and the right origin, and records nothing", async () => {
    const { page } = viewer;
    const me = JSON.parse((await fetchFromPage(page, 'GET', '/api/v1/me')).text);
    const before = await runCount();
    const refused = await fetchFromPage(page, 'POST', '/api/v1/runs', { 'x-backstop-csrf': me.csrfToken }, { target: 'shop' });
    assert.equal(refused.status, 403, refused.text);
    assert.match(JSON.parse(refused.text).error.message, /needs the operator role; Vera Viewer has the viewer role/);
    assert.equal(await runCount(), before);
    const [audited] = (await listAudit(catalog.pool, { action: 'run.trigger', actor: 'vera', limit: 1 })).items;
    assert.deepEqual(audited && [audited.outcome, audited.errorCode], ['refused', 'FORBIDDEN']);
  });

  it('writes with the session cookie but without the CSRF token, or from another origin, are refused (403) and change nothing', async () => {
    const { page, context } = operator;
    await page.goto(`${api.url}/#/`);
    await page.locator('#page-title', { hasText: 'Overview' }).waitFor();
    const me = JSON.parse((await fetchFromPage(page, 'GET', '/api/v1/me')).text);
    const before = await runCount();

    // Same origin, cookie sent, no CSRF token.
    const noToken = await fetchFromPage(page, 'POST', '/api/v1/runs', {}, { target: 'shop' });
    assert.equal(noToken.status, 403, noToken.text);
    assert.match(noToken.text, /CSRF token/);
    // A wrong token.
    const wrongToken = await fetchFromPage(page, 'POST', '/api/v1/runs', { 'x-backstop-csrf': `${me.csrfToken.slice(0, -2)}AA` }, { target: 'shop' });
    assert.equal(wrongToken.status, 403, wrongToken.text);

    // The cookie and the right token, from a foreign Origin (a browser never lets a page forge
    // Origin; a client outside one can, and is refused all the same).
    const cookie = await cookieHeader(context);
    const post = (headers: Record<string, string>) =>
      fetch(`${api.url}/api/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json', cookie, ...headers }, body: JSON.stringify({ target: 'shop' }) });
    const foreign = await post({ origin: 'http://evil.example', 'x-backstop-csrf': me.csrfToken });
    assert.equal(foreign.status, 403);
    assert.match(await foreign.text(), /Refused a write from origin http:\/\/evil\.example/);
    const noOrigin = await post({ 'x-backstop-csrf': me.csrfToken });
    assert.equal(noOrigin.status, 403);

    // A page of another site (localhost is another site than 127.0.0.1) posting to Backstop:
    // the SameSite=Lax cookie does not go along, so the write is not even authenticated.
    const attacker = await context.newPage();
    const attackerPort = await closedPort();
    const http = await import('node:http');
    const evil = http.createServer((_request, response) => response.end('<!doctype html><title>evil</title>'));
    await new Promise<void>((resolve) => evil.listen(attackerPort, '127.0.0.1', resolve));
    try {
      await attacker.goto(`http://localhost:${attackerPort}/`);
      await attacker.evaluate(async (target) => {
        await fetch(target, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: '{"target":"shop"}' });
      }, `${api.url}/api/v1/runs`);
    } finally {
      await attacker.close();
      await new Promise<void>((resolve) => evil.close(() => resolve()));
    }
    assert.equal(await runCount(), before, 'a refused write created a run');

    // The same write with the token and from the dashboard's origin goes through: the checks
    // above refused for what they check, not for anything else.
    const allowed = await post({ origin: api.url, 'x-backstop-csrf': me.csrfToken });
    assert.equal(allowed.status, 201, await allowed.text());
    assert.equal(await runCount(), before + 1);
  });

  it('the dashboard itself writes with the cookie: the operator backs up from the page', async () => {
    const { page } = operator;
    const before = await runCount();
    await page.goto(`${api.url}/#/targets/shop`);
    await page.locator('#action-backup').waitFor();
    await page.locator('#action-backup').click();
    await page.waitForURL(/#\/runs\/[0-9a-f-]{36}$/, { timeout: WAIT });
    assert.equal(await runCount(), before + 1);
    // The request's actor is the person, named by their address at the provider.
    const runId = /#\/runs\/([0-9a-f-]{36})$/.exec(page.url())![1];
    const logged = api.logs.map((line) => JSON.parse(line)).find((line) => line.msg === 'run triggered' && line.runId === runId);
    assert.equal(logged?.by, 'user olivia@example.com');
    // The audit trail names the person, with the role the provider gave them.
    const triggered = (await listAudit(catalog.pool, { action: 'run.trigger', actor: 'olivia' })).items.find((entry) => entry.details.runId === runId);
    assert.deepEqual(triggered && [triggered.actor.kind, triggered.actor.name, triggered.actor.client], ['user', 'olivia@example.com', 'dashboard']);
  });

  it('bearer API tokens work as before, without CSRF token or Origin checks', async () => {
    const before = await runCount();
    const triggered = await api.request('POST', '/api/v1/runs', { token: api.tokens.operator, body: { target: 'shop' }, headers: { origin: 'http://evil.example' } });
    assert.equal(triggered.status, 201, triggered.text);
    assert.equal(await runCount(), before + 1);
    const me = await api.request('GET', '/api/v1/me', { token: api.tokens.viewer });
    assert.equal(me.json.kind, 'token');
  });

  it("a person's role follows the provider at their next request: moved to viewers, then removed from every group", async () => {
    const { page } = operator;
    const olivia = provider.people.get('olivia')!;
    olivia.groups = ['backstop-viewers'];
    const me = await fetchFromPage(page, 'GET', '/api/v1/me');
    assert.equal(JSON.parse(me.text).role, 'viewer');
    const csrf = JSON.parse(me.text).csrfToken;
    const refused = await fetchFromPage(page, 'POST', '/api/v1/runs', { 'x-backstop-csrf': csrf }, { target: 'shop' });
    assert.equal(refused.status, 403, refused.text);

    olivia.groups = [];
    // Another request of the same session (the page's event stream does this on its own, at
    // any moment) asks the provider first and ends the session; the page's own request,
    // arriving after, is told the same reason, not only that the sign-in ended.
    const cookie = await cookieHeader(operator.context);
    const first = await fetch(`${api.url}/api/v1/me`, { headers: { cookie } });
    assert.equal(first.status, 401);
    const reason = ((await first.json()) as { error: { message: string } }).error.message;
    assert.match(reason, /^olivia@example\.com no longer has a Backstop role: .*BACKSTOP_OIDC_ROLE_MAP\. Ask an admin/);
    const gone = await fetchFromPage(page, 'GET', '/api/v1/targets');
    assert.equal(gone.status, 401, gone.text);
    assert.equal(JSON.parse(gone.text).error.message, reason);
    // The session is ended, not only refused once: being put back in the group needs a new sign-in.
    olivia.groups = ['backstop-operators'];
    const after = await fetchFromPage(page, 'GET', '/api/v1/me');
    assert.equal(after.status, 401);
    assert.equal(JSON.parse(after.text).error.message, reason);
    // The page shows the sign-in page with the reason, whichever of its requests was refused first.
    await page.getByRole('link', { name: 'Sign in with Test IdP' }).waitFor();
    assert.equal(await page.getByRole('status').innerText(), `Your sign-in ended: ${reason}`);
    // The ended session keeps no provider tokens.
    const ended = await catalog.pool.query(`select access_token, refresh_token, end_reason from backstop.user_sessions where subject = 'olivia'`);
    assert.deepEqual(ended.rows, [{ access_token: null, refresh_token: null, end_reason: reason }]);
  });

  it('signing out ends the session: its cookie opens nothing afterwards', async () => {
    const { page, context } = viewer;
    await page.goto(`${api.url}/#/`);
    await page.locator('#page-title', { hasText: 'Overview' }).waitFor();
    const cookie = await cookieHeader(context);
    assert.equal((await fetch(`${api.url}/api/v1/me`, { headers: { cookie } })).status, 200);
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('link', { name: 'Sign in with Test IdP' }).waitFor();
    // A copy of the cookie (another tab, a script) is told why, not only that it ended.
    const afterSignOut = await fetch(`${api.url}/api/v1/me`, { headers: { cookie } });
    assert.equal(afterSignOut.status, 401);
    assert.match(((await afterSignOut.json()) as { error: { message: string } }).error.message, /^You signed out of Backstop in this browser\. Sign in again/);
    assert.equal(await cookieHeader(context), '');
  });

  it('an open event stream of a person ends once the provider removed them from their group', async () => {
    const { page, context } = await signIn('vera');
    await page.locator('#page-title', { hasText: 'Overview' }).waitFor({ timeout: WAIT });
    const cookie = await cookieHeader(context);
    await page.close();
    const response = await fetch(`${api.url}/api/v1/events`, { headers: { cookie, accept: 'text/event-stream' } });
    assert.equal(response.status, 200);
    const stream = readEventStream(response);
    await waitFor('the stream to start', () => stream.messages.some((message) => message.event === 'ready'));
    provider.people.get('vera')!.groups = ['sales'];
    // The stream asks the provider at most every 5 seconds.
    let deadline: NodeJS.Timeout | undefined;
    const ended = await Promise.race([stream.ended.then(() => true), new Promise<false>((resolve) => (deadline = setTimeout(resolve, 20_000, false)))]);
    clearTimeout(deadline);
    assert.equal(ended, true, 'the stream is still open');
    assert.match(stream.comments.join('\n'), /the stream ends/);
    const rows = await catalog.pool.query(`select 1 from backstop.user_sessions where subject = 'vera' and ended_at is null`);
    assert.equal(rows.rowCount, 0);
    // The stream's reconnect is told why.
    const again = await fetch(`${api.url}/api/v1/events`, { headers: { cookie, accept: 'text/event-stream' } });
    assert.equal(again.status, 401);
    assert.match(((await again.json()) as { error: { message: string } }).error.message, /^vera@example\.com no longer has a Backstop role/);
  });

  it('a person no rule maps to a role gets a page that says so, and no session', async () => {
    const { page } = await signIn('nadia');
    await page.locator('#page-title', { hasText: 'No access' }).waitFor({ timeout: WAIT });
    assert.match(await page.getByRole('alert').innerText(), /nadia@elsewhere\.example.*no role.*\(sales\).*BACKSTOP_OIDC_ROLE_MAP/s);
    const rows = await catalog.pool.query(`select 1 from backstop.user_sessions where subject = 'nadia'`);
    assert.equal(rows.rowCount, 0);
    const [refused] = (await listAudit(catalog.pool, { action: 'sign-in', actor: 'nadia', limit: 1 })).items;
    assert.deepEqual(refused && [refused.actor.name, refused.outcome, refused.errorCode], ['nadia@elsewhere.example', 'refused', 'FORBIDDEN']);
  });

  it('a provider that cannot be reached refuses cookie requests (502) rather than trusting an old answer, and ends no session', async () => {
    // Olivia's own groups, whatever an earlier test left them as.
    provider.people.get('olivia')!.groups = ['backstop-operators'];
    const { page, context } = await signIn('olivia');
    await page.locator('#page-title', { hasText: 'Overview' }).waitFor({ timeout: WAIT });
    const cookie = await cookieHeader(context);
    assert.equal((await fetch(`${api.url}/api/v1/me`, { headers: { cookie } })).status, 200);
    await provider.close();
    const refused = await fetch(`${api.url}/api/v1/targets`, { headers: { cookie } });
    assert.equal(refused.status, 502);
    assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'IDENTITY_PROVIDER_UNAVAILABLE');
    const rows = await catalog.pool.query(`select 1 from backstop.user_sessions where subject = 'olivia' and ended_at is null`);
    assert.equal(rows.rowCount, 1);
    // Tokens do not depend on the provider.
    assert.equal((await api.request('GET', '/api/v1/targets', { token: api.tokens.viewer })).status, 200);
  });

  it('a callback whose state this browser was not given is refused', async () => {
    const response = await fetch(`${api.url}/auth/callback?code=x&state=forged`, { redirect: 'manual' });
    assert.equal(response.status, 400);
    assert.match(await response.text(), /not started in this browser/);
    assert.deepEqual(pageErrors, []);
  });
});
