import AjvModule from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify';
import { z } from 'zod';
import { BackstopError } from '../core/errors.ts';
import { invalidInput, plainIssueMessage, problemsFromZod } from '../core/inputProblems.ts';
import { exceedsJsonDepth, MAX_JSON_DEPTH } from './jsonDepth.ts';
import { partSubject } from './validationProblems.ts';

// Both packages are CommonJS with a `default` export; under Node's ESM loader the default
// import is `module.exports`, whose `.default` is the same function.
const Ajv = AjvModule.default;
const addFormats = addFormatsModule.default;

/** The Ajv the server validates with (exported for the test that derived schemas compile in it). */
export function ajv(options: { coerce: boolean }) {
  const instance = new Ajv({
    // Query strings and path parameters arrive as text, so they are coerced to the declared
    // types; JSON bodies are not: `"maxAttempts": "3"` or `"name": 12` is a client bug to report.
    coerceTypes: options.coerce ? 'array' : false,
    // An unknown property is refused rather than silently dropped: a typo like `databaseURL`
    // must not create a target without its database.
    removeAdditional: false,
    useDefaults: true,
    // Every problem at once, so a person fixes them in one go. Bounded: bodies are at most
    // 256 KiB and 64 levels deep, and checking a document that fails costs no more than
    // checking one that passes (a valid document is checked whole anyway).
    allErrors: true,
    allowUnionTypes: true,
    strict: true,
  });
  addFormats(instance, ['uuid', 'uri', 'date-time']);
  return instance;
}

/** Route body schemas derived from a zod schema, and that schema: such bodies are validated by zod itself. */
const zodBodies = new WeakMap<object, z.ZodType>();

/**
 * The JSON Schema of a zod input schema (src/operations): draft-07, which the server's Ajv
 * takes, for the input side of the schema (what a client sends: a field with a default is
 * optional). What the OpenAPI document shows; for a query string, also what Ajv checks, after
 * coercing the text of each value to its type.
 */
export function zodJsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _dialect, ...json } = z.toJSONSchema(schema, { io: 'input', target: 'draft-07' }) as Record<string, unknown>;
  return json;
}

/**
 * A route's body schema from a zod input schema (src/operations), validated with the zod
 * schema itself so the API refuses exactly what the operation and the CLI refuse, with the
 * same messages.
 */
export function zodBody(schema: z.ZodType): Record<string, unknown> {
  const json = zodJsonSchema(schema);
  zodBodies.set(json, schema);
  return json;
}

/**
 * Route schemas are compiled by two Ajv instances: a coercing one for the query string, path
 * parameters and headers, a strict one for bodies (the split Fastify's documentation shows);
 * bodies made by `zodBody` by their zod schema. Either way a refusal is INVALID_INPUT with
 * every problem as `{field, message}` (see httpErrors.ts).
 */
export function installValidation(app: FastifyInstance): void {
  const coercing = ajv({ coerce: true });
  const strict = ajv({ coerce: false });
  const compiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
    const zodSchema = httpPart === 'body' ? zodBodies.get(schema as object) : undefined;
    if (zodSchema) {
      return (data: unknown) => {
        const result = zodSchema.safeParse(data, { error: plainIssueMessage });
        // The body stays as sent: the operation parses it again, as it parses the CLI's input.
        return result.success ? { value: data } : { error: invalidInput(problemsFromZod(result.error), partSubject('body')) };
      };
    }
    return (httpPart === 'body' ? strict : coercing).compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;
  };
  app.setValidatorCompiler(compiler);

  // An empty body with `Content-Type: application/json` (what many clients send for a bodiless
  // POST such as cancel) means "no body"; anything else goes to Fastify's own parser, which
  // refuses __proto__ and constructor keys. A document nested deeper than any request needs
  // is refused first, with a 400 that says so.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    if (exceedsJsonDepth(text)) {
      done(
        new BackstopError('INVALID_INPUT', `Request body nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep; no Backstop request needs that many. Flatten it.`),
        undefined,
      );
      return;
    }
    parseJson(request, text, done);
  });
}
