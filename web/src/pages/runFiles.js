// @ts-check
import { useState } from 'preact/hooks';
import { ErrorNotice } from '../components.js';
import { downloadBackupFile } from '../download.js';
import { formatBytes } from '../format.js';
import { html } from '../html.js';

/** @typedef {import('../types').Run} Run */
/** @typedef {import('../types').ArtifactFile} ArtifactFile */

/**
 * A backup's files with sizes and SHA-256 (the manifest last), each with a download button
 * for admins; for others, why not.
 * @param {{ run: Run }} props
 */
export function ArtifactPanel({ run }) {
  const artifact = run.artifact;
  const [state, setState] = useState(/** @type {{ busy: string | null, error: Error | null }} */ ({ busy: null, error: null }));
  if (!artifact) return null;
  const files = [...artifact.files, artifact.manifest];
  const total = files.reduce((sum, file) => sum + file.size, 0);
  const verdict = run.actions?.download;
  const canDownload = verdict?.allowed === true;
  /** @param {ArtifactFile} file */
  const download = async (file) => {
    setState({ busy: file.name, error: null });
    try {
      await downloadBackupFile(run.id, file.name);
      setState({ busy: null, error: null });
    } catch (error) {
      setState({ busy: null, error: /** @type {Error} */ (error) });
    }
  };
  return html`<section class="card" aria-labelledby="artifact-title">
    <h2 id="artifact-title">Files</h2>
    <p class="muted wrap-anywhere">${artifact.storeUrl.replace(/\/?$/, '/')}${artifact.prefix}</p>
    ${verdict && !verdict.allowed && verdict.blockedBy !== 'state' ? html`<p class="muted" id="download-reason">Downloads: ${verdict.reason}</p>` : null}
    <${ErrorNotice} error=${state.error} title="The download failed" />
    <table class="files-table stack-table">
      <thead><tr><th scope="col">File</th><th scope="col">Size</th><th scope="col">SHA-256</th>${canDownload ? html`<th scope="col"><span class="visually-hidden">Download</span></th>` : null}</tr></thead>
      <tbody>${files.map(
        (file) => html`<tr key=${file.name} data-file=${file.name}>
        <td class="mono wrap-anywhere" data-label="File">${file.name}</td>
        <td data-label="Size">${formatBytes(file.size)}</td>
        <td class="mono hash wrap-anywhere" data-label="SHA-256">${file.sha256}</td>
        ${
          canDownload
            ? html`<td data-label=""><button type="button" class="button-quiet download" disabled=${state.busy !== null}
              aria-label=${`Download ${file.name}`} onClick=${() => download(file)}>${state.busy === file.name ? 'Downloading…' : 'Download'}</button></td>`
            : null
        }
      </tr>`,
      )}</tbody>
      <tfoot><tr><th scope="row">Total</th><td colspan=${canDownload ? 3 : 2}>${formatBytes(total)} (${total.toLocaleString()} bytes)</td></tr></tfoot>
    </table>
  </section>`;
}
