// @ts-check
import { html } from './html.js';
import { formatTime } from './format.js';

/**
 * A hand-written SVG line chart over time: a few dozen points need no charting library. The
 * line joins good points; bad ones (failed runs) are red crosses. Screen readers get a summary
 * and the numbers as a table.
 */

const W = 640;
const H = 240;
const PAD = { left: 72, right: 16, top: 16, bottom: 40 };

/** @param {number} value */
function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

const shortDate = (/** @type {number} */ ms) => new Date(ms).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

/**
 * @typedef {object} ChartPoint
 * @property {number} at          ms since the epoch
 * @property {number | null | undefined} value
 * @property {boolean} bad
 * @property {string} status
 */

/**
 * @param {{ id: string, title: string, points: ChartPoint[], format: (value: number) => string }} props
 */
export function LineChart({ id, title, points, format }) {
  const plotted = /** @type {(ChartPoint & { value: number })[]} */ (points.filter((point) => point.value !== null && point.value !== undefined));
  if (plotted.length === 0) {
    return html`<figure class="chart" id=${id}><figcaption>${title}</figcaption><p class="muted">No finished backups to draw yet.</p></figure>`;
  }
  let [tMin, tMax] = [Math.min(...plotted.map((p) => p.at)), Math.max(...plotted.map((p) => p.at))];
  if (tMin === tMax) [tMin, tMax] = [tMin - 3_600_000, tMax + 3_600_000];
  const yMax = niceCeiling(Math.max(...plotted.map((p) => p.value)) * 1.05);
  const x = (/** @type {number} */ t) => PAD.left + ((t - tMin) / (tMax - tMin)) * (W - PAD.left - PAD.right);
  const y = (/** @type {number} */ v) => H - PAD.bottom - (v / yMax) * (H - PAD.top - PAD.bottom);
  const good = plotted.filter((p) => !p.bad);
  const line = good.map((p, index) => `${index === 0 ? 'M' : 'L'}${x(p.at).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * yMax);
  const xTicks = [0, 1 / 3, 2 / 3, 1].map((f) => tMin + f * (tMax - tMin));
  const latest = good.at(-1);
  const summary = `${plotted.length} backups from ${shortDate(tMin)} to ${shortDate(tMax)}${latest ? `; latest ${format(latest.value)}` : ''}; largest ${format(Math.max(...plotted.map((p) => p.value)))}.`;

  return html`<figure class="chart" id=${id}>
    <figcaption>${title}</figcaption>
    <svg viewBox=${`0 0 ${W} ${H}`} role="img" aria-labelledby=${`${id}-title ${id}-desc`} preserveAspectRatio="xMidYMid meet">
      <title id=${`${id}-title`}>${title}</title>
      <desc id=${`${id}-desc`}>${summary}</desc>
      ${yTicks.map(
        (v) => html`<g class="tick">
        <line x1=${PAD.left} x2=${W - PAD.right} y1=${y(v)} y2=${y(v)} />
        <text x=${PAD.left - 8} y=${y(v) + 4} text-anchor="end">${format(v)}</text>
      </g>`,
      )}
      ${xTicks.map((t, index) => html`<text class="tick-label" x=${x(t)} y=${H - PAD.bottom + 22} text-anchor=${index === 0 ? 'start' : index === xTicks.length - 1 ? 'end' : 'middle'}>${shortDate(t)}</text>`)}
      <path class="series" d=${line} />
      ${plotted.map((p) =>
        p.bad
          ? html`<path class="point-bad" d=${`M${x(p.at) - 4},${y(p.value) - 4} l8,8 m0,-8 l-8,8`}><title>${`${shortDate(p.at)}: ${format(p.value)} (${p.status})`}</title></path>`
          : html`<circle class="point" cx=${x(p.at)} cy=${y(p.value)} r="3.5"><title>${`${shortDate(p.at)}: ${format(p.value)}`}</title></circle>`,
      )}
    </svg>
    <details>
      <summary>${title} as a table</summary>
      <div class="table-wrap"><table>
        <thead><tr><th scope="col">Finished</th><th scope="col">Value</th><th scope="col">Outcome</th></tr></thead>
        <tbody>${plotted.map((p) => html`<tr><td>${formatTime(new Date(p.at).toISOString())}</td><td>${format(p.value)}</td><td>${p.status}</td></tr>`)}</tbody>
      </table></div>
    </details>
  </figure>`;
}
