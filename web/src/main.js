// @ts-check
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, setUnauthorizedHandler } from './api.js';
import { Loading } from './components.js';
import { html } from './html.js';
import { AuditPage } from './pages/audit.js';
import { ChannelsPage } from './pages/channels.js';
import { LoginPage } from './pages/login.js';
import { OverviewPage } from './pages/overview.js';
import { RunPage } from './pages/run.js';
import { RunsPage } from './pages/runs.js';
import { TargetFormPage } from './pages/targetForm.js';
import { TargetPage } from './pages/target.js';
import { TargetsPage } from './pages/targets.js';
import { can, forgetToken, setCsrfToken, storedToken, storeToken } from './session.js';

/** @typedef {import('./types').Me} Me */
/** @typedef {{ path: string[], query: URLSearchParams, key: string }} Route */

/**
 * The route from the URL's hash: #/runs/ID?x=y → {path: ['runs', 'ID'], query}.
 * @returns {Route}
 */
function currentRoute() {
  const [pathPart = '', queryPart = ''] = location.hash.replace(/^#/, '').split('?');
  return { path: pathPart.split('/').filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(queryPart), key: location.hash };
}

function useRoute() {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const update = () => setRoute(currentRoute());
    window.addEventListener('hashchange', update);
    return () => window.removeEventListener('hashchange', update);
  }, []);
  return route;
}

/**
 * @param {Route} route
 * @param {Me} me
 */
function page(route, me) {
  const [section, id, sub] = route.path;
  if (!section) return html`<${OverviewPage} me=${me} />`;
  if (section === 'runs' && !id) return html`<${RunsPage} me=${me} query=${route.query} />`;
  if (section === 'runs') return html`<${RunPage} me=${me} id=${id} key=${id} />`;
  if (section === 'targets' && !id) return html`<${TargetsPage} me=${me} />`;
  if (section === 'targets' && id === 'new') return html`<${TargetFormPage} me=${me} />`;
  if (section === 'targets' && sub === 'edit') return html`<${TargetFormPage} me=${me} name=${id} key=${`edit-${id}`} />`;
  if (section === 'targets') return html`<${TargetPage} me=${me} name=${id} key=${id} />`;
  if (section === 'audit' && !id) return html`<${AuditPage} me=${me} query=${route.query} />`;
  if (section === 'channels') return html`<${ChannelsPage} me=${me} />`;
  return html`<div class="page-heading"><h1 tabindex="-1" id="page-title">Not found</h1></div>
    <p>There is no page here. <a href="#/">Go to the overview</a>.</p>`;
}

/** @param {{ me: Me, route: Route, onLogout: () => void, children: import('preact').ComponentChildren }} props */
function Layout({ me, route, onLogout, children }) {
  const section = route.path[0] ?? '';
  const link = (/** @type {string} */ href, /** @type {string} */ label, /** @type {string} */ name) =>
    html`<li><a href=${href} aria-current=${section === name ? 'page' : undefined}>${label}</a></li>`;
  return html`
    <a class="skip-link" href="#main" onClick=${(/** @type {Event} */ event) => {
      event.preventDefault();
      document.getElementById('page-title')?.focus();
    }}>Skip to content</a>
    <header class="site-header">
      <a class="brand" href="#/">Backstop</a>
      <nav aria-label="Main">
        <ul>
          ${link('#/', 'Overview', '')}
          ${link('#/runs', 'Runs', 'runs')}
          ${link('#/targets', 'Targets', 'targets')}
          ${me.role === 'admin' ? link('#/audit', 'Audit', 'audit') : null}
          ${can(me, 'admin') ? link('#/channels', 'Channels', 'channels') : null}
        </ul>
      </nav>
      <div class="who">
        <span class="who-name">${me.name} <span class="role" data-role=${me.role}>${me.role}</span></span>
        <button type="button" class="button-quiet" onClick=${onLogout}>Log out</button>
      </div>
    </header>
    <main id="main">${children}</main>`;
}

/**
 * How the page is signed in now, for the words of a 401: several requests may fail at once,
 * and only the first one signs out (and says why).
 * @type {'token' | 'user' | null}
 */
let signedInWith = null;

/** @param {Me} me */
function signedIn(me) {
  signedInWith = me.kind;
  setCsrfToken(me.kind === 'user' ? (me.csrfToken ?? null) : null);
  return { state: /** @type {const} */ ('signed-in'), me, notice: null };
}

function App() {
  const route = useRoute();
  // Always checked first: without a stored token, a sign-in with the provider may have left a cookie.
  const [session, setSession] = useState(
    /** @type {{ state: 'checking' | 'signed-out' | 'signed-in', me: Me | null, notice: string | null }} */ ({ state: 'checking', me: null, notice: null }),
  );
  const [providerName, setProviderName] = useState(/** @type {string | null} */ (null));

  const signOut = (/** @type {string | null} */ notice = null) => {
    signedInWith = null;
    forgetToken();
    setCsrfToken(null);
    setSession({ state: 'signed-out', me: null, notice });
  };

  useEffect(() => {
    fetch('/auth/options', { cache: 'no-store' })
      .then((response) => (response.ok ? response.json() : null))
      .then((options) => setProviderName(options?.oidc?.providerName ?? null))
      .catch(() => {});
    // Nobody may be signed in yet: a 401 here shows the sign-in page, not a notice.
    api('/api/v1/me')
      .then((me) => setSession(signedIn(me)))
      .catch((error) => {
        if (error.status !== 401) setSession({ state: 'signed-out', me: null, notice: error.message });
        else if (storedToken()) signOut('Your session ended: the API token is unknown or was revoked. Sign in again.');
        else setSession({ state: 'signed-out', me: null, notice: null });
      })
      .finally(() =>
        setUnauthorizedHandler((error) => {
          if (signedInWith === 'token') signOut('Your session ended: the API token is unknown or was revoked. Sign in again.');
          else if (signedInWith === 'user') signOut(`Your sign-in ended: ${error.message}`);
        }),
      );
  }, []);

  // After navigation, the new page's heading takes focus: keyboard and screen-reader users
  // start reading the page that just opened, not the link they left.
  useEffect(() => {
    if (session.state !== 'signed-in') return;
    const timer = setTimeout(() => document.getElementById('page-title')?.focus({ preventScroll: false }), 0);
    return () => clearTimeout(timer);
  }, [route.key, session.state]);

  if (session.state === 'checking') return html`<main id="main"><${Loading} what="Signing in" /></main>`;
  if (session.state === 'signed-out') {
    return html`<${LoginPage}
      notice=${session.notice}
      providerName=${providerName}
      onLogin=${(/** @type {string} */ token, /** @type {Me} */ me) => {
        storeToken(token);
        setSession(signedIn(me));
      }}
    />`;
  }
  const me = /** @type {Me} */ (session.me);
  const logOut = async () => {
    if (me.kind === 'user') {
      // The server ends the sign-in and clears its cookie; a failure leaves the person signed in.
      try {
        await api('/auth/logout', { method: 'POST' });
      } catch (error) {
        setSession({ ...session, notice: /** @type {Error} */ (error).message });
        return;
      }
    }
    signOut('You are logged out.');
  };
  return html`<${Layout} me=${me} route=${route} onLogout=${logOut}>${page(route, me)}<//>`;
}

// The boot message goes: Preact would otherwise keep it above the app.
const root = /** @type {HTMLElement} */ (document.getElementById('app'));
root.replaceChildren();
render(html`<${App} />`, root);
