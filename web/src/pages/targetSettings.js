// @ts-check
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorNotice } from '../components.js';
import { html } from '../html.js';
import { healthText } from './channelFields.js';

/** @typedef {import('../types').Target} Target */
/** @typedef {import('../types').NotificationChannelView} NotificationChannelView */
/** @typedef {import('../types').TestNotification} TestNotification */

/** @param {Target['retention']} retention */
function describeRetention(retention) {
  if (!retention) return 'keep every backup';
  const parts = [];
  if (retention.keepLast) parts.push(`last ${retention.keepLast}`);
  if (retention.daily) parts.push(`${retention.daily} daily`);
  if (retention.weekly) parts.push(`${retention.weekly} weekly`);
  if (retention.monthly) parts.push(`${retention.monthly} monthly`);
  return parts.length ? `keep ${parts.join(', ')}` : 'keep every backup';
}

/**
 * Which database the target points at, as the server describes it (never the password).
 * @param {{ target: Target }} props
 */
function DatabaseFacts({ target }) {
  const database = target.database;
  if (!database) return html`<div><dt>Database</dt><dd class="muted">stored, never shown</dd></div>`;
  if (target.options.profile === 'server') {
    const server = target.options.server ?? {};
    return html`<div><dt>Server</dt><dd id="target-database">
      the whole server <span class="mono wrap-anywhere">${database.host}${database.port ? `:${database.port}` : ''}</span>${database.user ? html` as <span class="mono wrap-anywhere">${database.user}</span>` : null}:
      ${server.databases ? html`databases <span class="mono wrap-anywhere">${server.databases.join(', ')}</span>` : 'every database at each run'}${
        server.excludeDatabases?.length ? html`, except <span class="mono wrap-anywhere">${server.excludeDatabases.join(', ')}</span>` : null
      }; globals ${server.globals ?? 'roles+passwords'}; ${server.jobs ?? 1} database(s) at once
      <span class="muted"> (the password is stored, never shown)</span>
    </dd></div>`;
  }
  return html`<div><dt>Database</dt><dd id="target-database">
    <span class="mono wrap-anywhere">${database.database}</span> on <span class="mono wrap-anywhere">${database.host}${database.port ? `:${database.port}` : ''}</span>${database.user ? html` as <span class="mono wrap-anywhere">${database.user}</span>` : null}
    <span class="muted"> (the password is stored, never shown)</span>
  </dd></div>`;
}

/**
 * One notification channel, with a button that sends it a test notification now (admins).
 * @param {{ target: Target, channel: NotificationChannelView }} props
 */
function Channel({ target, channel }) {
  const [state, setState] = useState(/** @type {{ busy: boolean, error: Error | null, result: TestNotification | null }} */ ({ busy: false, error: null, result: null }));
  const verdict = target.actions?.testNotification;
  const send = async () => {
    setState({ busy: true, error: null, result: null });
    try {
      const result = await api(`/api/v1/targets/${encodeURIComponent(target.name)}/notifications/${encodeURIComponent(channel.id)}/test`, { method: 'POST' });
      setState({ busy: false, error: null, result });
    } catch (error) {
      setState({ busy: false, error: /** @type {Error} */ (error), result: null });
    }
  };
  const reasonId = `channel-${channel.id}-reason`;
  const failing = Boolean(channel.health?.failingSince);
  return html`<li data-channel=${channel.id}>
    ${channel.kind === 'shared' ? `shared channel ${channel.channel}` : channel.kind} on ${channel.on.map((event) => event.replace('_', ' ')).join(', ')}${channel.kind === 'webhook' ? (channel.signed ? ' (signed)' : ' (unsigned)') : ''}
    ${channel.health ? html`<span class=${failing ? 'channel-health channel-bad' : 'channel-health muted'}>${healthText(channel.health)}</span>` : null}
    <button type="button" class="button-quiet button-small" disabled=${!verdict?.allowed || state.busy}
      aria-describedby=${verdict && !verdict.allowed ? reasonId : undefined} onClick=${send}>${state.busy ? 'Sending…' : 'Send test notification'}</button>
    ${verdict && !verdict.allowed ? html`<span id=${reasonId} class="muted action-reason-inline">${verdict.reason}</span>` : null}
    ${
      state.result
        ? html`<p class=${state.result.delivered ? 'channel-result channel-ok' : 'channel-result channel-bad'} role="status">${
            state.result.delivered ? `Delivered${state.result.status ? ` (the receiver answered ${state.result.status})` : ''}.` : `Not delivered: ${state.result.error ?? 'no answer'}.`
          }</p>`
        : null
    }
    <${ErrorNotice} error=${state.error} title="The test notification was not sent" />
  </li>`;
}

/**
 * Everything a target is set to, secrets excepted.
 * @param {{ target: Target }} props
 */
export function TargetSettings({ target }) {
  return html`<section class="card" aria-labelledby="settings-title">
    <h2 id="settings-title">Settings</h2>
    <dl class="facts facts-wide">
      <${DatabaseFacts} target=${target} />
      <div><dt>Store</dt><dd class="mono wrap-anywhere">${target.storeUrl}</dd></div>
      <div><dt>Schedule</dt><dd>${target.schedule ? html`<code>${target.schedule.cron}</code> (${target.schedule.timezone})${target.paused ? ', paused' : ''}` : 'on demand only'}</dd></div>
      <div><dt>Retention</dt><dd>${describeRetention(target.retention)}</dd></div>
      <div><dt>Profile</dt><dd>${target.options?.profile ?? 'default'}${target.options?.withStorage ? ', with Storage files' : ''}</dd></div>
      <div><dt>Compression</dt><dd>${target.options?.compression ?? 'zstd'}</dd></div>
      <div><dt>Encryption</dt><dd>${
        target.options?.encryptTo?.length
          ? html`age, to <ul class="plain">${target.options.encryptTo.map((recipient) => html`<li class="mono wrap-anywhere">${recipient}</li>`)}</ul>`
          : 'none'
      }</dd></div>
      <div><dt>Attempts</dt><dd>up to ${target.maxAttempts}${target.exclusive ? ', one run at a time' : ''}</dd></div>
      <div><dt>Restore drills</dt><dd>${target.verification?.everyNth ? `every ${target.verification.everyNth} backups` : target.verification?.cron ? html`<code>${target.verification.cron}</code>` : 'on demand only'}</dd></div>
      <div><dt>Notifications</dt><dd>${
        target.notifications.length
          ? html`<ul class="plain channels">${target.notifications.map((channel) => html`<${Channel} key=${channel.id} target=${target} channel=${channel} />`)}</ul>`
          : 'none'
      }</dd></div>
      ${
        target.options?.restoreTo?.length
          ? html`<div><dt>Operators restore into</dt><dd><ul class="plain">${target.options.restoreTo.map((entry) => html`<li class="mono wrap-anywhere">${entry}</li>`)}</ul></dd></div>`
          : null
      }
      <div><dt>Executed by</dt><dd>${target.executor ? `GitHub Actions (${target.executor.owner}/${target.executor.repo})` : 'Backstop workers'}</dd></div>
    </dl>
  </section>`;
}
