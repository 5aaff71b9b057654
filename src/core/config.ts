import path from 'node:path';
import { z } from 'zod';
import { parsePrivateEndpointAllowance } from './addressClass.ts';
import { BackstopError } from './errors.ts';

const seconds = (fallback: number, description: string) =>
  z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value.trim() === '') return fallback;
      const parsed = Number(value);
      if (!Number.isFinite(parsed) || parsed <= 0) {
        ctx.addIssue({ code: 'custom', message: `must be a positive number of seconds, got "${value}"` });
        return z.NEVER;
      }
      return parsed;
    })
    .describe(description);

/** Every setting Backstop reads from the environment, with its default and meaning. */
export const configSchema = z.object({
  BACKSTOP_DATABASE_URL: z.string().optional().describe('Catalog Postgres URL. Unset: an embedded Postgres under BACKSTOP_HOME.'),
  BACKSTOP_HOME: z.string().optional().describe('Folder for the embedded catalog and the default local store. Default ./.backstop'),
  BACKSTOP_STORE: z.string().optional().describe('Default store URL for new targets. Default file://$BACKSTOP_HOME/backups'),
  BACKSTOP_LEASE_TTL: seconds(60, 'Lease time-to-live of a running run, seconds.'),
  BACKSTOP_HEARTBEAT_INTERVAL: z.string().optional().describe('Heartbeat interval, seconds. Default: a third of the lease TTL.'),
  BACKSTOP_REAPER_INTERVAL: seconds(10, 'How often long-running processes reap overdue runs, seconds.'),
  BACKSTOP_START_DEADLINE: seconds(900, 'A dispatched run must be claimed within this many seconds.'),
  BACKSTOP_RUN_DEADLINE: seconds(21600, 'Hard deadline of a run from its creation, seconds.'),
  BACKSTOP_PG_BIN: z.string().optional().describe('Extra folder(s), colon-separated, holding pg_dump and pg_restore.'),
  BACKSTOP_PG_BIN_ONLY: z.enum(['true', 'false', '1', '0', '']).optional().describe('When true, look for pg tools only in BACKSTOP_PG_BIN (no PATH, pg_config or Debian folders).'),
  BACKSTOP_SCRATCH_URL: z
    .string()
    .optional()
    .describe(
      "Server (any database URL on it) where verification drills create and drop scratch databases, as a role with CREATEDB and nothing more. Default: Backstop's own scratch cluster under BACKSTOP_HOME.",
    ),
  BACKSTOP_SCRATCH_SUPERUSER_OK: z
    .string()
    .optional()
    .describe(
      'The role name of BACKSTOP_SCRATCH_URL when it is a superuser (or has CREATEROLE, or reads/writes server files): accepts it; drills then restore as a role made for each drill.',
    ),
  BACKSTOP_IDENTITY_FILE: z.string().optional().describe('age identity file used by verification drills of encrypted backups.'),
  BACKSTOP_MAX_RUNNING: z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value.trim() === '') return undefined;
      const parsed = Number(value);
      if (!Number.isInteger(parsed) || parsed < 1) {
        ctx.addIssue({ code: 'custom', message: `must be a whole number of runs above 0, got "${value}"` });
        return z.NEVER;
      }
      return parsed;
    })
    .describe('At most this many runs executing at once across all workers on this catalog. Default: no global limit.'),
  BACKSTOP_MAX_STREAMS_PER_TOKEN: z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value.trim() === '') return 20;
      const parsed = Number(value);
      if (!Number.isInteger(parsed) || parsed < 1) {
        ctx.addIssue({ code: 'custom', message: `must be a whole number of streams above 0, got "${value}"` });
        return z.NEVER;
      }
      return parsed;
    })
    .describe('Server: open event streams (dashboard tabs, `--follow`) one API token may hold at once; one more answers 429. Default 20.'),
  BACKSTOP_GITHUB_TOKEN: z
    .string()
    .optional()
    .describe('Token (classic `repo`, or fine-grained / App "Actions: write") to dispatch and cancel runs of targets executed on GitHub Actions.'),
  BACKSTOP_GITHUB_API_URL: z.string().url().optional().describe('GitHub API base URL: https://api.github.com (default), or https://HOST/api/v3 for GitHub Enterprise Server.'),
  BACKSTOP_API_URL: z.string().optional().describe('`backstop run` / `report` only: the Backstop server to talk to over HTTP (with BACKSTOP_RUNNER_TOKEN) instead of the catalog.'),
  BACKSTOP_RUNNER_TOKEN: z.string().optional().describe("`backstop run` / `report` over HTTP: a repository's GitHub runner token, a run's runner token, or an operator token."),
  BACKSTOP_SOURCE_URL: z
    .string()
    .optional()
    .describe('`backstop run` over HTTP: the database to back up (the API never sends database URLs); BACKSTOP_SOURCE_URL_<TARGET> for one target.'),
  BACKSTOP_ALLOW_PRIVATE_ENDPOINTS: z
    .string()
    .optional()
    .superRefine((value, ctx) => {
      try {
        parsePrivateEndpointAllowance(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
    })
    .describe(
      'Webhooks, Slack, S3 endpoints and the GitHub API may reach these loopback, private or link-local addresses: a comma-separated list of addresses and CIDR ranges (127.0.0.1,10.0.0.0/8,fd00::/8), or true for every address. Default: public addresses only. Validated here; the outbound guard (src/net/outboundGuard.ts) reads it from the environment at every request.',
    ),
  BACKSTOP_PUBLIC_URL: z
    .string()
    .optional()
    .superRefine((value, ctx) => {
      if (value === undefined || value === '') return;
      let url: URL | undefined;
      try {
        url = new URL(value);
      } catch {
        url = undefined;
      }
      if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
        ctx.addIssue({ code: 'custom', message: `must be the dashboard's http(s) address, e.g. https://backstop.example.com, got "${value}"` });
    })
    .describe("The dashboard's address as people reach it (https://backstop.example.com): notifications link to the run's page there. Unset: messages carry no link."),
  BACKSTOP_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('Log level of the logs written to stderr.'),
  BACKSTOP_LOG_FORMAT: z
    .enum(['json', 'pretty', ''])
    .optional()
    .describe('Logs on stderr as JSON lines (json) or as lines for a person (pretty). Default: pretty when stderr is a terminal, json otherwise.'),
});

export interface Config {
  databaseUrl: string | undefined;
  home: string;
  defaultStoreUrl: string;
  leaseTtlMs: number;
  heartbeatIntervalMs: number;
  reaperIntervalMs: number;
  startDeadlineMs: number;
  runDeadlineMs: number;
  /** Where to look for pg_dump / pg_restore: extra folders first; `only` skips the usual places. */
  pgTools: { dirs: string[]; only: boolean };
  scratchUrl: string | undefined;
  /** The privileged scratch role the user accepted by name (BACKSTOP_SCRATCH_SUPERUSER_OK). */
  scratchPrivilegedOk: string | undefined;
  maxRunning: number | undefined;
  /** Open event streams one API token may hold at once. */
  maxStreamsPerToken: number;
  github: { token: string; apiUrl: string } | null;
  identityFile: string | undefined;
  /**
   * `backstop run` / `report` over HTTP, as given (an empty string is a secret that was not
   * set, which the CLI reports): the API, the token, and the source database's URL.
   */
  remoteRunner: { apiUrl: string | undefined; token: string | undefined; sourceUrl: string | undefined };
  /** The dashboard's public address, for links in notifications; null when unset. */
  publicUrl: string | null;
  logLevel: z.infer<typeof configSchema>['BACKSTOP_LOG_LEVEL'];
  /** Unset: chosen by whether stderr is a terminal (see chooseLogFormat). */
  logFormat: 'json' | 'pretty' | undefined;
}

/** Reads the environment; reports every problem at once. */
export function loadConfig(env: Record<string, string | undefined>, cwd: string): Config {
  const parsed = configSchema.safeParse(env);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${issue.path.join('.')}: ${issue.message}`);
  }
  let heartbeatSeconds: number | undefined;
  const rawHeartbeat = env.BACKSTOP_HEARTBEAT_INTERVAL;
  if (rawHeartbeat !== undefined && rawHeartbeat.trim() !== '') {
    heartbeatSeconds = Number(rawHeartbeat);
    if (!Number.isFinite(heartbeatSeconds) || heartbeatSeconds <= 0) {
      problems.push(`BACKSTOP_HEARTBEAT_INTERVAL: must be a positive number of seconds, got "${rawHeartbeat}"`);
      heartbeatSeconds = undefined;
    }
  }
  // The cross-field rule is checked whenever both values are valid on their own, even when
  // other settings are not, so that one run of the command reports every problem.
  const leaseTtl = configSchema.shape.BACKSTOP_LEASE_TTL.safeParse(env.BACKSTOP_LEASE_TTL);
  if (leaseTtl.success && heartbeatSeconds !== undefined && heartbeatSeconds >= leaseTtl.data) {
    problems.push(`BACKSTOP_HEARTBEAT_INTERVAL (${heartbeatSeconds}s) must be shorter than BACKSTOP_LEASE_TTL (${leaseTtl.data}s); a third of it is the default.`);
  }
  if (!parsed.success || problems.length > 0) {
    throw new BackstopError('CONFIG_INVALID', `Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  const values = parsed.data;
  const leaseTtlMs = values.BACKSTOP_LEASE_TTL * 1000;
  const heartbeatIntervalMs = heartbeatSeconds !== undefined ? heartbeatSeconds * 1000 : leaseTtlMs / 3;
  const home = path.resolve(cwd, values.BACKSTOP_HOME ?? '.backstop');
  return {
    databaseUrl: values.BACKSTOP_DATABASE_URL || undefined,
    home,
    defaultStoreUrl: values.BACKSTOP_STORE || `file://${path.join(home, 'backups')}`,
    leaseTtlMs,
    heartbeatIntervalMs,
    reaperIntervalMs: values.BACKSTOP_REAPER_INTERVAL * 1000,
    startDeadlineMs: values.BACKSTOP_START_DEADLINE * 1000,
    runDeadlineMs: values.BACKSTOP_RUN_DEADLINE * 1000,
    scratchUrl: values.BACKSTOP_SCRATCH_URL || undefined,
    scratchPrivilegedOk: values.BACKSTOP_SCRATCH_SUPERUSER_OK || undefined,
    maxRunning: values.BACKSTOP_MAX_RUNNING,
    maxStreamsPerToken: values.BACKSTOP_MAX_STREAMS_PER_TOKEN,
    github: values.BACKSTOP_GITHUB_TOKEN ? { token: values.BACKSTOP_GITHUB_TOKEN, apiUrl: values.BACKSTOP_GITHUB_API_URL ?? 'https://api.github.com' } : null,
    identityFile: values.BACKSTOP_IDENTITY_FILE || undefined,
    remoteRunner: { apiUrl: values.BACKSTOP_API_URL, token: values.BACKSTOP_RUNNER_TOKEN, sourceUrl: values.BACKSTOP_SOURCE_URL || undefined },
    pgTools: {
      dirs: (values.BACKSTOP_PG_BIN ?? '').split(':').filter(Boolean),
      only: values.BACKSTOP_PG_BIN_ONLY === 'true' || values.BACKSTOP_PG_BIN_ONLY === '1',
    },
    publicUrl: values.BACKSTOP_PUBLIC_URL ? values.BACKSTOP_PUBLIC_URL.replace(/\/+$/, '') : null,
    logLevel: values.BACKSTOP_LOG_LEVEL,
    logFormat: values.BACKSTOP_LOG_FORMAT || undefined,
  };
}
