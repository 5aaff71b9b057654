import type { Command } from 'commander';
import type { ChannelSettingsInput } from '../../core/channelSettings.ts';
import { BackstopError } from '../../core/errors.ts';
import { sendSharedChannelTest, sendTestNotification, type TestNotificationResult } from '../../operations/sendTestNotification.ts';
import { addSharedChannel, listChannels, removeSharedChannel, showChannel, updateSharedChannel, type SharedChannelRecord } from '../../operations/sharedChannels.ts';
import type { CommandContext } from '../context.ts';
import { printJson, table } from '../output.ts';
import { collect, flagNumber, sayingFlags } from './targetOptions.ts';

interface SettingFlags {
  kind?: string;
  url?: string;
  secret?: string;
  token?: string;
  botToken?: string;
  chatId?: string;
  apiUrl?: string;
  smtpHost?: string;
  smtpPort?: string;
  smtpSecurity?: string;
  smtpUser?: string;
  smtpPassword?: string;
  from?: string;
  to: string[];
  json?: boolean;
}

/** The flag of each setting, for errors said in the CLI's words. */
const settingFlags: Record<string, string> = {
  name: 'NAME',
  kind: '--kind',
  url: '--url',
  secret: '--secret',
  token: '--token',
  botToken: '--bot-token',
  chatId: '--chat-id',
  apiUrl: '--api-url',
  host: '--smtp-host',
  port: '--smtp-port',
  security: '--smtp-security',
  username: '--smtp-user',
  password: '--smtp-password',
  from: '--from',
  to: '--to',
};
for (let index = 0; index < 50; index++) settingFlags[`to.${index}`] = '--to';

function addSettingOptions(command: Command): Command {
  return command
    .option('--url <url>', 'webhook, slack, discord, teams: the URL to POST to; ntfy: the topic URL, e.g. https://ntfy.sh/TOPIC (secret, never shown)')
    .option('--secret <secret>', 'webhook: HMAC signing secret, 16+ characters (secret)')
    .option('--token <token>', 'ntfy: access token for a protected topic (secret)')
    .option('--bot-token <token>', 'telegram: the bot token from @BotFather (secret)')
    .option('--chat-id <id>', 'telegram: the chat id, or @channelname')
    .option('--api-url <url>', 'telegram: the Bot API base URL (default https://api.telegram.org)')
    .option('--smtp-host <host>', 'email: the SMTP server')
    .option('--smtp-port <port>', 'email: its port (default 587 for starttls, 465 for tls, 25 for none)')
    .option('--smtp-security <mode>', 'email: starttls (default), tls or none')
    .option('--smtp-user <user>', 'email: SMTP user name')
    .option('--smtp-password <password>', 'email: SMTP password (secret)')
    .option('--from <address>', 'email: the sender address')
    .option('--to <address>', 'email: a recipient; repeatable', collect, [])
    .option('--json', 'print the channel as JSON');
}

/** The settings the flags give; absent flags are left out (an update keeps those). */
function settingsFrom(flags: SettingFlags): Omit<ChannelSettingsInput, 'kind'> & { kind?: string } {
  const settings: Record<string, unknown> = {};
  const set = (key: string, value: unknown) => {
    if (value !== undefined) settings[key] = value;
  };
  set('kind', flags.kind);
  set('url', flags.url);
  set('secret', flags.secret);
  set('token', flags.token);
  set('botToken', flags.botToken);
  set('chatId', flags.chatId);
  set('apiUrl', flags.apiUrl);
  set('host', flags.smtpHost);
  set('port', flags.smtpPort === undefined ? undefined : flagNumber(flags.smtpPort));
  set('security', flags.smtpSecurity);
  set('username', flags.smtpUser);
  set('password', flags.smtpPassword);
  set('from', flags.from);
  if (flags.to.length > 0) settings.to = flags.to;
  return settings as Omit<ChannelSettingsInput, 'kind'>;
}

/** A channel for a person: its settings but the secrets, which are only named. */
function describeChannel(channel: SharedChannelRecord): string {
  const { kind: _kind, secretsSet, ...visible } = channel.settings;
  const lines = [`channel ${channel.name} (${channel.kind})`];
  for (const [key, value] of Object.entries(visible)) lines.push(`  ${key}: ${Array.isArray(value) ? value.join(', ') : String(value)}`);
  if (secretsSet.length > 0) lines.push(`  secrets set: ${secretsSet.join(', ')} (never shown)`);
  lines.push(`  used by: ${channel.usedBy.length > 0 ? channel.usedBy.join(', ') : 'no target yet (`backstop target update NAME --notify-channel CHANNEL`)'}`);
  lines.push(`  status: ${healthWords(channel.health)}`);
  return `${lines.join('\n')}\n`;
}

export function healthWords(health: SharedChannelRecord['health']): string {
  if (health.failingSince) return `FAILING since ${health.failingSince} (${health.failures} attempt(s) in a row): ${health.lastError ?? 'unknown error'}`;
  if (health.lastDeliveredAt) return `ok, last delivered ${health.lastDeliveredAt}`;
  return 'nothing sent yet';
}

function printTestResult(result: TestNotificationResult, json: boolean | undefined, what: string): void {
  if (json) printJson(result);
  else if (result.delivered) process.stdout.write(`Test notification delivered to ${what}${result.status !== undefined ? ` (HTTP ${result.status})` : ''}.\n`);
  else process.stdout.write(`Test notification to ${what} FAILED: ${result.error}\n`);
  // A failed test is the answer, not an error of the command; a script still sees it.
  if (!result.delivered) process.exitCode = 1;
}

export function registerChannelCommands(program: Command, context: () => CommandContext): void {
  const channel = program
    .command('channel')
    .description('Manage shared notification channels (email, discord, telegram, teams, ntfy, webhook, slack) that targets use by name: add, list, show, update, remove, test.');

  addSettingOptions(
    channel
      .command('add')
      .description('Add a shared channel. Its secrets (--url, --secret, --token, --bot-token, --smtp-password) are stored and never shown again.')
      .argument('<name>', 'lowercase name: letters, digits, ".", "_", "-"')
      .requiredOption('--kind <kind>', 'email, discord, telegram, teams, ntfy, webhook or slack'),
  ).action((name: string, flags: SettingFlags) =>
    sayingFlags(settingFlags, async () => {
      const created = await addSharedChannel((await context().catalog()).pool, { name, ...settingsFrom(flags) }, context().actor);
      if (flags.json) printJson(created);
      else process.stdout.write(`Channel ${created.name} added. Send it a test with \`backstop channel test ${created.name}\`.\n${describeChannel(created)}`);
    }),
  );

  addSettingOptions(
    channel
      .command('update')
      .description('Change a shared channel: the settings given replace the stored ones, the others (secrets included) are kept.')
      .argument('<name>', 'channel name')
      .option('--kind <kind>', 'a new kind (starts from no settings)'),
  ).action((name: string, flags: SettingFlags) =>
    sayingFlags(settingFlags, async () => {
      const updated = await updateSharedChannel((await context().catalog()).pool, name, settingsFrom(flags), context().actor);
      if (flags.json) printJson(updated);
      else process.stdout.write(`Channel ${updated.name} updated.\n${describeChannel(updated)}`);
    }),
  );

  channel
    .command('list')
    .description('List shared channels with the targets that use them and whether they are failing (secrets are never shown).')
    .option('--json', 'print JSON')
    .action(async (flags: { json?: boolean }) => {
      const channels = await listChannels((await context().catalog()).pool);
      if (flags.json) printJson(channels);
      else if (channels.length === 0)
        process.stdout.write('No shared channels yet. Add one with `backstop channel add NAME --kind email|discord|telegram|teams|ntfy|webhook|slack …`.\n');
      else {
        process.stdout.write(
          `${table(
            ['NAME', 'KIND', 'USED BY', 'STATUS'],
            channels.map((c) => [c.name, c.kind, c.usedBy.join(', ') || '-', healthWords(c.health)]),
          )}\n`,
        );
      }
    });

  channel
    .command('show')
    .description('Show one shared channel: its settings but the secrets, its targets, its last error.')
    .argument('<name>', 'channel name')
    .option('--json', 'print JSON')
    .action(async (name: string, flags: { json?: boolean }) => {
      const shown = await showChannel((await context().catalog()).pool, name);
      if (flags.json) printJson(shown);
      else process.stdout.write(describeChannel(shown));
    });

  channel
    .command('remove')
    .description('Remove a shared channel (refused while a target uses it).')
    .argument('<name>', 'channel name')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, flags: { json?: boolean }) => {
      await removeSharedChannel((await context().catalog()).pool, name, context().actor);
      if (flags.json) printJson({ removed: name });
      else process.stdout.write(`Channel ${name} removed.\n`);
    });

  channel
    .command('test')
    .description("Send a test notification now and say whether it arrived: a shared channel by NAME, or one of a target's channels with --target TARGET and its channel id as NAME.")
    .argument('<name>', 'shared channel name, or with --target the channel id (`backstop target show TARGET`)')
    .option('--target <target>', "test that target's channel NAME (an id) instead")
    .option('--json', 'print the result as JSON')
    .action(async (name: string, flags: { target?: string; json?: boolean }) => {
      const ctx = context();
      const { pool } = await ctx.catalog();
      const requestedBy = `the CLI (${process.env.USER ?? 'unknown user'})`;
      if (flags.target !== undefined) {
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(name))
          throw new BackstopError('INVALID_INPUT', `NAME must be a channel id of target ${flags.target} (listed by \`backstop target show ${flags.target}\`).`);
        const result = await sendTestNotification(pool, { targetName: flags.target, channelId: name, requestedBy }, { publicUrl: ctx.config.alarms.publicUrl });
        printTestResult(result, flags.json, `channel ${name} of target ${flags.target}`);
        return;
      }
      const result = await sendSharedChannelTest(pool, { name, requestedBy }, { publicUrl: ctx.config.alarms.publicUrl });
      printTestResult(result, flags.json, `channel ${name}`);
    });
}
