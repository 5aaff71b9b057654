/** Formatting for people: sizes, durations, ages, times. Pure functions of their arguments. */

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

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

export function formatRate(bytesPerSecond) {
  return bytesPerSecond ? `${formatBytes(bytesPerSecond)}/s` : '—';
}

/**
 * A duration in seconds, for people: "618 ms", "4.2 s", "38 s", "2 min 5 s", "3 h 10 min",
 * "2 d 4 h". Under a second it is milliseconds, so a quick run never reads "0 s". A negative
 * span is the browser's clock and the catalog's disagreeing (clock skew), not time running
 * backwards: it reads as no time at all. Each unit is rounded before it is shown, so 59.7 s
 * is "1 min 0 s", never "60 s".
 */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const ms = Math.round(Math.max(0, seconds) * 1000);
  if (ms < 1000) return `${ms} ms`;
  if (ms < 9_950) return `${(ms / 1000).toFixed(1)} s`;
  const whole = Math.round(ms / 1000);
  if (whole < 60) return `${whole} s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes} min ${whole % 60} s`;
  const totalMinutes = Math.round(whole / 60);
  const hours = Math.floor(totalMinutes / 60);
  if (hours < 48) return `${hours} h ${totalMinutes % 60} min`;
  const totalHours = Math.round(totalMinutes / 60);
  return `${Math.floor(totalHours / 24)} d ${totalHours % 24} h`;
}

/** "5 min ago" / "in 3 h", from milliseconds between `at` and `now`. */
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

export function formatTime(at) {
  if (!at) return '—';
  return new Date(at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function shortId(id) {
  return id ? id.slice(0, 8) : '';
}
