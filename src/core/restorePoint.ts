import { BackstopError } from './errors.ts';
import { lsnToBigInt } from './changeSegment.ts';

/**
 * Where a point-in-time restore stops: after the newest stored transaction, after the last
 * transaction committed at or before a time, or after the last whose commit LSN is at or
 * before an LSN.
 */
export type RestorePoint = { kind: 'latest' } | { kind: 'lsn'; lsn: bigint; text: string } | { kind: 'time'; micros: bigint; text: string };

const isoPattern = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}(?::?\d{2})?)$/i;

/**
 * Microseconds since the epoch of an ISO 8601 time with its offset. Commit times carry
 * microseconds (PostgreSQL's precision) and JavaScript dates only milliseconds: two commits a
 * few hundred microseconds apart must stay apart, so times are compared as these integers.
 * Null for anything else, a time without an offset included (ambiguous: whose midnight?).
 */
export function isoToMicros(text: string): bigint | null {
  const match = isoPattern.exec(text.trim());
  if (!match) return null;
  const [, year, month, day, hour, minute, second, fraction = '', zone] = match as unknown as string[];
  const ms = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second));
  if (Number.isNaN(ms) || Number(month) > 12 || Number(day) > 31 || Number(hour) > 23 || Number(minute) > 59 || Number(second) > 60) return null;
  let offsetMinutes = 0;
  if (zone!.toUpperCase() !== 'Z') {
    const digits = zone!.slice(1).replace(':', '');
    offsetMinutes = (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0')) * (zone![0] === '-' ? -1 : 1);
  }
  const micros = BigInt(fraction.padEnd(6, '0').slice(0, 6));
  return (BigInt(ms) - BigInt(offsetMinutes) * 60_000n) * 1000n + micros;
}

/** An ISO 8601 UTC time with microseconds, for printing a commit time kept as micros. */
export function microsToIso(micros: bigint): string {
  const ms = micros / 1000n;
  const rest = String(micros % 1_000_000n).padStart(6, '0');
  return `${new Date(Number(ms)).toISOString().slice(0, 19)}.${rest}Z`;
}

/** `--at`: `latest`, an LSN (`0/16B3748`) or a time with its offset (`2026-12-06T12:30:00Z`). */
export function parseRestorePoint(text: string): RestorePoint {
  const trimmed = text.trim();
  if (trimmed.toLowerCase() === 'latest') return { kind: 'latest' };
  if (/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i.test(trimmed)) return { kind: 'lsn', lsn: lsnToBigInt(trimmed), text: trimmed.toUpperCase() };
  const micros = isoToMicros(trimmed);
  if (micros !== null) return { kind: 'time', micros, text: trimmed };
  throw new BackstopError(
    'INVALID_INPUT',
    `${JSON.stringify(text)} is not a restore point: give \`latest\`, an LSN such as 0/16B3748, or a time with its offset such as 2026-12-06T12:30:00Z or 2026-12-06 13:30:00+01:00.`,
    { field: 'at' },
  );
}

export function describeRestorePoint(point: RestorePoint): string {
  return point.kind === 'latest' ? 'latest' : point.kind === 'lsn' ? `LSN ${point.text}` : point.text;
}
