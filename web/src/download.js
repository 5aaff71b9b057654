// @ts-check
import { apiResponse } from './api.js';

/**
 * Downloads one file of a backup through the API (GET /api/v1/runs/{id}/files/{name}). A link
 * cannot carry the Authorization header, so the file is fetched with it and handed to the
 * browser's download as a Blob (which Chromium keeps on disk when it is large).
 * @param {string} runId
 * @param {string} name  as the manifest lists it; its segments are encoded one by one
 */
export async function downloadBackupFile(runId, name) {
  const response = await apiResponse(`/api/v1/runs/${runId}/files/${name.split('/').map(encodeURIComponent).join('/')}`);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = name.split('/').at(-1) ?? name;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has its bytes once it started; the URL is not needed after that.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
