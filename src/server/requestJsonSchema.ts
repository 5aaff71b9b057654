import { z } from 'zod';

/**
 * The JSON Schema of an operation's request, for a route's body or query string: derived from
 * the operation's zod schema, which stays the one statement of its rules (the operation parses
 * with it again, whoever calls). `io: 'input'` describes what a client sends (fields with a
 * default are optional, and carry the default for Fastify's validator to fill in); draft-07 is
 * the dialect of Fastify's Ajv. The `$schema` key goes: Fastify compiles each route schema on
 * its own and @fastify/swagger copies it into the OpenAPI document.
 */
export function requestJsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _dialect, ...jsonSchema } = z.toJSONSchema(schema, { io: 'input', target: 'draft-7' }) as Record<string, unknown>;
  return jsonSchema;
}
