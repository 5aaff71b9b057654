import type { FastifyInstance } from 'fastify';
import { listAlarms } from '../../operations/listAlarms.ts';
import type { ServerContext } from '../context.ts';
import { errorResponses, ref } from '../responseSchemas.ts';

export function registerAlarmRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Querystring: { target?: string } }>(
    '/api/v1/alarms',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['targets'],
        summary: 'Alarms active now',
        description:
          'What should have happened and did not: a backup older than its bound, a schedule slot without a run, a drill overdue or failing, a store that cannot be written. Oldest first.',
        querystring: { type: 'object', additionalProperties: false, properties: { target: { type: 'string', description: 'Only this target’s.' } } },
        response: { 200: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: ref('Alarm') } } }, ...errorResponses },
      },
    },
    async (request) => ({ items: await listAlarms(ctx.pool, { target: request.query.target }) }),
  );
}
