import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { html } from '../html.js';
import { usePageTitle } from '../hooks.js';

/** Sign in with an API token; it is checked with GET /api/v1/me before it is kept. */
export function LoginPage({ notice, onLogin }) {
  usePageTitle('Sign in');
  const [token, setToken] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event) => {
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
      setError(failure.status === 401 ? 'This token is unknown or was revoked. Create one with `backstop token create --name NAME --role viewer|operator|admin`.' : failure.message);
    } finally {
      setBusy(false);
    }
  };

  return html`<main id="main" class="login">
    <h1 tabindex="-1" id="page-title">Backstop</h1>
    <p class="lede">PostgreSQL backups whose run status never lies.</p>
    ${notice ? html`<p class="notice notice-info" role="status">${notice}</p>` : null}
    <form class="card" onSubmit=${submit} aria-describedby="token-help">
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck="false" required
        value=${token} onInput=${(event) => setToken(event.currentTarget.value)}
        aria-invalid=${error ? 'true' : undefined} aria-describedby=${error ? 'token-error' : 'token-help'} />
      <p id="token-help" class="help">Kept for this browser tab only. Create one with <code>backstop token create --name me --role viewer</code>.</p>
      ${error ? html`<p id="token-error" class="field-error" role="alert">${error}</p>` : null}
      <button type="submit" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
    </form>
  </main>`;
}
