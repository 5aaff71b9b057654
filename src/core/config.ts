import path from 'node:path';
import { z } from 'zod';
import { parsePrivateEndpointAllowance } from './addressClass.ts';
import { BackstopError } from './errors.ts';
import { parseRoleRules, ROLE_MAP_SETTING, type RoleRule } from './roleRules.ts';

const seconds = (fallback: number, description: string, options: { zero?: boolean } = {}) =>
  z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value.trim() === '') return fallback;
      const parsed = Number(value);
      if (!Number.isFinite(parsed) || parsed < 0 || (parsed === 0 && !options.zero)) {
        ctx.addIssue({ code: 'custom', message: `must be a ${options.zero ? 'number of seconds, 0 or more' : 'positive number of seconds'}, got "${value}"` });
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
  BACKSTOP_CONTINUOUS_STREAMS: z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined || value.trim() === '') return 8;
      const parsed = Number(value);
      if (!Number.isInteger(parsed) || parsed < 0) {
        ctx.addIssue({ code: 'custom', message: `must be a whole number of streams, 0 or more, got "${value}"` });
        return z.NEVER;
      }
      return parsed;
    })
    .describe('Continuous targets one worker or server streams at once (0: none in that process; the slot guard still runs). Default 8.'),
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
  BACKSTOP_ALARM_INTERVAL: seconds(60, 'How often servers and workers evaluate alarms, seconds.'),
  BACKSTOP_ALARM_REPEAT: seconds(
    14_400,
    'An active alarm is sent again every this many seconds while it lasts (0: once only). Default 14400 (4 hours); `--alarm-repeat` overrides it.',
    { zero: true },
  ),
  BACKSTOP_ALARM_GRACE: seconds(3600, "Added to a schedule's interval for the bound on a backup's (or drill's) age when the target sets none, seconds."),
  BACKSTOP_ALARM_SLOT_GRACE: seconds(300, 'A schedule slot with no run after this many seconds raises slot_missed.'),
  BACKSTOP_CATALOG_ALARM_AFTER: seconds(300, 'A worker that cannot reach the catalog for this many seconds sends catalog_unreachable to the channels it knows.'),
  BACKSTOP_PUBLIC_URL: z
    .string()
    .optional()
    .describe(
      'The address people open the dashboard at (https://backstop.example.com). Sign-in redirects back to it, cookie-authenticated writes must come from its origin, and alarms and notifications link to pages under it.',
    ),
  BACKSTOP_OIDC_ISSUER: z
    .string()
    .optional()
    .describe('Server: the OpenID Connect provider whose people may sign in to the dashboard (its issuer URL; its /.well-known/openid-configuration is read). Unset: API tokens only.'),
  BACKSTOP_OIDC_CLIENT_ID: z.string().optional().describe('Server: the client id Backstop is registered with at the OpenID Connect provider.'),
  BACKSTOP_OIDC_CLIENT_SECRET: z.string().optional().describe('Server: the client secret of that registration (unset: a public client, PKCE alone).'),
  BACKSTOP_OIDC_SCOPES: z
    .string()
    .optional()
    .describe('Server: the scopes asked for at sign-in. Default "openid email profile"; add the one that releases groups (often "groups") and offline_access for a refresh token.'),
  BACKSTOP_OIDC_GROUPS_CLAIM: z.string().optional().describe("Server: the claim that lists a person's groups. Default groups."),
  [ROLE_MAP_SETTING]: z
    .string()
    .optional()
    .describe(
      'Server: who gets which role, first match wins, no match no access: comma-separated KIND:VALUE=ROLE rules, KIND group, domain (of a verified e-mail) or email, e.g. group:backstop-admins=admin,group:backstop-ops=operator,domain:example.com=viewer.',
    ),
  BACKSTOP_OIDC_RECHECK: z
    .string()
    .optional()
    .describe(
      "Server: how many seconds a person's groups, once confirmed with the provider, are trusted before the next request asks again. Default 0: every request asks the provider, so a person removed from a group loses access at their next request.",
    ),
  BACKSTOP_SESSION_TTL: seconds(43200, 'Server: the longest a dashboard sign-in lasts, seconds (default 12 hours); then the person signs in again.'),
  BACKSTOP_OIDC_PROVIDER_NAME: z.string().optional().describe('Server: the provider\'s name on the sign-in button ("Sign in with NAME"). Default: the issuer\'s host.'),
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
  /** Continuous targets' streamers one worker or server runs at once. */
  continuousStreams: number;
  github: { token: string; apiUrl: string } | null;
  identityFile: string | undefined;
  /**
   * `backstop run` / `report` over HTTP, as given (an empty string is a secret that was not
   * set, which the CLI reports): the API, the token, and the source database's URL.
   */
  remoteRunner: { apiUrl: string | undefined; token: string | undefined; sourceUrl: string | undefined };
  alarms: AlarmConfig;
  /** Dashboard sign-in with OpenID Connect, or null when only API tokens open the API. */
  oidc: OidcConfig | null;
  logLevel: z.infer<typeof configSchema>['BACKSTOP_LOG_LEVEL'];
  /** Unset: chosen by whether stderr is a terminal (see chooseLogFormat). */
  logFormat: 'json' | 'pretty' | undefined;
}

export interface AlarmConfig {
  intervalMs: number;
  /** 0: an alarm is sent once. */
  repeatMs: number;
  graceMs: number;
  slotGraceMs: number;
  catalogUnreachableMs: number;
  publicUrl: string | undefined;
}

export interface OidcConfig {
  issuer: string;
  clientId: string;
  clientSecret: string | undefined;
  /** The dashboard's own address; the redirect URI is `${publicUrl}/auth/callback`. */
  publicUrl: string;
  scopes: string;
  groupsClaim: string;
  roleRules: RoleRule[];
  recheckMs: number;
  sessionTtlMs: number;
  providerName: string;
}

/** The OIDC settings, or null when none is set; every missing or bad one is pushed to `problems`. */
function readOidcConfig(env: Record<string, string | undefined>, sessionTtlSeconds: number, problems: string[]): OidcConfig | null {
  const value = (name: string) => env[name]?.trim() || undefined;
  const names = ['BACKSTOP_OIDC_ISSUER', 'BACKSTOP_OIDC_CLIENT_ID', ROLE_MAP_SETTING, 'BACKSTOP_PUBLIC_URL'];
  if (!value('BACKSTOP_OIDC_ISSUER') && !value('BACKSTOP_OIDC_CLIENT_ID') && !value(ROLE_MAP_SETTING)) return null;
  const before = problems.length;
  for (const name of names) if (!value(name)) problems.push(`${name}: needed for dashboard sign-in with OpenID Connect (see the README's "Signing in").`);
  const url = (name: string) => {
    const raw = value(name);
    if (!raw) return '';
    try {
      const parsed = new URL(raw);
      if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new Error('not http(s)');
      return parsed.href.replace(/\/$/, '');
    } catch {
      problems.push(`${name}: must be an http(s) URL, got "${raw.slice(0, 100)}"`);
      return '';
    }
  };
  const issuer = url('BACKSTOP_OIDC_ISSUER');
  // Tokens and the code travel to the issuer: plain http only to a provider on this machine.
  if (issuer.startsWith('http:') && !['127.0.0.1', 'localhost', '[::1]'].includes(new URL(issuer).hostname)) {
    problems.push(`BACKSTOP_OIDC_ISSUER: must be https (plain http only for a provider on loopback), got "${issuer}"`);
  }
  const publicUrl = url('BACKSTOP_PUBLIC_URL');
  let roleRules: RoleRule[] = [];
  if (value(ROLE_MAP_SETTING)) {
    try {
      roleRules = parseRoleRules(value(ROLE_MAP_SETTING)!);
    } catch (error) {
      problems.push(`${ROLE_MAP_SETTING}: ${(error as Error).message}`);
    }
  }
  const recheck = Number(value('BACKSTOP_OIDC_RECHECK') ?? '0');
  if (!Number.isFinite(recheck) || recheck < 0 || recheck > 300) problems.push(`BACKSTOP_OIDC_RECHECK: must be 0 to 300 seconds, got "${env.BACKSTOP_OIDC_RECHECK}"`);
  const scopes = value('BACKSTOP_OIDC_SCOPES') ?? 'openid email profile';
  if (!scopes.split(/\s+/).includes('openid')) problems.push(`BACKSTOP_OIDC_SCOPES: must include openid, got "${scopes}"`);
  if (problems.length > before) return null;
  return {
    issuer,
    clientId: value('BACKSTOP_OIDC_CLIENT_ID')!,
    clientSecret: value('BACKSTOP_OIDC_CLIENT_SECRET'),
    publicUrl,
    scopes,
    groupsClaim: value('BACKSTOP_OIDC_GROUPS_CLAIM') ?? 'groups',
    roleRules,
    recheckMs: recheck * 1000,
    sessionTtlMs: sessionTtlSeconds * 1000,
    providerName: value('BACKSTOP_OIDC_PROVIDER_NAME') ?? new URL(issuer).host,
  };
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
  const sessionTtl = configSchema.shape.BACKSTOP_SESSION_TTL.safeParse(env.BACKSTOP_SESSION_TTL);
  const oidc = readOidcConfig(env, sessionTtl.success ? sessionTtl.data : 43200, problems);
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
    continuousStreams: values.BACKSTOP_CONTINUOUS_STREAMS,
    github: values.BACKSTOP_GITHUB_TOKEN ? { token: values.BACKSTOP_GITHUB_TOKEN, apiUrl: values.BACKSTOP_GITHUB_API_URL ?? 'https://api.github.com' } : null,
    identityFile: values.BACKSTOP_IDENTITY_FILE || undefined,
    remoteRunner: { apiUrl: values.BACKSTOP_API_URL, token: values.BACKSTOP_RUNNER_TOKEN, sourceUrl: values.BACKSTOP_SOURCE_URL || undefined },
    pgTools: {
      dirs: (values.BACKSTOP_PG_BIN ?? '').split(':').filter(Boolean),
      only: values.BACKSTOP_PG_BIN_ONLY === 'true' || values.BACKSTOP_PG_BIN_ONLY === '1',
    },
    alarms: {
      intervalMs: values.BACKSTOP_ALARM_INTERVAL * 1000,
      repeatMs: values.BACKSTOP_ALARM_REPEAT * 1000,
      graceMs: values.BACKSTOP_ALARM_GRACE * 1000,
      slotGraceMs: values.BACKSTOP_ALARM_SLOT_GRACE * 1000,
      catalogUnreachableMs: values.BACKSTOP_CATALOG_ALARM_AFTER * 1000,
      publicUrl: values.BACKSTOP_PUBLIC_URL?.replace(/\/+$/, ''),
    },
    oidc,
    logLevel: values.BACKSTOP_LOG_LEVEL,
    logFormat: values.BACKSTOP_LOG_FORMAT || undefined,
  };
}
