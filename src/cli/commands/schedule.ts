import { randomBytes, randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { assertChannelUrl, defaultNotificationEvents, parseNotificationEvents } from '../../core/notificationChannels.ts';
import { validateRetentionPolicy } from '../../core/planRetention.ts';
import { parseSchedule, upcomingSlots } from '../../core/scheduleSlots.ts';
import { databaseNow } from '../../db/retention.ts';
import {
  listTargets,
  type NotificationChannel,
  type RetentionConfig,
  type ScheduleConfig,
  type TargetPolicyPatch,
  type TargetRecord,
  type VerificationPolicy,
} from '../../db/targets.ts';
import type { CommandContext } from '../context.ts';
import { printJson, table } from '../output.ts';
import { collect } from './targetOptions.ts';

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
  notifyOn?: string;
  webhookSecret?: string;
  clearNotifications?: boolean;
  verifyEvery?: string;
  verifyCron?: string;
  /** `--no-verify`: commander sets false. */
  verify?: boolean;
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
    .option('--notify-on <events>', `comma-separated: failed, timed_out, succeeded, recovered, cancelled, verify_failed (default ${defaultNotificationEvents.join(',')})`)
    .option('--webhook-secret <secret>', 'HMAC secret for the webhooks added (default: one is generated and printed once)')
    .option('--verify-every <n>', 'restore drill of every Nth successful backup (1: each one)')
    .option(
      '--verify-cron <cron>',
      "restore drill of the newest successful backup on this cron expression (in --timezone, or the schedule's); drills compare content checksums too when the target records them (--checksums)",
    );
}

export interface ParsedPolicies {
  patch: TargetPolicyPatch;
  /** Generated webhook secrets, to show once. */
  generatedSecrets: { channelId: string; secret: string }[];
}

/**
 * Turns the options into a patch; every problem is reported at once (INVALID_INPUT, exit 2).
 * `current` is the target being updated (its schedule's time zone is kept when only the cron
 * changes, and the other way round).
 */
export function parsePolicyOptions(options: PolicyOptions, current: TargetRecord | null = null): ParsedPolicies {
  const problems: string[] = [];
  const patch: TargetPolicyPatch = {};
  const generatedSecrets: ParsedPolicies['generatedSecrets'] = [];
  const attempt = (work: () => void) => {
    try {
      work();
    } catch (error) {
      if (error instanceof BackstopError) problems.push(error.message.replace(/\.$/, ''));
      else throw error;
    }
  };

  if (options.schedule === false) {
    if (options.timezone) problems.push('--timezone cannot be combined with --no-schedule');
    patch.schedule = null;
  } else if (options.schedule !== undefined || (options.timezone !== undefined && current?.schedule)) {
    const schedule: ScheduleConfig = {
      cron: options.schedule ?? current!.schedule!.cron,
      timezone: options.timezone ?? current?.schedule?.timezone ?? 'UTC',
    };
    attempt(() => parseSchedule(schedule.cron, schedule.timezone));
    patch.schedule = schedule;
  } else if (options.timezone !== undefined && options.verifyCron === undefined) {
    problems.push('--timezone needs a schedule: pass --schedule CRON (or --verify-cron CRON) as well');
  }

  const counts: [flag: string, field: keyof RetentionConfig, raw: string | undefined][] = [
    ['--keep-last', 'keepLast', options.keepLast],
    ['--keep-daily', 'daily', options.keepDaily],
    ['--keep-weekly', 'weekly', options.keepWeekly],
    ['--keep-monthly', 'monthly', options.keepMonthly],
  ];
  if (options.retention === false) {
    if (counts.some(([, , raw]) => raw !== undefined)) problems.push('--keep-* options cannot be combined with --no-retention');
    patch.retention = null;
  } else if (counts.some(([, , raw]) => raw !== undefined)) {
    // Given counts replace the same counts of the current policy; the others are kept.
    const retention: RetentionConfig = { ...(current?.retention ?? {}) };
    for (const [flag, field, raw] of counts) {
      if (raw === undefined) continue;
      const value = Number(raw);
      if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value)) problems.push(`${flag} must be a whole number, got "${raw}"`);
      else if (value === 0) delete retention[field];
      else retention[field] = value;
    }
    attempt(() => validateRetentionPolicy(retention));
    patch.retention = retention;
  }

  let on = defaultNotificationEvents as string[];
  if (options.notifyOn !== undefined) {
    attempt(() => (on = parseNotificationEvents(options.notifyOn!)));
    if (options.notifyWebhook.length + options.notifySlack.length === 0) {
      problems.push('--notify-on applies to the channels added with --notify-webhook or --notify-slack; pass one');
    }
  }
  if (options.webhookSecret !== undefined && options.notifyWebhook.length === 0) {
    problems.push('--webhook-secret applies to webhooks added with --notify-webhook; pass one');
  }
  const channels: NotificationChannel[] = [];
  for (const url of options.notifyWebhook) {
    attempt(() => assertChannelUrl(url, 'webhook'));
    const channel: NotificationChannel = { id: randomUUID(), kind: 'webhook', url, secret: options.webhookSecret, on: on as NotificationChannel['on'] };
    if (!channel.secret) {
      channel.secret = randomBytes(24).toString('base64url');
      generatedSecrets.push({ channelId: channel.id, secret: channel.secret });
    }
    channels.push(channel);
  }
  for (const url of options.notifySlack) {
    attempt(() => assertChannelUrl(url, 'slack'));
    channels.push({ id: randomUUID(), kind: 'slack', url, on: on as NotificationChannel['on'] });
  }
  if (channels.length > 0) patch.addChannels = channels;
  if (options.clearNotifications) patch.clearChannels = true;

  const verifying = options.verifyEvery !== undefined || options.verifyCron !== undefined;
  if (options.verify === false) {
    if (verifying) problems.push('--verify-every and --verify-cron cannot be combined with --no-verify');
    patch.verification = null;
  } else if (verifying) {
    // Given options replace the same fields of the current policy; the others are kept.
    const verification: VerificationPolicy = { ...(current?.verification ?? {}) };
    if (options.verifyEvery !== undefined) {
      const value = Number(options.verifyEvery);
      if (!/^\d+$/.test(options.verifyEvery.trim()) || value < 1 || value > 1000) {
        problems.push(`--verify-every must be a whole number from 1 to 1000, got "${options.verifyEvery}"`);
      } else {
        verification.everyNth = value;
      }
    }
    if (options.verifyCron !== undefined) {
      const timezone = options.timezone ?? current?.verification?.timezone ?? current?.schedule?.timezone ?? 'UTC';
      attempt(() => parseSchedule(options.verifyCron!, timezone));
      verification.cron = options.verifyCron;
      verification.timezone = timezone;
    }
    patch.verification = verification;
  }

  if (problems.length > 0) throw new BackstopError('INVALID_INPUT', problems.length === 1 ? `${problems[0]}.` : `Invalid options:\n  ${problems.join('\n  ')}`);
  return { patch, generatedSecrets };
}

/** What `target add/update` prints about policies (never a URL; generated secrets once). */
export function describePolicies(target: TargetRecord, generatedSecrets: ParsedPolicies['generatedSecrets'], now: number): string {
  const lines: string[] = [];
  if (target.schedule) {
    const next = upcomingSlots(target.schedule, now, 1)[0];
    lines.push(`  schedule: ${target.schedule.cron} (${target.schedule.timezone})${next !== undefined ? `, next run at ${new Date(next).toISOString()}` : ''}`);
  }
  if (target.retention) lines.push(`  retention: ${describeRetention(target.retention)}`);
  if (target.verification) lines.push(`  verification: ${describeVerification(target.verification)}`);
  for (const channel of target.notifications) lines.push(`  notify: ${channel.kind} ${channel.id} on ${channel.on.join(',')}${channel.signed ? ' (signed)' : ''}`);
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
      const now = await databaseNow(pool);
      const rows = (await listTargets(pool))
        .filter((target) => target.schedule)
        .map((target) => {
          let next: string[] = [];
          let error: string | null = null;
          try {
            next = upcomingSlots(target.schedule!, now, count).map((at) => new Date(at).toISOString());
          } catch (problem) {
            error = (problem as Error).message;
          }
          return { target: target.name, cron: target.schedule!.cron, timezone: target.schedule!.timezone, next, retention: target.retention, error };
        });
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
          rows.map((row) => [row.target, row.cron, row.timezone, row.error ?? row.next.join(', '), row.retention ? describeRetention(row.retention) : 'keep all']),
        )}\n`,
      );
    });
}
