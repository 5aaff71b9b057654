import swagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from '../core/config.ts';
import { BACKSTOP_VERSION } from '../version.ts';
import type { Pool } from '../db/pool.ts';
import { installAuth, stillAuthenticated } from './auth.ts';
import { createBackgroundTasks } from './backgroundTasks.ts';
import type { ServerContext } from './context.ts';
import { installErrorHandling, sendError } from './httpErrors.ts';
import type { ServerMetrics } from './metrics.ts';
import { registerDashboard } from './dashboard.ts';
import { bundledFiles } from '../core/bundledFiles.ts';
import { registerAlarmRoutes } from './routes/alarms.ts';
import { registerAuditRoutes } from './routes/audit.ts';
import { registerEventRoutes } from './routes/events.ts';
import { registerChannelRoutes } from './routes/channels.ts';
import { registerNotificationTestRoutes } from './routes/notificationTests.ts';
import { registerOperationRoutes } from './routes/operations.ts';
import { registerOverviewRoutes } from './routes/overview.ts';
import { registerRunActionRoutes } from './routes/runActions.ts';
import { registerRunFileRoutes } from './routes/runFiles.ts';
import { registerRunnerRoutes } from './routes/runner.ts';
import { registerRunRoutes } from './routes/runs.ts';
import { registerTargetRestoreRoutes } from './routes/targetRestores.ts';
import { registerTargetRoutes } from './routes/targets.ts';
import { registerTokenRoutes } from './routes/tokens.ts';
import { createSignIn, registerSignInRoutes } from './signIn.ts';
import { createEventStreams } from './runEventStream.ts';
import { installSecurityHeaders } from './securityHeaders.ts';
import { sharedSchemas } from './responseSchemas.ts';
import { installValidation } from './validation.ts';

export const BODY_LIMIT = 256 * 1024;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's body is optional: a missing body is validated as `{}`. */
    optionalBody?: boolean;
  }
}

export interface AppDeps {
  pool: Pool;
  config: Config;
  log: Logger;
  metrics: ServerMetrics;
}

export interface AppOptions {
  /** How often an open event stream polls the catalog (default 500 ms). */
  ssePollIntervalMs?: number;
  /** Interval of SSE heartbeat comments (default 15 s). */
  sseHeartbeatMs?: number;
  /** Open event streams one API token may hold at once (default: BACKSTOP_MAX_STREAMS_PER_TOKEN). */
  maxStreamsPerToken?: number;
  /** `/metrics` asks for an API token (default false; startServer sets it when listening beyond loopback). */
  metricsNeedToken?: boolean;
}

/**
 * The HTTP API as a Fastify instance, not listening yet: REST under /api/v1, SSE, OpenAPI at
 * /api/openapi.json, /healthz, /readyz, /metrics and the dashboard at /. Closing it ends the
 * event streams and stops background restores; the pool belongs to the caller.
 */
export async function buildApp(deps: AppDeps, options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    // pino's Logger is a FastifyBaseLogger; the cast keeps the instance's default logger type.
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    // No line per request: errors are logged by the error handler, volumes by /metrics.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    // Tokens travel in headers, never in URLs; nothing else in a request is logged.
    routerOptions: { maxParamLength: 200, ignoreTrailingSlash: true },
    // Malformed URLs and over-long path parameters answer in the API's error format too.
    frameworkErrors: (error, _request, reply) => sendError(reply, error),
  });
  const signIn = deps.config.oidc ? createSignIn(deps.pool, deps.config.oidc) : null;
  const ctx: ServerContext = {
    pool: deps.pool,
    config: deps.config,
    log: deps.log,
    metrics: deps.metrics,
    streams: createEventStreams(deps.pool, deps.log, {
      pollIntervalMs: options.ssePollIntervalMs ?? 500,
      heartbeatMs: options.sseHeartbeatMs ?? 15_000,
      maxStreamsPerToken: options.maxStreamsPerToken ?? deps.config.maxStreamsPerToken,
      stillAuthorized: (request) => stillAuthenticated(deps.pool, signIn, request),
    }),
    tasks: createBackgroundTasks(deps.log),
    metricsNeedToken: options.metricsNeedToken ?? false,
  };

  installValidation(app);
  installErrorHandling(app);
  installSecurityHeaders(app);
  for (const schema of sharedSchemas) app.addSchema(schema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Backstop API',
        version: BACKSTOP_VERSION,
        description:
          "PostgreSQL backups whose run status never lies. Every /api route needs `Authorization: Bearer <token>` (or, from the dashboard, the cookie of a person signed in with OpenID Connect, whose writes also carry the x-backstop-csrf header): viewer tokens read, operator tokens also trigger, cancel, verify and restore, admin tokens also manage targets and tokens. A runner token (issued per run) opens only the runner routes of its run. A GitHub runner token (one per repository, kept in its Actions secrets) may only claim a run dispatched to that repository, receiving the run's runner token, and report its job's outcome.",
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'targets', description: 'Databases to back up' },
        { name: 'runs', description: 'Backups and verification drills' },
        { name: 'runner', description: 'Remote runners: claim, heartbeat, finalize' },
        { name: 'tokens', description: 'API tokens' },
        { name: 'audit', description: 'Who did what: the append-only audit trail (admins)' },
        { name: 'channels', description: 'Shared notification channels' },
        { name: 'operations', description: 'Health and metrics (no token needed)' },
      ],
    },
    // Shared schemas keep their names in components.schemas.
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, index) => String(json.$id ?? `def-${index}`) },
  });

  installAuth(app, deps.pool, signIn);
  app.addHook('preValidation', async (request) => {
    if (request.routeOptions.config.optionalBody && request.body === undefined) request.body = {};
  });
  app.addHook('onResponse', async (request, reply) => {
    deps.metrics.recordRequest({
      method: request.method,
      route: request.is404 ? 'unmatched' : (request.routeOptions.url ?? 'unmatched'),
      status: reply.statusCode,
      seconds: reply.elapsedTime / 1000,
    });
  });
  app.addHook('preClose', async () => ctx.streams.closeAll());
  app.addHook('onClose', async () => ctx.tasks.stop());

  registerSignInRoutes(app, deps.pool, signIn);
  registerOperationRoutes(app, ctx);
  registerTargetRoutes(app, ctx);
  registerRunRoutes(app, ctx);
  registerRunActionRoutes(app, ctx);
  registerRunFileRoutes(app, ctx);
  registerTargetRestoreRoutes(app, ctx);
  registerNotificationTestRoutes(app, ctx);
  registerChannelRoutes(app, ctx);
  registerRunnerRoutes(app, ctx);
  registerTokenRoutes(app, ctx);
  registerOverviewRoutes(app, ctx);
  registerAlarmRoutes(app, ctx);
  registerEventRoutes(app, ctx);
  registerAuditRoutes(app, ctx);
  // The dashboard is files (web/, and Preact from node_modules) that the single executable
  // does not carry: it serves the API alone, and says so at start-up (startServer logs it).
  if (!bundledFiles) await registerDashboard(app);
  return app;
}
