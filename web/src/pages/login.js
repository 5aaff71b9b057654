// @ts-check
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { html } from '../html.js';
import { plainMessage } from '../errorText.js';
import { usePageTitle } from '../hooks.js';

/**
 * Sign in with the provider (when the server has one: a full-page visit to /auth/login, which
 * comes back signed in with a cookie), or with an API token, checked with GET /api/v1/me before
 * it is kept.
 * @param {{ notice: string | null, providerName: string | null, onLogin: (token: string, me: import('../types').Me) => void }} props
 */
export function LoginPage({ notice, providerName, onLogin }) {
  usePageTitle('Sign in');
  const [token, setToken] = useState('');
  const [error, setError] = useState(/** @type {string | null} */ (null));
  const [busy, setBusy] = useState(false);

  const submit = async (/** @type {Event} */ event) => {
    event.preventDefault();
    const value = token.trim();
    if (!value) {
      setError('Paste an API token (it starts with bst_).');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const me = await api('/api/v1/me', { token: value });
      onLogin(value, me);
    } catch (failure) {
      const error = /** @type {import('../api.js').ApiError} */ (failure);
      setError(error.status === 401 ? 'This token is unknown or was revoked. Ask an admin for a new one.' : plainMessage(error));
    } finally {
      setBusy(false);
    }
  };

  return html`<main id="main" class="login">
    <h1 tabindex="-1" id="page-title">Backstop</h1>
    <p class="lede">PostgreSQL backups whose run status never lies.</p>
    ${notice ? html`<p class="notice notice-info" role="status">${notice}</p>` : null}
    ${
      providerName
        ? html`<div class="card sign-in-provider">
          <a class="button" href="/auth/login">Sign in with ${providerName}</a>
          <p class="help">Or, for an API token:</p>
        </div>`
        : null
    }
    <form class="card" onSubmit=${submit} aria-describedby="token-help">
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck=${false} required
        value=${token} onInput=${(/** @type {any} */ event) => setToken(event.currentTarget.value)}
        aria-invalid=${error ? 'true' : undefined} aria-describedby=${error ? 'token-error' : 'token-help'} />
      <p id="token-help" class="help">Kept for this browser tab only. An admin gives out tokens; the server prints an admin token when it first starts.</p>
      ${error ? html`<p id="token-error" class="field-error" role="alert">${error}</p>` : null}
      <button type="submit" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
    </form>
  </main>`;
}
