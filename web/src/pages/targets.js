// @ts-check
import { useMemo } from 'preact/hooks';
import { api } from '../api.js';
import { ErrorNotice, Loading, PageHeading } from '../components.js';
import { html } from '../html.js';
import { useNow, usePageTitle, useResource } from '../hooks.js';
import { can } from '../session.js';
import { liveRpo, RpoFigure } from './continuity.js';

/** Every target with where and when it is backed up; admins add new ones here. */
/** @param {{ me: import('../types').Me }} props */
export function TargetsPage({ me }) {
  usePageTitle('Targets');
  const targets = useResource(() => api('/api/v1/targets'), []);
  const now = useNow(1000);
  const readAt = useMemo(() => Date.now(), [targets.data]);
  const actions = can(me, 'admin') ? html`<a class="button" href="#/targets/new">New target</a>` : null;
  return html`
    <${PageHeading} actions=${actions}>Targets<//>
    <${ErrorNotice} error=${targets.error} title="The targets could not be loaded" />
    ${targets.data === undefined && !targets.error ? html`<${Loading} />` : null}
    ${targets.data?.items.length === 0 ? html`<p>No targets yet.</p>` : null}
    ${
      targets.data?.items.length
        ? html`<table class="stack-table targets-table">
          <thead><tr><th scope="col">Name</th><th scope="col">Schedule</th><th scope="col">Store</th><th scope="col">Encrypted</th><th scope="col">RPO</th></tr></thead>
          <tbody>${
            /** @type {import('../types').Target[]} */ (targets.data.items).map(
              (target) => html`<tr key=${target.id}>
            <td data-label="Name"><a href=${`#/targets/${encodeURIComponent(target.name)}`}>${target.name}</a></td>
            <td data-label="Schedule">${target.schedule ? html`<code>${target.schedule.cron}</code> ${target.schedule.timezone}${target.paused ? ', paused' : ''}` : 'on demand'}</td>
            <td data-label="Store" class="wrap-anywhere mono">${target.storeUrl}</td>
            <td data-label="Encrypted">${target.options?.encryptTo?.length ? 'yes' : 'no'}</td>
            <td data-label="RPO" data-rpo=${target.rpo ? target.rpo.state : 'none'}>${
              target.rpo
                ? html`<${RpoFigure} seconds=${liveRpo(target.rpo.seconds, readAt, now)} maxSeconds=${target.rpo.maxSeconds} state=${target.rpo.state} />${target.rpo.state === 'streaming' ? null : html` <span class="muted">${target.rpo.state}</span>`}`
                : html`<span class="muted">not continuous</span>`
            }</td>
          </tr>`,
            )
          }</tbody>
        </table>`
        : null
    }`;
}
