import type { TargetUpdate, TargetWithSecret } from '../../db/targets.ts';

/**
 * The stored value of a write-only field the target row read here does not carry (its ping
 * URL: only whether one is set). It equals nothing, so sending a URL counts as a change.
 */
const NOT_READ = { notRead: true };

/** Each updatable field and where the stored target holds its current value (with its secrets). */
const currentValue: { [K in keyof Required<TargetUpdate>]: (target: TargetWithSecret) => unknown } = {
  name: (target) => target.name,
  databaseUrl: (target) => target.databaseUrl,
  storeUrl: (target) => target.storeUrl,
  options: (target) => target.options,
  exclusive: (target) => target.exclusive,
  maxAttempts: (target) => target.maxAttempts,
  schedule: (target) => target.schedule,
  retention: (target) => target.retention,
  verification: (target) => target.verification,
  notifications: (target) => target.notificationChannels,
  executor: (target) => target.executor,
  paused: (target) => target.paused,
  maxBackupAge: (target) => target.maxBackupAge,
  pingUrl: (target) => (target.ping ? NOT_READ : null),
};

/**
 * The names of the fields an update really changes, for the audit trail: a field sent with
 * the value it already has is no change. Values are compared here and never leave: a
 * database URL, a store URL or a channel's webhook URL and secret are secrets.
 */
export function changedTargetFields(current: TargetWithSecret, update: TargetUpdate): string[] {
  return (Object.keys(currentValue) as (keyof TargetUpdate)[]).filter(
    (field) => update[field] !== undefined && canonicalJson(update[field]) !== canonicalJson(currentValue[field](current)),
  );
}

/** JSON with object keys sorted: jsonb hands objects back in its own key order. */
function canonicalJson(value: unknown): string {
  if (value === NOT_READ) return '(not read)';
  return JSON.stringify(value ?? null, (_key, item: unknown) =>
    item && typeof item === 'object' && !Array.isArray(item) ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => a.localeCompare(b))) : item,
  );
}
