import type { FastifyInstance } from 'fastify';
import { BackstopError } from '../../core/errors.ts';
import { apiTokenRequest, apiTokenRoles, createApiToken, type ApiTokenRequest } from '../../operations/createApiToken.ts';
import { listTokens } from '../../operations/listTokens.ts';
import { revokeToken } from '../../operations/revokeToken.ts';
import { actorOf, requestActor } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { tokenParams } from '../requestSchemas.ts';
import { zodBody } from '../validation.ts';
import { apiTokenSchema, errorResponses, ref } from '../responseSchemas.ts';

const tags = ['tokens'];

export function registerTokenRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(
    '/api/v1/me',
    {
      config: { access: 'viewer' },
      schema: {
        tags,
        summary: 'The API token making this request: its name and role',
        description: 'What a client (the dashboard) shows and allows: viewers read, operators also act on runs, admins also manage targets and tokens.',
        response: {
          200: {
            type: 'object',
            required: ['id', 'name', 'role'],
            properties: { id: { type: 'string', format: 'uuid' }, name: { type: 'string' }, role: { type: 'string', enum: apiTokenRoles } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const principal = request.principal;
      if (principal?.kind !== 'api') throw new BackstopError('FORBIDDEN', 'Only API tokens have a role; runner tokens open their run only.');
      return { id: principal.tokenId, name: principal.name, role: principal.role };
    },
  );

  app.get(
    '/api/v1/tokens',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'List API tokens (never their values)',
        response: { 200: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: ref('ApiToken') } } }, ...errorResponses },
      },
    },
    async () => ({ items: (await listTokens(ctx.pool)).apiTokens }),
  );

  app.post<{ Body: ApiTokenRequest }>(
    '/api/v1/tokens',
    {
      config: { access: 'admin', audit: 'token.create' },
      schema: {
        tags,
        summary: 'Create an API token',
        description: 'The token is in this response only; the catalog keeps its SHA-256.',
        body: zodBody(apiTokenRequest),
        response: {
          201: {
            type: 'object',
            required: [...apiTokenSchema.required, 'token'],
            properties: { ...apiTokenSchema.properties, token: { type: 'string', description: 'Shown once: store it now.' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const created = await createApiToken(ctx.pool, request.body, requestActor(request));
      request.log.info({ tokenId: created.id, role: created.role, by: actorOf(request) }, 'API token created');
      return reply.code(201).send(created);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/tokens/:id',
    {
      config: { access: 'admin', audit: 'token.revoke' },
      schema: {
        tags,
        summary: 'Revoke an API token',
        description: 'Takes effect on the next request made with it. Revoking twice is not an error.',
        params: tokenParams,
        response: { 200: ref('ApiToken'), ...errorResponses },
      },
    },
    async (request) => {
      const { token } = await revokeToken(ctx.pool, request.params.id, { githubRunnerTokens: false }, requestActor(request));
      request.log.info({ tokenId: token.id, by: actorOf(request) }, 'API token revoked');
      return token;
    },
  );
}
