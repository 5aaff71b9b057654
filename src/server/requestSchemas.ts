import { TARGET_NAME } from '../core/targetName.ts';
import { targetCreateSchema, targetUpdateSchema } from '../operations/targets/targetInput.ts';
import { uuid } from './responseSchemas.ts';
import { zodBody } from './validation.ts';

/**
 * Request schemas of the API that are the API's own: path parameters and headers, and the
 * target bodies' wiring. Every body and query string is the zod schema of the operation it
 * feeds (src/operations/), given to the route through zodBody (bodies, validated by zod) or
 * zodJsonSchema (query strings, validated by Ajv after coercing their text); see
 * validation.ts. The `examples` are valid requests: the property test in
 * test/server.property.test.ts breaks them.
 */

export const TARGET_NAME_PATTERN = TARGET_NAME.source;

export const runParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { ...uuid, description: 'Run id.' } },
} as const;

export const targetParams = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', pattern: TARGET_NAME_PATTERN, description: 'Target name.' } },
} as const;

export const tokenParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { ...uuid, description: 'API token id.' } },
} as const;

export const eventFeedHeaders = {
  type: 'object',
  properties: {
    'last-event-id': { type: 'string', pattern: '^[0-9]{1,15}$', description: 'Resume after this event id; absent: from now on (stream) or from the start (JSON).' },
  },
} as const;

/** Bodies of POST and PATCH /api/v1/targets: the operations' own input schemas (src/operations/targets/targetInput.ts). */
export const targetCreateBody = zodBody(targetCreateSchema);
export const targetUpdateBody = zodBody(targetUpdateSchema);
