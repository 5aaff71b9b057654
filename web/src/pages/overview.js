import { useRef } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorNotice, HealthBadge, Loading, PageHeading, StatusBadge } from '../components.js';
import { formatBytes, formatRelative } from '../format.js';
import { html } from '../html.js';
import { useNow, usePageTitle, useResource } from '../hooks.js';
import { LiveIndicator, useLiveFeed } from '../liveFeed.js';
import { can } from '../session.js';

const severity = { failing: 0, stale: 1, never: 2, ok: 3 };

function TargetCard({ target, now }) {
  const last = target.lastRun;
  const active = target.activeRun;
  const problem = target.health === 'failing' || target.health === 'stale';
  return html`<li class="card target-card health-border-${target.health}" data-target=${target.name}>
    <div class="card-title">
      <h2><a href=${`#/targets/${encodeURIComponent(target.name)}`}>${target.name}</a></h2>
      <${HealthBadge} health=${target.health} />
    </div>
    <p class=${problem ? 'health-reason health-reason-problem' : 'health-reason'}>${target.healthReason}</p>
    <dl class="facts">
      <div><dt>Last run</dt><dd>${
        last
          ? html`<a href=${`#/runs/${last.id}`}><${StatusBadge} status=${last.status} /></a> <span class="muted">${formatRelative(last.finishedAt ?? last.createdAt, now)}</span>`
          : 'none yet'
      }</dd></div>
      ${active && active.id !== last?.id ? html`<div><dt>In progress</dt><dd><a href=${`#/runs/${active.id}`}><${StatusBadge} status=${active.status} /></a></dd></div>` : null}
      <div><dt>Newest good backup</dt><dd>${
        target.newestBackup
          ? html`<a href=${`#/runs/${target.newestBackup.id}`}>${formatRelative(target.newestBackup.finishedAt, now)}</a> <span class="muted">(${formatBytes(target.newestBackup.bytes)})</span>`
          : 'none'
      }</dd></div>
      <div><dt>Last verification</dt><dd>${
        target.lastVerification
          ? html`<a href=${`#/runs/${target.lastVerification.id}`}><${StatusBadge} status=${target.lastVerification.status} /></a> <span class="muted">${formatRelative(target.lastVerification.finishedAt, now)}</span>`
          : 'never'
      }</dd></div>
      <div><dt>Next scheduled run</dt><dd>${target.nextScheduledAt ? formatRelative(target.nextScheduledAt, now) : 'on demand only'}</dd></div>
    </dl>
  </li>`;
}

/** Every target at a glance; problems first. Reloads (debounced) whenever any run records an event. */
export function OverviewPage({ me }) {
  usePageTitle('Overview');
  const now = useNow();
  const overview = useResource(() => api('/api/v1/overview'), []);
  const pending = useRef(null);
  const reloadSoon = () => {
    clearTimeout(pending.current);
    pending.current = setTimeout(() => overview.reload(), 300);
  };
  const connected = useLiveFeed(reloadSoon, reloadSoon);

  const items = [...(overview.data?.items ?? [])].sort((a, b) => severity[a.health] - severity[b.health] || a.name.localeCompare(b.name));
  const problems = items.filter((item) => item.health === 'failing' || item.health === 'stale').length;
  return html`
    <${PageHeading} actions=${html`<${LiveIndicator} connected=${connected} />`}>Overview<//>
    <${ErrorNotice} error=${overview.error} title="The overview could not be loaded" />
    ${overview.data === undefined && !overview.error ? html`<${Loading} />` : null}
    ${
      overview.data && items.length === 0
        ? html`<p>No targets yet. ${can(me, 'admin') ? html`<a href="#/targets/new">Add the first database to back up</a>.` : 'An admin can add one.'}</p>`
        : null
    }
    ${
      items.length > 0
        ? html`<p class="summary" aria-live="polite">${items.length} target${items.length === 1 ? '' : 's'}${problems > 0 ? html`, <strong class="problem-count">${problems} need${problems === 1 ? 's' : ''} attention</strong>` : ', all fine'}.</p>
        <ul class="card-grid" aria-label="Targets">${items.map((target) => html`<${TargetCard} key=${target.name} target=${target} now=${now} />`)}</ul>`
        : null
    }`;
}
