import type { FastifyInstance } from 'fastify';
import { latestEventId, listEventsAfter } from '../../db/runEventFeed.ts';
import type { ServerContext } from '../context.ts';
import { eventFeedHeaders } from '../requestSchemas.ts';
import { errorResponses, ref } from '../responseSchemas.ts';
import { feedEventJson } from '../runEventStream.ts';

const JSON_PAGE = 500;

const feedEvent = {
  allOf: [
    ref('RunEvent'),
    {
      type: 'object',
      required: ['targetName', 'runKind'],
      properties: { targetName: { type: 'string' }, runKind: { type: 'string', enum: ['backup', 'verify'] } },
    },
  ],
} as const;

export function registerEventRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Headers: { 'last-event-id'?: string } }>(
    '/api/v1/events',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['runs'],
        summary: 'Events of every run (a Server-Sent Events stream, or JSON)',
        description:
          'With `Accept: text/event-stream`: first a `ready` event whose id is where the stream starts (the newest event when no `Last-Event-ID` is sent), then every run’s events as they are recorded, each with its target name and run kind; the stream does not end by itself. Reconnect with `Last-Event-ID` to miss nothing. Otherwise: up to 500 events after `Last-Event-ID` (default 0) as JSON.',
        headers: eventFeedHeaders,
        response: {
          200: {
            description: 'The events',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['items', 'lastEventId'],
                  properties: {
                    items: { type: 'array', items: feedEvent },
                    lastEventId: { type: 'integer', description: 'Send as Last-Event-ID to read on.' },
                  },
                },
              },
              'text/event-stream': {
                schema: { type: 'string', description: 'Server-Sent Events: `id` = event id, `data` = the event as JSON with `targetName` and `runKind`.' },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const header = request.headers['last-event-id'];
      if (!(request.headers.accept ?? '').includes('text/event-stream')) {
        const afterId = Number(header ?? 0);
        const events = await listEventsAfter(ctx.pool, afterId, JSON_PAGE, 0);
        return reply.type('application/json; charset=utf-8').send({ items: events.map(feedEventJson), lastEventId: events.at(-1)?.id ?? afterId });
      }
      ctx.streams.openFeed(request, reply, header === undefined ? await latestEventId(ctx.pool) : Number(header));
      return reply;
    },
  );
}
