import type { FastifyInstance } from 'fastify';
import { listRestores } from '../../operations/listRestores.ts';
import type { ServerContext } from '../context.ts';
import { targetParams } from '../requestSchemas.ts';
import { errorResponses } from '../responseSchemas.ts';

const restore = {
  type: 'object',
  required: ['id', 'runId', 'status', 'startedAt', 'finishedAt', 'error'],
  properties: {
    id: { type: 'string' },
    runId: { type: 'string', format: 'uuid', description: 'The backup restored.' },
    status: { type: 'string', enum: ['running', 'restored', 'failed'] },
    startedAt: { type: ['string', 'null'], format: 'date-time' },
    finishedAt: { type: ['string', 'null'], format: 'date-time' },
    error: { anyOf: [{ type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } }, { type: 'null' }] },
    requestedBy: { type: ['string', 'null'], description: 'The token name that asked, for API restores.' },
    message: { type: ['string', 'null'], description: 'Where it restored into, or what went wrong.' },
  },
} as const;

export function registerTargetRestoreRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Params: { name: string } }>(
    '/api/v1/targets/:name/restores',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['targets'],
        summary: "A target's restore history, newest first",
        description:
          'From the events restores leave on the backups they restored: API restores (`restore_started`, then `restored` or `restore_failed`) and CLI restores of a run id (`restored`).',
        params: targetParams,
        response: {
          200: { type: 'object', required: ['target', 'items'], properties: { target: { type: 'string' }, items: { type: 'array', items: restore } } },
          ...errorResponses,
        },
      },
    },
    async (request) => listRestores(ctx.pool, request.params.name),
  );
}
