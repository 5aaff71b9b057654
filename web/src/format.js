// @ts-check
/** Formatting for people: sizes, durations, ages, times. Pure functions of their arguments. */

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** @param {number | null | undefined} bytes */
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '—';
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** @param {number | null | undefined} bytesPerSecond */
export function formatRate(bytesPerSecond) {
  return bytesPerSecond ? `${formatBytes(bytesPerSecond)}/s` : '—';
}

/** @param {number | null | undefined} seconds */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds === 0) return '0 s';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/**
 * "5 min ago" / "in 3 h", from milliseconds between `at` and `now`.
 * @param {string | null | undefined} at
 */
export function formatRelative(at, now = Date.now()) {
  if (!at) return '—';
  const ms = Date.parse(at) - now;
  const abs = Math.abs(ms) / 1000;
  let text;
  if (abs < 45) text = `${Math.round(abs)} s`;
  else if (abs < 45 * 60) text = `${Math.round(abs / 60)} min`;
  else if (abs < 36 * 3600) text = `${Math.round(abs / 3600)} h`;
  else text = `${Math.round(abs / 86400)} d`;
  return ms < 0 ? `${text} ago` : `in ${text}`;
}

/** @param {string | null | undefined} at */
export function formatTime(at) {
  if (!at) return '—';
  return new Date(at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** @param {string | null | undefined} id */
export function shortId(id) {
  return id ? id.slice(0, 8) : '';
}
