import { formatBytes } from './formatBytes.ts';

/**
 * What a notification says, decided once from an outbox payload and then written out by each
 * channel in its own form (an e-mail, a Discord embed, an Adaptive Card…). Channels render
 * this message, never the payload, so an event kind added later renders everywhere without
 * code per channel: a payload may carry its own `title`, `summary`, `action`, `since`,
 * `severity` and `details` (an object of names to short values), and what it does not carry
 * is made from the run and the target it names.
 */

export type Severity = 'error' | 'warning' | 'ok' | 'info';

export interface MessageFact {
  name: string;
  value: string;
}

export interface NotificationMessage {
  event: string;
  severity: Severity;
  /** One line: "Backup of app failed". */
  title: string;
  /** What happened, in a sentence or two (the error message included). */
  summary: string;
  /** What to do about it, or null when nothing needs doing. */
  action: string | null;
  /** ISO time since when the situation holds (a failing streak's first failure), or null. */
  since: string | null;
  /** The run's page on the dashboard (or the target's), or null without a public URL. */
  link: string | null;
  /** Name/value lines: target, run, error code, size… */
  facts: MessageFact[];
  target: string | null;
}

/** The fields of an outbox payload this reads; any other field is left alone. */
export interface PayloadView {
  event?: string;
  title?: string;
  summary?: string;
  message?: string;
  action?: string;
  since?: string | null;
  severity?: string;
  details?: Record<string, unknown>;
  target?: { name?: string } | null;
  run?: {
    id?: string;
    kind?: string;
    subjectRunId?: string | null;
    status?: string;
    trigger?: string;
    attempt?: number;
    finishedAt?: string | null;
    error?: { code?: string; message?: string } | null;
    artifact?: { files?: number; bytes?: number } | null;
  } | null;
  previousStatus?: string | null;
  /** An alarm's own words (events `alarm`, `alarm_cleared`). */
  alarm?: { kind?: string; what?: string; whatToDo?: string; since?: string | null; link?: string | null; sentCount?: number } | null;
  at?: string;
}

const severities: readonly string[] = ['error', 'warning', 'ok', 'info'];

/** What each known event is called and advises; events not listed get a generic title. */
function known(payload: PayloadView, target: string): { severity: Severity; title: string; summary: string; action: string | null } | null {
  const run = payload.run ?? {};
  const error = run.error ? ` [${run.error.code ?? 'ERROR'}] ${run.error.message ?? ''}`.trimEnd() : '';
  const size = run.artifact ? ` ${formatBytes(run.artifact.bytes ?? 0)} in ${run.artifact.files ?? 0} file(s).` : '';
  switch (payload.event) {
    case 'failed':
      return {
        severity: 'error',
        title: `Backup of ${target} failed`,
        summary: `The backup of ${target} failed:${error || ' no error was recorded.'}`,
        action:
          'Read the error on the run page, fix its cause (database reachable, credentials, store), then back up again: `backstop trigger TARGET` or "Back up now" on the dashboard.',
      };
    case 'timed_out':
      return {
        severity: 'error',
        title: `Backup of ${target} timed out`,
        summary: `The backup of ${target} did not finish in time:${error || ' its runner stopped reporting.'}`,
        action: 'Check that a worker is running and can reach the database and the store, and whether the run deadline fits the database; then back up again.',
      };
    case 'cancelled':
      return { severity: 'warning', title: `Backup of ${target} was cancelled`, summary: `The backup of ${target} was cancelled before it finished.`, action: null };
    case 'recovered':
      return {
        severity: 'ok',
        title: `Backup of ${target} recovered`,
        summary: `The backup of ${target} succeeded after a ${payload.previousStatus ?? 'failed'} run.${size}`,
        action: null,
      };
    case 'succeeded':
      return { severity: 'ok', title: `Backup of ${target} succeeded`, summary: `The backup of ${target} succeeded.${size}`, action: null };
    case 'verify_failed':
      return {
        severity: 'error',
        title: `Restore drill of ${target} failed`,
        summary: `A restore drill of ${target}${run.subjectRunId ? ` (backup ${run.subjectRunId})` : ''} failed:${error || ' no error was recorded.'}`,
        action: 'The backup may not restore. Read the drill on the run page, then take a new backup and drill it (`backstop verify RUN_ID`).',
      };
    case 'alarm':
    case 'alarm_cleared': {
      // Alarms (what did not happen) bring their own words; only the framing is decided here.
      const alarm = payload.alarm ?? {};
      const kind = humanize(alarm.kind ?? 'alarm');
      if (payload.event === 'alarm_cleared') {
        return {
          severity: 'ok',
          title: `Cleared: ${kind}: ${target}`,
          summary: alarm.what ? `Cleared: ${alarm.what}` : `The ${kind.toLowerCase()} alarm of ${target} is over.`,
          action: null,
        };
      }
      return {
        severity: alarm.kind === 'catalog_unreachable' || alarm.kind === 'store_unwritable' ? 'error' : 'warning',
        title: `${alarm.sentCount && alarm.sentCount > 1 ? 'Still: ' : ''}${kind}: ${target}`,
        summary: alarm.what ?? `${kind} for ${target}.`,
        action: alarm.whatToDo ?? null,
      };
    }
    case 'test':
      return { severity: 'info', title: `Test notification for ${target}`, summary: payload.message ?? 'A test notification from Backstop: this channel works.', action: null };
    default:
      return null;
  }
}

/** Words of alarm kinds that are abbreviations, written as people write them. */
const abbreviations: Record<string, string> = { rpo: 'RPO', wal: 'WAL' };

/** `stale_backup`, `lastGoodBackup`, `rpo_exceeded` → "Stale backup", "Last good backup", "RPO exceeded". */
function humanize(name: string): string {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/[_-]+/g, ' ')
    .trim()
    .toLowerCase()
    .split(' ')
    .map((word) => abbreviations[word] ?? word)
    .join(' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function factValue(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  return null;
}

/**
 * The message for a payload. `publicUrl` is the dashboard's address as people reach it
 * (BACKSTOP_PUBLIC_URL); without it messages carry no link. `failingSince` is what the
 * catalog knows about a failing streak when the payload does not say.
 */
export function notificationMessage(payload: PayloadView, options: { publicUrl?: string | null; failingSince?: string | null } = {}): NotificationMessage {
  const event = payload.event ?? 'event';
  const target = payload.target?.name ?? null;
  const targetWords = target ?? 'a target';
  const run = payload.run ?? null;
  const base = known(payload, targetWords);
  const title = payload.title ?? base?.title ?? `${humanize(event)}${target ? `: ${target}` : ''}`;
  const summary = payload.summary ?? base?.summary ?? payload.message ?? title;
  const action = payload.action ?? base?.action ?? null;
  const severity = (severities.includes(payload.severity ?? '') ? payload.severity : (base?.severity ?? 'warning')) as Severity;
  const since = payload.since ?? (payload.event === 'alarm' ? payload.alarm?.since : undefined) ?? options.failingSince ?? null;

  const facts: MessageFact[] = [];
  if (target) facts.push({ name: 'Target', value: target });
  if (run?.id) facts.push({ name: run.kind === 'verify' ? 'Drill' : 'Run', value: run.id });
  if (run?.error?.code) facts.push({ name: 'Error', value: run.error.code });
  if (since) facts.push({ name: severity === 'ok' ? 'Had been failing since' : 'Failing since', value: since });
  if (run?.finishedAt) facts.push({ name: 'Finished', value: run.finishedAt });
  for (const [name, value] of Object.entries(payload.details ?? {})) {
    const text = factValue(value);
    if (text !== null) facts.push({ name: humanize(name), value: text });
  }

  const dashboard = options.publicUrl ? options.publicUrl.replace(/\/+$/, '') : null;
  const link = payload.alarm?.link
    ? payload.alarm.link
    : dashboard === null
      ? null
      : run?.id
        ? `${dashboard}/#/runs/${run.id}`
        : target
          ? `${dashboard}/#/targets/${encodeURIComponent(target)}`
          : `${dashboard}/`;
  return { event, severity, title, summary, action, since, link, facts, target };
}

/** The message as plain text: an e-mail body, an ntfy message, a fallback. */
export function messageText(message: NotificationMessage): string {
  const lines = [message.summary];
  if (message.since) lines.push(`${message.severity === 'ok' ? 'It had been failing since' : 'Failing since'} ${message.since}.`);
  if (message.action) lines.push('', `What to do: ${message.action}`);
  const facts = message.facts.filter((fact) => !fact.name.endsWith('ailing since'));
  if (facts.length > 0) lines.push('', ...facts.map((fact) => `${fact.name}: ${fact.value}`));
  if (message.link) lines.push('', `Open: ${message.link}`);
  return lines.join('\n');
}
