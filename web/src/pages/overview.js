// @ts-check
import { useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorNotice, HealthBadge, Loading, PageHeading, StatusBadge } from '../components.js';
import { formatBytes, formatRelative } from '../format.js';
import { html } from '../html.js';
import { useNow, usePageTitle, useResource } from '../hooks.js';
import { LiveIndicator, useLiveFeed } from '../liveFeed.js';
import { ProgressBar } from '../progress.js';
import { can } from '../session.js';

/** @typedef {import('../types').OverviewItem} OverviewItem */

const severity = { failing: 0, stale: 1, never: 2, ok: 3 };

/** @param {{ target: OverviewItem, now: number, liveProgress: Record<string, import('../types').Progress> }} props */
function TargetCard({ target, now, liveProgress }) {
  const last = target.lastRun;
  const active = target.activeRun;
  // The feed's progress is newer than the overview's, which is read again only on events.
  const progress = active ? (liveProgress[active.id] ?? active.progress) : null;
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
      ${active && progress ? html`<div class="card-progress"><dt>Backup progress</dt><dd><${ProgressBar} progress=${progress} compact /></dd></div>` : null}
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
/** @param {{ me: import('../types').Me }} props */
export function OverviewPage({ me }) {
  usePageTitle('Overview');
  const now = useNow();
  const overview = useResource(() => api('/api/v1/overview'), []);
  const pending = useRef(/** @type {ReturnType<typeof setTimeout> | undefined} */ (undefined));
  const reloadSoon = () => {
    clearTimeout(pending.current);
    pending.current = setTimeout(() => overview.reload(), 300);
  };
  const [liveProgress, setLiveProgress] = useState({});
  const connected = useLiveFeed(reloadSoon, reloadSoon, (live) => {
    if (live.runKind === 'backup' && live.progress?.operation === 'backup') setLiveProgress((current) => ({ ...current, [live.runId]: live.progress }));
  });

  /** @type {OverviewItem[]} */
  const items = [.../** @type {OverviewItem[]} */ (overview.data?.items ?? [])].sort((a, b) => severity[a.health] - severity[b.health] || a.name.localeCompare(b.name));
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
        <ul class="card-grid" aria-label="Targets">${items.map((target) => html`<${TargetCard} key=${target.name} target=${target} now=${now} liveProgress=${liveProgress} />`)}</ul>`
        : null
    }`;
}
