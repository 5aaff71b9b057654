import AjvModule from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify';
import { BackstopError } from '../core/errors.ts';
import { exceedsJsonDepth, MAX_JSON_DEPTH } from './jsonDepth.ts';

// Both packages are CommonJS with a `default` export; under Node's ESM loader the default
// import is `module.exports`, whose `.default` is the same function.
const Ajv = AjvModule.default;
const addFormats = addFormatsModule.default;

function ajv(options: { coerce: boolean }) {
  const instance = new Ajv({
    // Query strings and path parameters arrive as text, so they are coerced to the declared
    // types; JSON bodies are not: `"maxAttempts": "3"` or `"name": 12` is a client bug to report.
    coerceTypes: options.coerce ? 'array' : false,
    // An unknown property is refused rather than silently dropped: a typo like `databaseURL`
    // must not create a target without its database.
    removeAdditional: false,
    useDefaults: true,
    // One error at a time: collecting every error of a hostile document costs unbounded work.
    allErrors: false,
    allowUnionTypes: true,
    strict: true,
  });
  addFormats(instance, ['uuid', 'uri', 'date-time']);
  return instance;
}

/**
 * Route schemas are compiled by two Ajv instances: a coercing one for the query string, path
 * parameters and headers, a strict one for bodies (the split Fastify's documentation shows).
 */
export function installValidation(app: FastifyInstance): void {
  const coercing = ajv({ coerce: true });
  const strict = ajv({ coerce: false });
  const compiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
    (httpPart === 'body' ? strict : coercing).compile(schema as object) as ReturnType<FastifySchemaCompiler<unknown>>;
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
