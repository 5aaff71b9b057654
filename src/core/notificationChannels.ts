import { BackstopError } from './errors.ts';

/**
 * What a channel can be told about. `recovered`: a success after a failed or timed-out run.
 * `alarm`: alarms about what did not happen, their repeats and their recoveries (outbox events
 * `alarm` and `alarm_cleared`).
 */
export const notificationEvents = ['failed', 'timed_out', 'succeeded', 'recovered', 'cancelled', 'verify_failed', 'alarm'] as const;
export type NotificationEventName = (typeof notificationEvents)[number];

/** What a channel hears when it does not say (also the migration's default). */
export const defaultNotificationEvents: NotificationEventName[] = ['failed', 'timed_out', 'recovered', 'alarm'];

/** Parses "failed,timed_out,…"; reports every unknown name at once. */
export function parseNotificationEvents(list: string): NotificationEventName[] {
  const names = list
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = names.filter((name) => !(notificationEvents as readonly string[]).includes(name));
  if (unknown.length > 0 || names.length === 0) {
    throw new BackstopError(
      'INVALID_INPUT',
      `${names.length === 0 ? 'No notification events given' : `Unknown notification event(s): ${unknown.join(', ')}`}. Use a comma-separated list of: ${notificationEvents.join(', ')}.`,
    );
  }
  return [...new Set(names)] as NotificationEventName[];
}

/** Whether `raw` parses as an http:// or https:// URL: what every outbound URL a target holds must be. */
export function isHttpUrl(raw: string): boolean {
  try {
    const url = new URL(raw);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}
