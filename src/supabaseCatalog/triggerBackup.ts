/**
 * The `trigger-backup` edge function, as plain TypeScript with its dependencies injected: no
 * Deno or Node APIs, so supabase/functions/trigger-backup/index.ts is a thin Deno shell over
 * it and the tests run it under Node against a real Postgres.
 *
 * POST {"targetId": UUID} or {"target": NAME}, with `Authorization: Bearer <user JWT>`:
 *   1. the JWT is verified (signature against the project's JWKS, issuer, audience, expiry);
 *   2. the target is looked up AS THE CALLER, under row-level security: only admins of the
 *      target's organisation can see it, so seeing it is the authorisation;
 *   3. the run is created as Backstop's own role (backstop_service), and either dispatched to
 *      GitHub Actions right here (the target has a GitHub executor and the function a GitHub
 *      token) or left queued for Backstop's workers and dispatcher;
 *   4. a refused or failed dispatch ends the run `failed` at once: nothing is left
 *      non-terminal for a reaper to find;
 *   5. the audit trail records the run triggered by the user (in the same statement as the
 *      run), or the refusal of an authenticated user with its code.
 *
 * Answers are JSON: `{run: {...}}`, or `{error: {code, message}}` with 400 bad body, 401
 * bad/missing/expired JWT, 403 a member of the target's organisation who is not its admin,
 * 404 no such target (or one of an organisation the caller does not belong to: existence is
 * not revealed to outsiders), 405 not POST, 409 a run of the target is already active, 502
 * GitHub refused or could not be reached (with GitHub's message; the run is `failed`).
 */
import { describeError } from '../core/errors.ts';
import { activeStatuses } from '../core/runState.ts';
import type { GithubClient, GithubTarget } from '../executors/github/githubClient.ts';
import { JwtError, type JwtClaims } from './verifyJwt.ts';

export type Row = Record<string, unknown>;
/**
 * Runs one statement (with `$n` parameters) and returns its rows. Statements here cast every
 * parameter and bind JSON as text (`$1::text::jsonb`): node-postgres sends strings as they
 * are, while postgres.js (the Deno shell's driver) JSON-encodes a string bound to a jsonb
 * parameter, which would store a JSON string instead of the object.
 */
export type RunSql = (text: string, values: unknown[]) => Promise<Row[]>;

/**
 * How a database adapter opens the caller's session: run this in the statement's
 * transaction first, with the claims as JSON in $1. It is what PostgREST does per request, so
 * every policy sees `auth.uid()` and `auth.jwt()` exactly as it would through the Data API.
 * The role is always `authenticated`, whatever the token's `role` claim says.
 */
export const CALLER_SESSION_SQL = `select set_config('role', 'authenticated', true), set_config('request.jwt.claims', $1, true)`;
/** How an adapter opens Backstop's own session (the connecting role must be a member of backstop_service). */
export const SERVICE_SESSION_SQL = `select set_config('role', 'backstop_service', true)`;

export interface TriggerBackupDeps {
  /** Verifies the bearer token; throws JwtError when it is not acceptable. */
  verifyJwt(token: string): Promise<JwtClaims>;
  /** One statement in a transaction opened with CALLER_SESSION_SQL. */
  asCaller(claims: JwtClaims, text: string, values: unknown[]): Promise<Row[]>;
  /** One statement in a transaction opened with SERVICE_SESSION_SQL. */
  asService: RunSql;
  /** GitHub client for direct dispatch; null leaves every run queued for Backstop. */
  github: Pick<GithubClient, 'dispatch'> | null;
  /** Hard deadline of a run from its creation (Backstop's BACKSTOP_RUN_DEADLINE). Default 6 h. */
  runDeadlineMs?: number;
  /** A dispatched run must be claimed within this (BACKSTOP_START_DEADLINE). Default 15 min. */
  startDeadlineMs?: number;
  /** Access-Control-Allow-Origin; default '*' (the JWT, not the origin, authorises). */
  allowOrigin?: string;
  log?: (message: string, details: Record<string, unknown>) => void;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_BODY_BYTES = 16 * 1024;
const TRIGGER = 'edge-function';
const DISPATCHER = 'edge:trigger-backup';

class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly runId: string | null;
  constructor(status: number, code: string, message: string, runId: string | null = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.runId = runId;
  }
}

interface TargetRow {
  id: string;
  name: string;
  organization_id: string | null;
  executor_config: Record<string, unknown> | null;
}

export function createTriggerBackupHandler(deps: TriggerBackupDeps): (request: Request) => Promise<Response> {
  const runDeadlineMs = deps.runDeadlineMs ?? 6 * 3600_000;
  const startDeadlineMs = deps.startDeadlineMs ?? 15 * 60_000;
  const cors = {
    'access-control-allow-origin': deps.allowOrigin ?? '*',
    'access-control-allow-headers': 'authorization, x-client-info, apikey, content-type',
    'access-control-allow-methods': 'POST, OPTIONS',
  };
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8', ...cors, ...headers } });

  const authenticate = async (request: Request): Promise<JwtClaims> => {
    const header = request.headers.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new HttpError(401, 'UNAUTHORIZED', 'Send the signed-in user\'s access token as "Authorization: Bearer <JWT>".');
    try {
      const claims = await deps.verifyJwt(match[1]!);
      if (!UUID.test(claims.sub)) throw new JwtError('The token names no user (sub is not a user id).');
      return claims;
    } catch (error) {
      if (error instanceof JwtError) throw new HttpError(401, 'UNAUTHORIZED', error.message);
      throw error;
    }
  };

  const readBody = async (request: Request): Promise<{ column: 'id' | 'name'; value: string }> => {
    const text = await request.text();
    if (new TextEncoder().encode(text).length > MAX_BODY_BYTES) throw new HttpError(400, 'INVALID_INPUT', 'The request body is larger than 16 KiB.');
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new HttpError(400, 'INVALID_INPUT', 'The body must be JSON: {"targetId": "<uuid>"} or {"target": "<name>"}.');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new HttpError(400, 'INVALID_INPUT', 'The body must be a JSON object: {"targetId": "<uuid>"} or {"target": "<name>"}.');
    }
    const fields = body as Record<string, unknown>;
    const unknown = Object.keys(fields).filter((key) => key !== 'targetId' && key !== 'target');
    if (unknown.length > 0) throw new HttpError(400, 'INVALID_INPUT', `Unknown field ${unknown.map((key) => JSON.stringify(key)).join(', ')}; send targetId or target.`);
    if ((fields.targetId === undefined) === (fields.target === undefined)) {
      throw new HttpError(400, 'INVALID_INPUT', 'Name the target with exactly one of "targetId" (its id) or "target" (its name).');
    }
    if (fields.targetId !== undefined) {
      if (typeof fields.targetId !== 'string' || !UUID.test(fields.targetId)) throw new HttpError(400, 'INVALID_INPUT', '"targetId" must be a UUID.');
      return { column: 'id', value: fields.targetId.toLowerCase() };
    }
    if (typeof fields.target !== 'string' || !/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(fields.target)) {
      throw new HttpError(400, 'INVALID_INPUT', '"target" must be a target name (lowercase letters, digits, ".", "_", "-").');
    }
    return { column: 'name', value: fields.target };
  };

  /** Seeing the target under RLS is the authorisation; when the caller cannot, say why only to its organisation's members. */
  const authorize = async (claims: JwtClaims, lookup: { column: 'id' | 'name'; value: string }): Promise<TargetRow> => {
    const where = lookup.column === 'id' ? 't.id = $1::uuid' : 't.name = $1::text';
    const visible = await deps.asCaller(claims, `select t.id::text as id from backstop.targets t where ${where}`, [lookup.value]);
    const [target] = await deps.asService(
      `select t.id::text as id, t.name, t.organization_id::text as organization_id, t.executor_config,
              exists (select 1 from backstop.organization_members m
                      where m.organization_id = t.organization_id and m.user_id = $2::uuid) as is_member
       from backstop.targets t where ${where}`,
      [lookup.value, claims.sub],
    );
    const described = lookup.column === 'id' ? `with id ${lookup.value}` : `"${lookup.value}"`;
    if (visible.length === 1 && target) return target as unknown as TargetRow;
    if (target?.is_member === true) {
      throw new HttpError(403, 'FORBIDDEN', `Only admins of the organisation that owns target ${described} can start its backups; ask one of them.`);
    }
    throw new HttpError(404, 'TARGET_NOT_FOUND', `No target ${described} in your organisations.`);
  };

  /** The audit trail's columns for the signed-in user: who (id, e-mail), from where (the client's address as the platform forwards it). */
  const auditActor = (claims: JwtClaims, request: Request): unknown[] => [
    claims.sub,
    typeof claims.email === 'string' && claims.email.length <= 320 ? claims.email : claims.sub,
    request.headers.get('x-forwarded-for')?.split(',')[0]?.trim().slice(0, 100) || null,
  ];

  /** A refusal of an authenticated user; the refusal is the answer even when it cannot be recorded. */
  const recordRefusal = async (actor: unknown[], subject: string, code: string): Promise<void> => {
    await deps
      .asService(
        `insert into backstop.audit_log (actor_kind, actor_id, actor_name, actor_address, client, action, subject, outcome, error_code)
         values ('user', $1::text, $2::text, $3::text, 'edge-function', 'run.trigger', $4::text, 'refused', $5::text)`,
        [...actor, subject, code],
      )
      .catch(() => {});
  };

  const createRun = async (target: TargetRow, dispatch: boolean, userId: string, actor: unknown[]): Promise<{ id: string; status: string; created_at: string }> => {
    // backstop.create_run (migration 011) is the catalog's own definition of a new run. It refuses
    // a second active run of an exclusive target with 23505, as the unique index refuses a racing one.
    // The audit entry is written by the same statement: a run exists if and only if its entry does.
    const rows = await deps
      .asService(
        `with r as (
         select r.id, r.status, r.created_at
         from backstop.create_run(p_target_id => $1::uuid, p_trigger => $2::text, p_run_deadline_ms => $3::float8,
                                  p_requested_by => $4::text, p_refuse_if_active => $5::text[],
                                  p_dispatcher => case when $6::boolean then $7::text end, p_start_deadline_ms => $8::float8) r
       ), audit as (
         insert into backstop.audit_log (actor_kind, actor_id, actor_name, actor_address, client, action, subject, outcome, details)
         select 'user', $9::text, $10::text, $11::text, 'edge-function', 'run.trigger', $12::text, 'succeeded', jsonb_build_object('runId', r.id::text)
         from r
       )
       select r.id::text as id, r.status, r.created_at::text as created_at from r`,
        [target.id, TRIGGER, runDeadlineMs, userId, activeStatuses, dispatch, DISPATCHER, startDeadlineMs, ...actor, target.name],
      )
      .catch((error: unknown) => {
        if ((error as { code?: string }).code === '23505') return [];
        throw error;
      });
    const run = rows[0];
    if (run) return run as { id: string; status: string; created_at: string };
    const [active] = await deps.asService(`select id::text as id, status from backstop.runs where target_id = $1::uuid and status = any($2::text[]) order by created_at limit 1`, [
      target.id,
      activeStatuses,
    ]);
    throw new HttpError(
      409,
      'TARGET_BUSY',
      `Target "${target.name}" already has an active run${active ? ` (${String(active.id)}, ${String(active.status)})` : ''}; wait for it to finish or cancel it.`,
      active ? String(active.id) : null,
    );
  };

  /** Authorises the caller and creates the run; a refusal is an HttpError (recorded by the caller). */
  const startRun = async (claims: JwtClaims, lookup: { column: 'id' | 'name'; value: string }, actor: unknown[]) => {
    const target = await authorize(claims, lookup);
    const direct = deps.github !== null && target.executor_config?.kind === 'github';
    return { target, direct, run: await createRun(target, direct, claims.sub, actor) };
  };

  const recordDispatch = async (runId: string, patch: Record<string, unknown>, message: string): Promise<string> => {
    const [row] = await deps.asService(
      `with updated as (
         update backstop.runs set executor = coalesce(executor, '{}'::jsonb) || $2::text::jsonb where id = $1::uuid returning id, attempt, status
       ), event as (
         insert into backstop.run_events (run_id, attempt, kind, status, message, data)
         select id, attempt, 'dispatched', status, $3::text, $2::text::jsonb from updated
       )
       select status from updated`,
      [runId, JSON.stringify(patch), message],
    );
    return String(row?.status ?? 'dispatched');
  };

  /** Ends a run this function created and could not hand over; a run that already ended is left alone. */
  const failRun = async (runId: string, error: { code: string; message: string }): Promise<void> => {
    await deps.asService(
      `with ended as (
         update backstop.runs set status = 'failed', finished_at = now(), error_code = $2::text, error_message = $3::text
         where id = $1::uuid and status = any($4::text[])
         returning *
       )
       insert into backstop.run_events (run_id, attempt, kind, status, message, data)
       select id, attempt, 'executor_ended', status, error_message, jsonb_build_object('code', error_code) from ended`,
      [runId, error.code, error.message, activeStatuses],
    );
  };

  const dispatchRun = async (target: TargetRow, runId: string): Promise<Response> => {
    const config = target.executor_config ?? {};
    const githubTarget: GithubTarget = { owner: String(config.owner), repo: String(config.repo), workflow: String(config.workflow), ref: String(config.ref ?? 'main') };
    // pg_major only when the target says: the workflow's default client reads older servers too.
    const inputs: Record<string, string> = { run_id: runId, target: target.name, ...(config.pgMajor ? { pg_major: String(config.pgMajor) } : {}) };
    let result: Awaited<ReturnType<GithubClient['dispatch']>>;
    try {
      result = await deps.github!.dispatch(githubTarget, inputs);
    } catch (error) {
      const failure = describeError(error);
      const code = failure.code === 'INTERNAL' ? 'GITHUB_UNAVAILABLE' : failure.code;
      await failRun(runId, { code, message: failure.message });
      deps.log?.('GitHub did not take the dispatch; the run is failed', { runId, code });
      throw new HttpError(502, code, failure.message, runId);
    }
    const status =
      result.workflowRunId !== null
        ? await recordDispatch(
            runId,
            { state: 'dispatched', workflowRunId: result.workflowRunId, htmlUrl: result.htmlUrl },
            `GitHub Actions run ${result.workflowRunId}: ${result.htmlUrl}`,
          )
        : await recordDispatch(
            runId,
            // GitHub Enterprise Server without return_run_details: Backstop's executor finds the run by its run-name.
            { state: 'correlating', dispatchedAt: new Date().toISOString() },
            'dispatched without run details (GitHub Enterprise Server); finding the run by its run-name',
          );
    return json(201, {
      run: {
        id: runId,
        status,
        target: { id: target.id, name: target.name },
        github: result.workflowRunId !== null ? { workflowRunId: result.workflowRunId, htmlUrl: result.htmlUrl } : null,
      },
    });
  };

  return async (request: Request): Promise<Response> => {
    if (request.method === 'OPTIONS') return new Response(null, { status: 204, headers: cors });
    try {
      if (request.method !== 'POST') throw new HttpError(405, 'METHOD_NOT_ALLOWED', `Use POST, not ${request.method}.`);
      const claims = await authenticate(request);
      const actor = auditActor(claims, request);
      const lookup = await readBody(request);
      const { target, direct, run } = await startRun(claims, lookup, actor).catch(async (error: unknown) => {
        if (error instanceof HttpError) await recordRefusal(actor, lookup.value, error.code);
        throw error;
      });
      deps.log?.('run created', { runId: run.id, target: target.name, user: claims.sub, direct });
      if (direct) {
        try {
          return await dispatchRun(target, run.id);
        } catch (error) {
          if (!(error instanceof HttpError)) await failRun(run.id, describeError(error)).catch(() => {});
          throw error;
        }
      }
      return json(202, {
        run: { id: run.id, status: run.status, target: { id: target.id, name: target.name }, github: null },
        message: target.executor_config ? "Queued: Backstop's dispatcher hands it to GitHub Actions." : "Queued: one of Backstop's workers will run it.",
      });
    } catch (error) {
      if (error instanceof HttpError) {
        return json(
          error.status,
          { error: { code: error.code, message: error.message }, ...(error.runId ? { runId: error.runId } : {}) },
          error.status === 405 ? { allow: 'POST, OPTIONS' } : error.status === 401 ? { 'www-authenticate': 'Bearer error="invalid_token"' } : {},
        );
      }
      deps.log?.('trigger-backup failed', { error: error instanceof Error ? error.message : String(error) });
      // Never echo an unexpected error: it may carry connection details.
      return json(500, { error: { code: 'INTERNAL', message: 'The backup could not be started; see the function logs.' } });
    }
  };
}
