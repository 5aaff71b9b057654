// @ts-check
import { useMemo } from 'preact/hooks';
import { formatBytes, formatDuration, formatRelative, formatTime } from '../format.js';
import { html } from '../html.js';
import { useNow } from '../hooks.js';

/** @typedef {import('../types').Target} Target */
/** @typedef {import('../types').TargetContinuity} TargetContinuity */

/** A stream state as a badge, in the colours of run statuses. */
const streamColours = /** @type {const} */ ({ streaming: 'succeeded', starting: 'running', stopped: 'failed' });

/**
 * A continuous target's RPO as shown: the server's figure (now minus the recovery point, by the
 * catalog's clock, as /metrics reports it) grown by the time since it was read, so it goes on
 * counting between reloads without trusting the browser's clock against the catalog's.
 * @param {number} seconds  the server's figure
 * @param {number} readAt   when it was read (this browser's clock)
 * @param {number} now
 */
export function liveRpo(seconds, readAt, now) {
  return seconds + Math.max(0, (now - readAt) / 1000);
}

/**
 * The server's words without their command lines ("; run `backstop target update …` to start
 * again", "; then `backstop …`"): the dashboard says who does that its own way.
 * @param {string} text
 */
export function withoutCommands(text) {
  return text.replace(/;?\s*(?:run|then|with)\s+`[^`]*`[^;]*/g, '').replaceAll('`', '');
}

/**
 * The RPO against its bound, as a phrase that says which side of it the target is on.
 * @param {{ seconds: number, maxSeconds: number, state: string, id?: string }} props
 */
export function RpoFigure({ seconds, maxSeconds, state, id }) {
  const over = state === 'streaming' && seconds > maxSeconds;
  return html`<span id=${id} data-rpo-over=${over ? 'true' : 'false'}>${formatDuration(seconds)}</span>
    <span class="muted"> (bound ${formatDuration(maxSeconds)})</span>${over ? html` <span class="status status-failed">over its bound</span>` : null}`;
}

/**
 * A continuous target's protection (GET /api/v1/targets/{name} `continuity` and `continuous`):
 * the change stream, the current RPO against its bound, the restorable window with its gaps,
 * every limit with its message, the tables not continuously protected with their fix, and the
 * settings. A point-in-time restore is started from `actions`.
 * @param {{ target: Target, continuity: TargetContinuity, actions?: import('preact').ComponentChildren }} props
 */
export function ContinuityPanel({ target, continuity, actions }) {
  const now = useNow(1000);
  const readAt = useMemo(() => Date.now(), [continuity]);
  const settings = target.continuous;
  const { window } = continuity;
  const rpo = liveRpo(continuity.rpoSeconds, readAt, now);
  return html`<section class="card" aria-labelledby="continuity-title" id="continuity">
    <h2 id="continuity-title">Continuous backup</h2>
    ${actions}
    <dl class="facts facts-row">
      <div><dt>Change stream</dt><dd id="continuity-state" data-state=${continuity.state}>
        <span class=${`status status-${streamColours[continuity.state]}`}>${continuity.state}</span>
        ${continuity.stoppedReason ? html` <span>${withoutCommands(continuity.stoppedReason)}.</span> An administrator starts it again by turning continuity on for this target.` : null}
        ${continuity.stoppedAt ? html` <span class="muted">(${formatRelative(continuity.stoppedAt, now)})</span>` : null}
      </dd></div>
      <div><dt>RPO</dt><dd><${RpoFigure} id="continuity-rpo" seconds=${rpo} maxSeconds=${continuity.maxRpoSeconds} state=${continuity.state} />
        ${continuity.state === 'stopped' ? html`<br /><span class="muted">Not growing smaller: nothing is streamed while the stream is stopped.</span>` : null}</dd></div>
      <div><dt>Every commit stored up to</dt><dd title=${formatTime(continuity.recoveryPoint)}>${formatTime(continuity.recoveryPoint)}</dd></div>
      <div><dt>WAL the slot holds back</dt><dd>${formatBytes(continuity.retainedWalBytes)}</dd></div>
    </dl>
    <h3>Restorable window</h3>
    ${
      window.ranges.length === 0
        ? html`<p id="continuity-window" class="muted">Nothing is restorable to a point in time yet.</p>`
        : html`<ul class="plain" id="continuity-window">${window.ranges.map(
            (range) => html`<li key=${`${range.from.lsn}-${range.to.lsn}`} data-from=${range.from.at} data-to=${range.to.at}>
              From <time datetime=${range.from.at}>${formatTime(range.from.at)}</time> to <time datetime=${range.to.at}>${formatTime(range.to.at)}</time>
              <span class="muted mono">LSN ${range.from.lsn} to ${range.to.lsn}</span>
            </li>`,
          )}</ul>`
    }
    <h3>What limits it</h3>
    ${
      window.limits.length === 0
        ? html`<p class="muted" id="continuity-limits">Nothing: every commit of the window can be restored.</p>`
        : html`<ul class="plain" id="continuity-limits">${window.limits.map((limit, index) => html`<li key=${index} data-limit=${limit.kind}><span class="mono">${limit.kind}</span>: ${withoutCommands(limit.message)}</li>`)}</ul>`
    }
    ${
      continuity.unprotectedTables.length > 0
        ? html`<h3>Not continuously protected</h3>
          <p class="muted">Restored as of the base backup only, not of the point.</p>
          <ul class="plain" id="continuity-unprotected">${continuity.unprotectedTables.map(
            (table) => html`<li key=${`${table.schema}.${table.table}`} data-table=${`${table.schema}.${table.table}`}>
              <code>${table.schema}.${table.table}</code>: ${table.reason}<br /><span class="muted">Fix:</span> <code class="wrap-anywhere">${withoutCommands(table.fix)}</code>, then have an administrator turn continuity on again for this target, which publishes it.
            </li>`,
          )}</ul>`
        : null
    }
    ${
      settings
        ? html`<h3>Settings</h3>
          <dl class="facts facts-row" id="continuity-settings">
            <div><dt>A segment closes after</dt><dd>${formatDuration(settings.segmentSeconds)} or ${formatBytes(settings.segmentBytes)}</dd></div>
            <div><dt>Slot warning at</dt><dd>${formatBytes(settings.slotWarnBytes)} of WAL</dd></div>
            <div><dt>Slot dropped past</dt><dd>${formatBytes(settings.slotLimitBytes)} of WAL</dd></div>
            <div><dt>Maximum RPO</dt><dd>${formatDuration(settings.maxRpoSeconds)}</dd></div>
            <div><dt>Tables followed</dt><dd>${settings.tables ? settings.tables.join(', ') : 'every table that can be followed'}</dd></div>
            <div><dt>Slot and publication</dt><dd class="mono wrap-anywhere">${continuity.slot}</dd></div>
          </dl>`
        : html`<p class="muted">Continuity is off: the stored base backups and segments stay restorable.</p>`
    }
  </section>`;
}
