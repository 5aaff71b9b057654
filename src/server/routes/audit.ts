import type { FastifyInstance } from 'fastify';
import { actorClients, actorKinds } from '../../core/auditActor.ts';
import { auditActions, auditOutcomes } from '../../core/auditEntry.ts';
import { apiTokenRoles } from '../../core/roles.ts';
import { auditQuery, listAudit, type AuditQuery } from '../../operations/listAudit.ts';
import type { ServerContext } from '../context.ts';
import { zodJsonSchema } from '../validation.ts';
import { errorResponses } from '../responseSchemas.ts';

const detailValue = { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }, { type: 'null' }, { type: 'array', items: { type: 'string' } }] } as const;

const auditEntry = {
  type: 'object',
  required: ['id', 'at', 'actor', 'action', 'subject', 'outcome', 'errorCode', 'details'],
  properties: {
    id: { type: 'integer', description: 'Increasing as entries are written.' },
    at: { type: 'string', format: 'date-time', description: 'The catalog database clock.' },
    actor: {
      type: 'object',
      required: ['kind', 'name', 'address', 'client'],
      properties: {
        kind: { type: 'string', enum: actorKinds },
        id: { type: 'string', description: "A user's or token's id." },
        name: { type: 'string', description: "A user's or token's name, the OS user at the CLI, or the server's loop." },
        role: { type: ['string', 'null'], enum: [...apiTokenRoles, null], description: "A token's role; a user's, when Backstop gives them one." },
        address: { type: ['string', 'null'], description: "Where from: the client's IP address for the API, the host for the CLI." },
        client: { type: 'string', enum: actorClients },
      },
    },
    action: { type: 'string', enum: auditActions },
    subject: { type: ['string', 'null'], description: 'What it acted on: a target name, a run id, a token id, a channel name.' },
    outcome: { type: 'string', enum: auditOutcomes },
    errorCode: { type: ['string', 'null'], description: 'Why it was refused or failed.' },
    details: {
      type: 'object',
      additionalProperties: detailValue,
      description: 'Facts that are never secret: the fields a change touched (`changed`, names only), a restore’s host, port and database, the run an action made.',
    },
  },
} as const;

export function registerAuditRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Querystring: AuditQuery }>(
    '/api/v1/audit',
    {
      config: { access: 'admin' },
      schema: {
        tags: ['audit'],
        summary: 'The audit trail, newest first',
        description:
          'Every action of a person or a token — sign-in, target created, changed or deleted, run triggered, cancelled or restored, drill queued, token created or revoked, channel changed, prune — with who, when, from where and how it ended. Append-only: no role can change or delete an entry. Filter by `since`, `actor` and `action`; page with `cursor`.',
        querystring: zodJsonSchema(auditQuery),
        response: {
          200: {
            type: 'object',
            required: ['items', 'nextCursor'],
            properties: {
              items: { type: 'array', items: auditEntry },
              nextCursor: { type: ['string', 'null'], description: 'Pass as `cursor` for the next page; null on the last page.' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => listAudit(ctx.pool, request.query),
  );
}
