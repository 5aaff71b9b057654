import { randomBytes, randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { BackstopError, type FieldProblem } from '../../core/errors.ts';
import { invalidInput } from '../../core/inputProblems.ts';
import { defaultNotificationEvents, type NotificationEventName } from '../../core/notificationChannels.ts';
import { upcomingSlots } from '../../core/scheduleSlots.ts';
import { formatDuration } from '../../core/alarms.ts';
import { listTargetSchedules } from '../../operations/targets/listTargetSchedules.ts';
import type { RetentionConfig, TargetRecord, VerificationPolicy } from '../../operations/targets/targetDeps.ts';
import type { TargetUpdateInput } from '../../operations/targets/targetInput.ts';
import type { CommandContext } from '../context.ts';
import { printJson, table } from '../output.ts';
import { healthWords } from './channels.ts';
import { collect, flagNumber } from './targetOptions.ts';

/** Options shared by `target add` and `target update`: schedule, retention, notifications. */
export interface PolicyOptions {
  schedule?: string | false;
  timezone?: string;
  keepLast?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  retention?: boolean;
  notifyWebhook: string[];
  notifySlack: string[];
  notifyDiscord: string[];
  notifyTeams: string[];
  notifyNtfy: string[];
  notifyChannel: string[];
  notifyOn?: string;
  webhookSecret?: string;
  clearNotifications?: boolean;
  verifyEvery?: string;
  verifyCron?: string;
  /** `--no-verify`: commander sets false. */
  verify?: boolean;
  /** `--no-max-backup-age` / `--no-ping-url` (update only): false. */
  maxBackupAge?: string | false;
  pingUrl?: string | false;
}

/** "26h", "90m", "1d", "45s" or plain seconds, as whole seconds; NaN for anything else (the operation says why). */
export function durationSeconds(text: string): number {
  const match = /^\s*(\d+)\s*(s|m|h|d)?\s*$/.exec(text);
  if (!match) return Number.NaN;
  return Number(match[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[(match[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
}

export function addPolicyOptions(command: Command): Command {
  return command
    .option('--schedule <cron>', 'back up on this cron expression, e.g. "0 3 * * *" (5 fields, or 6 with seconds first)')
    .option('--timezone <tz>', 'time zone of the schedule and of retention days (IANA name)', undefined)
    .option('--keep-last <n>', 'retention: keep the N newest backups')
    .option('--keep-daily <n>', 'retention: keep the newest backup of each of the last N days with backups')
    .option('--keep-weekly <n>', 'retention: … of each of the last N ISO weeks')
    .option('--keep-monthly <n>', 'retention: … of each of the last N months')
    .option('--notify-webhook <url>', 'POST signed JSON to this URL on the --notify-on events; repeatable', collect, [])
    .option('--notify-slack <url>', 'post to this Slack incoming webhook on the --notify-on events; repeatable', collect, [])
    .option('--notify-discord <url>', 'post to this Discord webhook on the --notify-on events; repeatable', collect, [])
    .option('--notify-teams <url>', 'post an Adaptive Card to this Teams workflow webhook on the --notify-on events; repeatable', collect, [])
    .option('--notify-ntfy <url>', 'publish to this ntfy topic URL on the --notify-on events; repeatable (a protected topic: use a shared channel with --token)', collect, [])
    .option('--notify-channel <name>', 'notify this shared channel (`backstop channel add`: e-mail, Telegram…) on the --notify-on events; repeatable', collect, [])
    .option('--notify-on <events>', `comma-separated: failed, timed_out, succeeded, recovered, cancelled, verify_failed, alarm (default ${defaultNotificationEvents.join(',')})`)
    .option('--webhook-secret <secret>', 'HMAC secret for the webhooks added (default: one is generated and printed once)')
    .option('--verify-every <n>', 'restore drill of every Nth successful backup (1: each one)')
    .option('--max-backup-age <duration>', "alarm when the newest good backup is older than this (26h, 90m, 2d or seconds; default: the schedule's interval plus BACKSTOP_ALARM_GRACE)")
    .option('--ping-url <url>', 'Healthchecks-style URL pinged when a backup starts (/start), succeeds, and fails (/fail); a secret, never shown')
    .option(
      '--verify-cron <cron>',
      "restore drill of the newest successful backup on this cron expression (in --timezone, or the schedule's); drills compare content checksums too when the target records them (--checksums)",
    );
}

export interface ParsedPolicies {
  /** The schedule, retention, drill and notification fields of the target input, as the flags set them. */
  input: Pick<TargetUpdateInput, 'schedule' | 'retention' | 'verification' | 'notifications' | 'maxBackupAge' | 'pingUrl'>;
  /** Generated webhook secrets, to show once. */
  generatedSecrets: { channelId: string; secret: string }[];
}

/**
 * Turns the flags into target input fields. Flags that contradict each other are refused here
 * (every one at once, INVALID_INPUT); the values themselves are the operation's to judge.
 * `current` is the target being updated: a cron given alone keeps its time zone and the other
 * way round, counts given replace the same counts of its retention, and channels are added to
 * its own.
 */
export function parsePolicyOptions(options: PolicyOptions, current: TargetRecord | null = null): ParsedPolicies {
  const problems: FieldProblem[] = [];
  const input: ParsedPolicies['input'] = {};
  const generatedSecrets: ParsedPolicies['generatedSecrets'] = [];

  if (options.schedule === false) {
    if (options.timezone) problems.push({ field: '--timezone', message: 'cannot be combined with --no-schedule' });
    input.schedule = null;
  } else if (options.schedule !== undefined || (options.timezone !== undefined && current?.schedule)) {
    input.schedule = {
      cron: options.schedule ?? current!.schedule!.cron,
      timezone: options.timezone ?? current?.schedule?.timezone ?? 'UTC',
    };
  } else if (options.timezone !== undefined && options.verifyCron === undefined) {
    problems.push({ field: '--timezone', message: 'needs a schedule: pass --schedule CRON (or --verify-cron CRON) as well' });
  }

  const counts: [flag: string, field: keyof RetentionConfig, raw: string | undefined][] = [
    ['--keep-last', 'keepLast', options.keepLast],
    ['--keep-daily', 'daily', options.keepDaily],
    ['--keep-weekly', 'weekly', options.keepWeekly],
    ['--keep-monthly', 'monthly', options.keepMonthly],
  ];
  if (options.retention === false) {
    if (counts.some(([, , raw]) => raw !== undefined)) problems.push({ field: '--keep-*', message: 'cannot be combined with --no-retention' });
    input.retention = null;
  } else if (counts.some(([, , raw]) => raw !== undefined)) {
    // Given counts replace the same counts of the current policy; 0 removes that rule.
    const retention: RetentionConfig = { ...(current?.retention ?? {}) };
    for (const [, field, raw] of counts) {
      if (raw === undefined) continue;
      const value = flagNumber(raw);
      if (value === 0) delete retention[field];
      else retention[field] = value;
    }
    input.retention = retention;
  }

  const adding =
    options.notifyWebhook.length + options.notifySlack.length + options.notifyDiscord.length + options.notifyTeams.length + options.notifyNtfy.length + options.notifyChannel.length > 0;
  if (options.notifyOn !== undefined && !adding) {
    problems.push({
      field: '--notify-on',
      message: 'applies to the channels added with --notify-webhook, --notify-slack, --notify-discord, --notify-teams, --notify-ntfy or --notify-channel; pass one',
    });
  }
  if (options.webhookSecret !== undefined && options.notifyWebhook.length === 0) {
    problems.push({ field: '--webhook-secret', message: 'applies to webhooks added with --notify-webhook; pass one' });
  }
  if (adding || options.clearNotifications) {
    const on = (options.notifyOn
      ?.split(',')
      .map((name) => name.trim())
      .filter(Boolean) ?? defaultNotificationEvents) as NotificationEventName[];
    // Channels of the target are kept by id (their URLs and secrets stay stored).
    const kept: NonNullable<TargetUpdateInput['notifications']> = options.clearNotifications
      ? []
      : (current?.notifications ?? []).map(({ id, kind, on: events, channel }) => ({ id, kind, on: events, ...(channel !== undefined ? { channel } : {}) }));
    const added: NonNullable<TargetUpdateInput['notifications']> = [];
    for (const url of options.notifyWebhook) {
      const id = randomUUID();
      let secret = options.webhookSecret;
      if (secret === undefined) {
        secret = randomBytes(24).toString('base64url');
        generatedSecrets.push({ channelId: id, secret });
      }
      added.push({ id, kind: 'webhook', url, secret, on });
    }
    for (const url of options.notifySlack) added.push({ id: randomUUID(), kind: 'slack', url, on });
    for (const url of options.notifyDiscord) added.push({ id: randomUUID(), kind: 'discord', url, on });
    for (const url of options.notifyTeams) added.push({ id: randomUUID(), kind: 'teams', url, on });
    for (const url of options.notifyNtfy) added.push({ id: randomUUID(), kind: 'ntfy', url, on });
    for (const channel of options.notifyChannel) added.push({ id: randomUUID(), kind: 'shared', channel, on });
    input.notifications = [...kept, ...added];
  }

  const verifying = options.verifyEvery !== undefined || options.verifyCron !== undefined;
  if (options.verify === false) {
    if (verifying) problems.push({ field: '--verify-every', message: 'cannot be combined with --no-verify (nor can --verify-cron)' });
    input.verification = null;
  } else if (verifying) {
    // Given options replace the same fields of the current policy; the others are kept.
    const verification: VerificationPolicy = { ...(current?.verification ?? {}) };
    if (options.verifyEvery !== undefined) verification.everyNth = flagNumber(options.verifyEvery);
    if (options.verifyCron !== undefined) {
      verification.cron = options.verifyCron;
      verification.timezone = options.timezone ?? current?.verification?.timezone ?? current?.schedule?.timezone ?? 'UTC';
    }
    input.verification = verification;
  }

  if (options.maxBackupAge === false) input.maxBackupAge = null;
  else if (options.maxBackupAge !== undefined) input.maxBackupAge = durationSeconds(options.maxBackupAge);
  if (options.pingUrl === false) input.pingUrl = null;
  else if (options.pingUrl !== undefined) input.pingUrl = options.pingUrl;

  if (problems.length > 0) throw invalidInput(problems);
  return { input, generatedSecrets };
}

/** What `target add/update` prints about policies (never a URL; generated secrets once). */
export function describePolicies(target: TargetRecord, generatedSecrets: ParsedPolicies['generatedSecrets'], now: number): string {
  const lines: string[] = [];
  if (target.schedule) {
    const next = target.paused ? undefined : upcomingSlots(target.schedule, now, 1)[0];
    const when = target.paused ? ', paused' : next !== undefined ? `, next run at ${new Date(next).toISOString()}` : '';
    lines.push(`  schedule: ${target.schedule.cron} (${target.schedule.timezone})${when}`);
  }
  if (target.retention) lines.push(`  retention: ${describeRetention(target.retention)}`);
  if (target.verification) lines.push(`  verification: ${describeVerification(target.verification)}`);
  lines.push(
    `  alarms: ${target.maxBackupAge !== null ? `backup_overdue after ${formatDuration(target.maxBackupAge * 1000)}` : target.schedule ? "backup_overdue after the schedule's interval plus the grace" : 'no backup age bound (no schedule)'}${target.ping ? '; heartbeat ping URL set' : ''}`,
  );
  for (const channel of target.notifications) {
    const what = channel.kind === 'shared' ? `shared channel ${channel.channel}` : channel.kind;
    const health = channel.health ? `; ${healthWords(channel.health)}` : '';
    lines.push(`  notify: ${what} ${channel.id} on ${channel.on.join(',')}${channel.signed ? ' (signed)' : ''}${health}`);
  }
  for (const { channelId, secret } of generatedSecrets) {
    lines.push(`  webhook ${channelId} signing secret (shown once, keep it to verify X-Backstop-Signature): ${secret}`);
  }
  return lines.map((line) => `${line}\n`).join('');
}

export function describeVerification(verification: VerificationPolicy): string {
  const parts = [
    verification.everyNth !== undefined ? (verification.everyNth === 1 ? 'a drill of every backup' : `a drill of every ${verification.everyNth}th backup`) : '',
    verification.cron !== undefined ? `a drill on ${verification.cron} (${verification.timezone ?? 'UTC'})` : '',
  ].filter(Boolean);
  return parts.join(', ') || 'none';
}

export function describeRetention(retention: RetentionConfig): string {
  const parts = [
    retention.keepLast ? `last ${retention.keepLast}` : '',
    retention.daily ? `${retention.daily} daily` : '',
    retention.weekly ? `${retention.weekly} weekly` : '',
    retention.monthly ? `${retention.monthly} monthly` : '',
  ].filter(Boolean);
  return parts.join(', ') || 'none';
}

/** `backstop schedules`: every scheduled target with its next slots. */
export function registerScheduleCommands(program: Command, context: () => CommandContext): void {
  program
    .command('schedules')
    .description('List targets with a schedule and their next runs (set one with `target add|update --schedule CRON`).')
    .option('--count <n>', 'next runs shown per target', '3')
    .option('--json', 'print JSON')
    .action(async (options: { count: string; json?: boolean }) => {
      const count = Number(options.count);
      if (!Number.isInteger(count) || count < 1 || count > 100) {
        throw new BackstopError('INVALID_INPUT', `--count must be a whole number from 1 to 100, got "${options.count}".`);
      }
      const ctx = context();
      const { pool } = await ctx.catalog();
      const rows = await listTargetSchedules({ pool }, count);
      if (options.json) {
        printJson(rows);
        return;
      }
      if (rows.length === 0) {
        process.stdout.write('No target has a schedule. Add one with `backstop target update NAME --schedule "0 3 * * *" --timezone UTC`.\n');
        return;
      }
      process.stdout.write(
        `${table(
          ['TARGET', 'CRON', 'TIMEZONE', 'NEXT', 'RETENTION'],
          rows.map((row) => [
            row.target,
            row.cron,
            row.timezone,
            row.error ?? (row.paused ? 'paused' : row.next.join(', ')),
            row.retention ? describeRetention(row.retention) : 'keep all',
          ]),
        )}\n`,
      );
    });
}
