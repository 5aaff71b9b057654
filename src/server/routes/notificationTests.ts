import type { FastifyInstance } from 'fastify';
import { sendTestNotification } from '../../operations/sendTestNotification.ts';
import { actorOf } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { TARGET_NAME_PATTERN } from '../requestSchemas.ts';
import { errorResponses } from '../responseSchemas.ts';

export const testNotificationResult = {
  type: 'object',
  required: ['delivered'],
  properties: {
    delivered: { type: 'boolean' },
    status: { type: 'integer', description: "The receiver's HTTP status, when it answered." },
    error: { type: 'string', description: 'What went wrong (never a URL, token, password or secret).' },
  },
} as const;

export function registerNotificationTestRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Params: { name: string; channelId: string } }>(
    '/api/v1/targets/:name/notifications/:channelId/test',
    {
      config: { access: 'admin', optionalBody: true },
      schema: {
        tags: ['targets'],
        summary: 'Send a test notification on one channel now',
        description:
          'Delivered like every notification (the same message, signed for a webhook; a shared channel is sent to on behalf of the target) through the outbound guard, once, not queued: the answer is its outcome. A receiver that fails is `delivered: false` with the reason, not an error response.',
        params: {
          type: 'object',
          required: ['name', 'channelId'],
          additionalProperties: false,
          properties: { name: { type: 'string', pattern: TARGET_NAME_PATTERN }, channelId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
        },
        response: { 200: testNotificationResult, ...errorResponses },
      },
    },
    async (request) => {
      const result = await sendTestNotification(
        ctx.pool,
        { targetName: request.params.name, channelId: request.params.channelId, requestedBy: actorOf(request) },
        { publicUrl: ctx.config.alarms.publicUrl },
      );
      request.log.info({ target: request.params.name, channel: request.params.channelId, delivered: result.delivered }, 'test notification sent');
      return result;
    },
  );
}
