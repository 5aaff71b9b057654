// Supabase Edge Function `trigger-backup`: the Deno shell over src/supabaseCatalog/triggerBackup.ts,
// which holds every decision and is tested under Node. This file only wires Deno's
// environment, a Postgres connection and GitHub to it.
//
// Deploy (imports outside supabase/functions need the API bundler):
//   supabase secrets set BACKSTOP_GITHUB_TOKEN=github_pat_…       # optional: dispatch directly
//   supabase functions deploy trigger-backup --no-verify-jwt --use-api
// The platform's legacy JWT check is off because this function verifies the caller's token
// itself, against the project's JWKS (asymmetric signing keys).
import postgres from 'npm:postgres@3.4.7';
import { githubClient } from '../../../src/executors/github/githubClient.ts';
import { CALLER_SESSION_SQL, createTriggerBackupHandler, SERVICE_SESSION_SQL, type Row } from '../../../src/supabaseCatalog/triggerBackup.ts';
import { createJwtVerifier, remoteKeySet, staticKeySet, type Jwk } from '../../../src/supabaseCatalog/verifyJwt.ts';

const env = (name: string): string | undefined => Deno.env.get(name) || undefined;
const required = (name: string): string => {
  const value = env(name);
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const supabaseUrl = required('SUPABASE_URL').replace(/\/+$/, '');
// SUPABASE_DB_URL connects as postgres, which the Backstop migration made a member of
// backstop_service; each statement then runs as `authenticated` or `backstop_service`.
// prepare: false, because the platform's pooler may hand statements to other sessions.
const sql = postgres(required('SUPABASE_DB_URL'), { max: 3, prepare: false, idle_timeout: 20, connection: { application_name: 'backstop:trigger-backup' } });

const inSession = (setup: string, setupValues: unknown[], text: string, values: unknown[]): Promise<Row[]> =>
  sql.begin(async (tx) => {
    await tx.unsafe(setup, setupValues as never[]);
    return [...(await tx.unsafe(text, values as never[]))] as Row[];
  }) as Promise<Row[]>;

// SUPABASE_JWKS is provided to functions; the JWKS endpoint is the fallback (and the source
// after a key rotation the function has not been restarted for).
const jwksUrl = `${supabaseUrl}/auth/v1/.well-known/jwks.json`;
const provided = env('SUPABASE_JWKS');
const remote = remoteKeySet(jwksUrl);
const keySet = provided
  ? {
      keys: async (options?: { refresh?: boolean }) => (options?.refresh ? remote.keys(options) : staticKeySet((JSON.parse(provided) as { keys: Jwk[] }).keys).keys()),
    }
  : remote;

const githubToken = env('BACKSTOP_GITHUB_TOKEN');
const handler = createTriggerBackupHandler({
  verifyJwt: createJwtVerifier({ keySet, issuer: `${supabaseUrl}/auth/v1`, audience: 'authenticated' }),
  asCaller: (claims, text, values) => inSession(CALLER_SESSION_SQL, [JSON.stringify(claims)], text, values),
  asService: (text, values) => inSession(SERVICE_SESSION_SQL, [], text, values),
  github: githubToken ? githubClient({ apiUrl: env('BACKSTOP_GITHUB_API_URL') ?? 'https://api.github.com', token: githubToken, maxRateLimitWaitMs: 10_000 }) : null,
  runDeadlineMs: env('BACKSTOP_RUN_DEADLINE') ? Number(env('BACKSTOP_RUN_DEADLINE')) * 1000 : undefined,
  startDeadlineMs: env('BACKSTOP_START_DEADLINE') ? Number(env('BACKSTOP_START_DEADLINE')) * 1000 : undefined,
  log: (message, details) => console.log(JSON.stringify({ message, ...details })),
});

Deno.serve(handler);
