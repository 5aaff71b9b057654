import type { FastifyInstance } from 'fastify';
import { BackstopError } from '../../core/errors.ts';
import { apiTokenRequest, apiTokenRoles, createApiToken, type ApiTokenRequest } from '../../operations/createApiToken.ts';
import { listTokens } from '../../operations/listTokens.ts';
import { revokeToken } from '../../operations/revokeToken.ts';
import { actorOf } from '../auth.ts';
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
        summary: 'Who is making this request (an API token, or a person signed in to the dashboard): name and role',
        description:
          'What a client (the dashboard) shows and allows: viewers read, operators also act on runs, admins also manage targets and tokens. For a person signed in with OpenID Connect, also the CSRF token their writes must carry in the x-backstop-csrf header.',
        response: {
          200: {
            type: 'object',
            required: ['id', 'name', 'role', 'kind'],
            properties: {
              id: { type: 'string', format: 'uuid', description: 'The token, or the sign-in.' },
              name: { type: 'string' },
              role: { type: 'string', enum: apiTokenRoles },
              kind: { type: 'string', enum: ['token', 'user'] },
              owner: { type: ['string', 'null'], description: 'A token: the person or service that holds it.' },
              email: { type: ['string', 'null'], description: 'A person: their address at the provider.' },
              csrfToken: { type: 'string', description: 'A person: the token their writes send in x-backstop-csrf.' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const principal = request.principal;
      if (principal?.kind === 'user') {
        return { id: principal.sessionId, name: principal.name, role: principal.role, kind: 'user', email: principal.email, csrfToken: principal.csrfToken };
      }
      if (principal?.kind !== 'api') throw new BackstopError('FORBIDDEN', 'Only API tokens have a role; runner tokens open their run only.');
      return { id: principal.tokenId, name: principal.name, role: principal.role, kind: 'token', owner: principal.owner };
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
      config: { access: 'admin' },
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
      // A person who makes a token without naming its holder holds it themselves.
      const principal = request.principal;
      const owner = request.body.owner ?? (principal?.kind === 'user' ? (principal.email ?? principal.name) : undefined);
      const created = await createApiToken(ctx.pool, { ...request.body, owner });
      request.log.info({ tokenId: created.id, role: created.role, by: actorOf(request) }, 'API token created');
      return reply.code(201).send(created);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/tokens/:id',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'Revoke an API token',
        description: 'Takes effect on the next request made with it. Revoking twice is not an error.',
        params: tokenParams,
        response: { 200: ref('ApiToken'), ...errorResponses },
      },
    },
    async (request) => {
      const { token } = await revokeToken(ctx.pool, request.params.id, { githubRunnerTokens: false });
      request.log.info({ tokenId: token.id, by: actorOf(request) }, 'API token revoked');
      return token;
    },
  );
}
