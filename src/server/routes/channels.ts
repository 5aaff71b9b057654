import type { FastifyInstance } from 'fastify';
import { sendSharedChannelTest } from '../../operations/sendTestNotification.ts';
import {
  addSharedChannel,
  channelCreateSchema,
  channelUpdateSchema,
  listChannels,
  removeSharedChannel,
  showChannel,
  updateSharedChannel,
  type ChannelCreateInput,
  type ChannelUpdateInput,
} from '../../operations/sharedChannels.ts';
import { actorOf } from '../auth.ts';
import type { ServerContext } from '../context.ts';
import { errorResponses, ref } from '../responseSchemas.ts';
import { zodBody } from '../validation.ts';
import { testNotificationResult } from './notificationTests.ts';
import { requestActor } from '../auth.ts';

const tags = ['channels'];

const channelParams = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,62}$', description: 'Channel name.' } },
} as const;

/** Shared notification channels, admins only: their settings name where alerts go, and the API never returns their secrets. */
export function registerChannelRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get(
    '/api/v1/channels',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'List shared notification channels',
        description: 'Each with its settings but the secrets, the targets that use it, and how its deliveries are going (`health.failingSince` set: failing).',
        response: { 200: { type: 'object', required: ['items'], properties: { items: { type: 'array', items: ref('Channel') } } }, ...errorResponses },
      },
    },
    async () => ({ items: await listChannels(ctx.pool) }),
  );

  app.post<{ Body: ChannelCreateInput }>(
    '/api/v1/channels',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'Add a shared notification channel',
        description:
          'Its URL, SMTP server or Telegram API must reach a public address unless BACKSTOP_ALLOW_PRIVATE_ENDPOINTS allows it. Secrets (url, secret, token, botToken, password) are stored and never returned. 409 CHANNEL_EXISTS when the name is taken.',
        body: zodBody(channelCreateSchema),
        response: { 201: ref('Channel'), ...errorResponses },
      },
    },
    async (request, reply) => reply.code(201).send(await addSharedChannel(ctx.pool, request.body, requestActor(request))),
  );

  app.get<{ Params: { name: string } }>(
    '/api/v1/channels/:name',
    { config: { access: 'admin' }, schema: { tags, summary: 'Show a shared notification channel', params: channelParams, response: { 200: ref('Channel'), ...errorResponses } } },
    async (request) => showChannel(ctx.pool, request.params.name),
  );

  app.patch<{ Params: { name: string }; Body: ChannelUpdateInput }>(
    '/api/v1/channels/:name',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'Change a shared notification channel',
        description: 'Absent settings keep their value, secrets included; null removes an optional one. Notifications already queued are sent with the new settings.',
        params: channelParams,
        body: zodBody(channelUpdateSchema),
        response: { 200: ref('Channel'), ...errorResponses },
      },
    },
    async (request) => updateSharedChannel(ctx.pool, request.params.name, request.body, requestActor(request)),
  );

  app.delete<{ Params: { name: string } }>(
    '/api/v1/channels/:name',
    {
      config: { access: 'admin' },
      schema: {
        tags,
        summary: 'Remove a shared notification channel',
        description: '409 CHANNEL_IN_USE, naming the targets, while a target uses it.',
        params: channelParams,
        response: { 204: { type: 'null' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      await removeSharedChannel(ctx.pool, request.params.name, requestActor(request));
      request.log.info({ channel: request.params.name, by: actorOf(request) }, 'shared channel removed');
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { name: string } }>(
    '/api/v1/channels/:name/test',
    {
      config: { access: 'admin', optionalBody: true },
      schema: {
        tags,
        summary: 'Send a test notification on a shared channel now',
        description: "Delivered like every notification, once, not queued: the answer is its outcome, which also counts for the channel's health.",
        params: channelParams,
        response: { 200: testNotificationResult, ...errorResponses },
      },
    },
    async (request) => {
      const result = await sendSharedChannelTest(ctx.pool, { name: request.params.name, requestedBy: actorOf(request) }, { publicUrl: ctx.config.alarms.publicUrl });
      request.log.info({ channel: request.params.name, delivered: result.delivered }, 'test notification sent');
      return result;
    },
  );
}
