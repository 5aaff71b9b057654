/** `--since` / `since`: a duration back from now (`30m`, `24h`, `7d`, `2w`) or a time (`2026-01-31`, ISO 8601). */
export type AuditSince = { agoMs: number } | { time: string };

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
export const SINCE_PATTERN = /^(?:\d{1,6}[smhdw]|\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)?)$/;

/** Null when it is neither (the schema's pattern says so first). */
export function parseAuditSince(text: string): AuditSince | null {
  const duration = /^(\d{1,6})([smhdw])$/.exec(text);
  if (duration) return { agoMs: Number(duration[1]) * UNIT_MS[duration[2]!]! };
  if (!SINCE_PATTERN.test(text)) return null;
  const time = new Date(text);
  return Number.isNaN(time.getTime()) ? null : { time: time.toISOString() };
}
