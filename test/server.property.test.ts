import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createRun } from '../src/db/runRecords.ts';
import { createTarget } from '../src/db/targets.ts';
import { createTestCatalog, type TestCatalog } from './support/pg.ts';
import { startTestServer, type HttpResult, type TestServer } from './support/server.ts';

/**
 * Bad input generated from the API's own OpenAPI document: for every route and method, every
 * parameter and every body property (nested ones included) gets values that break its schema
 * (wrong JSON types, values outside an enum, a pattern, a format or a range, SQL text, unknown
 * or malformed ids, huge and negative page sizes, impossible cron expressions and time zones),
 * bodies come malformed or oversized, required fields go missing and unknown ones appear. Each
 * request is made with an admin token, so authorization never hides a validation gap. Every
 * answer must be a 4xx with a JSON `{error: {code, message}}`: never a 5xx, never a success.
 */

type Schema = Record<string, any>;
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface Operation {
  method: string;
  path: string;
  parameters: Array<{ name: string; in: 'path' | 'query' | 'header'; schema: Schema }>;
  body: Schema | undefined;
  example: Json | undefined;
}

interface BadRequest {
  what: string;
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Json;
  rawBody?: string;
}

const SQL = [
  "'; drop table backstop.runs; --",
  "x' or '1'='1",
  '1; select pg_sleep(5)',
  "\\'; truncate backstop.targets cascade; --",
  '") or true; delete from backstop.api_tokens; --',
];
const UNKNOWN_UUID = '7d1c2b4a-0d5e-4f6a-8b7c-9d0e1f2a3b4c';
const BAD_CRONS = ['every day', '* * *', '61 * * * *', '0 25 * * *', '0 0 30 2 *', '0 0 * 13 *', '* * * * * * * *', '@sometimes', ...SQL];
const BAD_TIMEZONES = ['Mars/Olympus_Mons', 'Europe/Atlantis', 'UTC+99', 'Not a zone', '', ...SQL];

const jsonType = (value: Json): string =>
  value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value === 'number' ? (Number.isInteger(value) ? 'integer' : 'number') : typeof value;

/** The JSON types a schema admits, or null for "anything". */
function allowedTypes(schema: Schema): Set<string> | null {
  if (schema.anyOf) {
    const union = new Set<string>();
    for (const branch of schema.anyOf as Schema[]) {
      const types = allowedTypes(branch);
      if (!types) return null;
      for (const type of types) union.add(type);
    }
    return union;
  }
  if (schema.enum) return new Set((schema.enum as Json[]).map(jsonType));
  if (schema.type) return new Set(Array.isArray(schema.type) ? schema.type : [schema.type]);
  return null;
}

function admits(types: Set<string>, value: Json): boolean {
  const type = jsonType(value);
  return types.has(type) || (type === 'integer' && types.has('number'));
}

/** The non-null branch of `anyOf: [X, {type: 'null'}]`, else the schema itself. */
const mainBranch = (schema: Schema): Schema => (schema.anyOf ? ((schema.anyOf as Schema[]).find((s) => s.type !== 'null') ?? schema) : schema);

const sampleOfType: Record<string, fc.Arbitrary<Json>> = {
  null: fc.constant(null),
  boolean: fc.boolean(),
  integer: fc.integer({ min: -5, max: 5 }),
  number: fc.double({ min: -1e6, max: 1e6, noNaN: true }).filter((n) => !Number.isInteger(n)),
  string: fc.constantFrom('', 'x', ...SQL),
  array: fc.constantFrom<Json>([], [1, 'a'], [null]),
  object: fc.constantFrom<Json>({}, { a: 1 }, { nested: { deeper: [] } }),
};

/** Values of a JSON type the schema does not admit. */
function wrongType(schema: Schema): fc.Arbitrary<Json> | null {
  const types = allowedTypes(schema);
  if (!types) return null;
  const wrong = Object.entries(sampleOfType)
    .filter(([type]) => !types.has(type) && !(type === 'integer' && types.has('number')))
    .map(([, arbitrary]) => arbitrary);
  return wrong.length > 0 ? fc.oneof(...wrong).filter((value) => !admits(types, value)) : null;
}

/** Values of the right type that break the schema's other rules. */
function outOfRule(schema: Schema): fc.Arbitrary<Json> | null {
  const main = mainBranch(schema);
  const options: fc.Arbitrary<Json>[] = [];
  if (main.enum) options.push(fc.constantFrom('not-a-choice', 'SUCCEEDED', ...SQL));
  if (main.type === 'string' || main.format) {
    if (main.pattern) {
      const pattern = new RegExp(main.pattern);
      options.push(fc.constantFrom(...SQL, ' leading-space', 'UPPER/../x', 'ü').filter((value) => !pattern.test(value)));
    }
    if (main.format === 'uuid') options.push(fc.constantFrom('not-a-uuid', '12345', `${UNKNOWN_UUID}x`, ...SQL));
    if (main.maxLength !== undefined) options.push(fc.constant('x'.repeat(main.maxLength + 1)));
    if (main.minLength) options.push(fc.constant(''));
  }
  if (main.type === 'integer' || main.type === 'number') {
    if (main.maximum !== undefined) options.push(fc.constantFrom(main.maximum + 1, 1e300, Number.MAX_SAFE_INTEGER));
    if (main.minimum !== undefined) options.push(fc.constantFrom(main.minimum - 1, -1e300, -Number.MAX_SAFE_INTEGER));
  }
  if (main.type === 'array') {
    if (main.maxItems !== undefined)
      options.push(fc.constant(Array.from({ length: main.maxItems + 1 }, (_, i) => (main.items?.enum ? main.items.enum[i % main.items.enum.length] : 'x'))));
    if (main.minItems) options.push(fc.constant([]));
  }
  if (main.type === 'object' && main.minProperties) options.push(fc.constant({}));
  return options.length > 0 ? fc.oneof(...options) : null;
}

interface PropertySite {
  path: Array<string | number>;
  schema: Schema;
}

/** Every property of a body schema, nested objects and array elements included. */
function propertySites(schema: Schema, prefix: Array<string | number> = []): PropertySite[] {
  const object = mainBranch(schema);
  if (!object.properties) return [];
  const sites: PropertySite[] = [];
  for (const [key, sub] of Object.entries(object.properties as Record<string, Schema>)) {
    const path = [...prefix, key];
    sites.push({ path, schema: sub });
    sites.push(...propertySites(sub, path));
    const items = mainBranch(sub).items as Schema | undefined;
    if (items) {
      sites.push({ path: [...path, 0], schema: items });
      sites.push(...propertySites(items, [...path, 0]));
    }
  }
  return sites;
}

/** Every object schema in the body with its path, for required/additional-property mutations. */
function objectSites(schema: Schema, prefix: Array<string | number> = []): PropertySite[] {
  const object = mainBranch(schema);
  if (object.type !== 'object') return [];
  return [{ path: prefix, schema: object }, ...propertySites(schema, prefix).flatMap((site) => (mainBranch(site.schema).type === 'object' ? [site] : []))];
}

function getAt(value: Json | undefined, path: Array<string | number>): Json | undefined {
  let current: any = value;
  for (const key of path) current = current?.[key];
  return current;
}

/** A copy of `value` with `path` set (missing parents created), or removed when `replacement` is undefined. */
function setAt(value: Json | undefined, path: Array<string | number>, replacement: Json | undefined): Json {
  if (path.length === 0) return replacement as Json;
  const [key, ...rest] = path;
  const container: any = Array.isArray(value) ? [...value] : value && typeof value === 'object' ? { ...value } : typeof key === 'number' ? [] : {};
  const child = setAt(container[key!], rest, replacement);
  if (rest.length === 0 && replacement === undefined) {
    if (Array.isArray(container)) container.splice(key as number, 1);
    else delete container[key!];
  } else container[key!] = child;
  return container;
}

const label = (path: Array<string | number>) => path.join('.') || '(body)';

function isScheduleObject(schema: Schema): boolean {
  const props = mainBranch(schema).properties;
  return Boolean(props?.cron && props?.timezone);
}

describe('API bad input, generated from /api/openapi.json', { timeout: 300_000 }, () => {
  let catalog: TestCatalog;
  let api: TestServer;
  let operations: Operation[];
  const fixture = { target: 'fixture', runId: '' };
  let counts: Record<string, number>;

  const countRows = async () => {
    const result: Record<string, number> = {};
    for (const table of ['targets', 'runs', 'api_tokens', 'runner_tokens', 'run_events']) {
      result[table] = (await catalog.pool.query<{ count: number }>(`select count(*)::int as count from backstop.${table}`)).rows[0]!.count;
    }
    return result;
  };

  before(async () => {
    catalog = await createTestCatalog();
    api = await startTestServer({ catalogUrl: catalog.url });
    const target = await createTarget(catalog.pool, { name: fixture.target, databaseUrl: 'postgres://u:p@127.0.0.1:1/x', storeUrl: 'file:///tmp/fixture' });
    fixture.runId = (await createRun(catalog.pool, { targetId: target.id, trigger: 'test', runDeadlineMs: 3_600_000 })).id;
    const doc = await api.request('GET', '/api/openapi.json');
    assert.equal(doc.status, 200);
    operations = [];
    for (const [path, methods] of Object.entries(doc.json.paths as Record<string, Record<string, any>>)) {
      for (const [method, operation] of Object.entries(methods)) {
        const media = operation.requestBody?.content?.['application/json'];
        operations.push({
          method: method.toUpperCase(),
          path,
          parameters: operation.parameters ?? [],
          body: media?.schema,
          example: media?.example ?? (media?.examples ? (Object.values(media.examples)[0] as { value: Json }).value : undefined),
        });
      }
    }
    assert.ok(operations.length >= 20, `only ${operations.length} operations in the document`);
    counts = await countRows();
  });

  after(async () => {
    await api?.close();
    await catalog?.close();
  });

  /** A path with its parameters filled: valid, existing values unless overridden. */
  const fillPath = (operation: Operation, override: Record<string, string> = {}) =>
    operation.path.replace(/\{(\w+|\*)\}/g, (_, name: string) => {
      if (name in override) return encodeURIComponent(override[name]!);
      // `*`: a backup's file name (GET /api/v1/runs/{id}/files/{*}).
      return name === 'name' ? fixture.target : name === '*' ? 'manifest.json' : name === 'channelId' ? 'no-such-channel' : fixture.runId;
    });

  /** Every kind of bad request for one operation, each as an arbitrary. */
  function badRequests(operation: Operation): Array<{ kind: string; arbitrary: fc.Arbitrary<BadRequest> }> {
    const out: Array<{ kind: string; arbitrary: fc.Arbitrary<BadRequest> }> = [];
    const validBody = operation.example ?? (operation.body ? {} : undefined);
    const withBody = (request: Omit<BadRequest, 'path'> & { path?: string }): BadRequest => ({
      path: request.path ?? fillPath(operation),
      ...(validBody !== undefined && request.body === undefined && request.rawBody === undefined ? { body: validBody } : {}),
      ...request,
    });

    for (const parameter of operation.parameters) {
      const where = `${parameter.in} ${parameter.name}`;
      const bad: fc.Arbitrary<string>[] = [];
      const schema = parameter.schema;
      // Not `.` or `..`: as a bare path segment every HTTP client (fetch included, even
      // %2E-escaped) resolves it away, and /api/v1/runs/../events is another route by design.
      if (schema.format === 'uuid') bad.push(fc.constantFrom('not-a-uuid', '0', 'x'.repeat(300), '...', '%00', ...SQL), fc.constant(UNKNOWN_UUID));
      if (schema.pattern) {
        const pattern = new RegExp(schema.pattern);
        bad.push(fc.constantFrom(...SQL, 'UPPER', '-lead', 'a'.repeat(64), '../etc').filter((v) => !pattern.test(v)));
        if (parameter.in === 'path') bad.push(fc.constant('no-such-target'));
      }
      if (schema.enum) bad.push(fc.constantFrom('bogus', 'QUEUED', ...SQL));
      if (schema.maxLength !== undefined) bad.push(fc.constant('x'.repeat(schema.maxLength + 1)));
      if (schema.type === 'integer') {
        bad.push(
          fc.constantFrom('abc', '1.5', '1e999', '99999999999999999999999', '-1', ...SQL),
          fc.integer({ min: (schema.maximum ?? 0) + 1, max: 2 ** 52 }).map(String),
          fc.integer({ min: -(2 ** 52), max: (schema.minimum ?? 0) - 1 }).map(String),
        );
      }
      assert.ok(bad.length > 0, `no bad values for ${operation.method} ${operation.path} ${where}`);
      out.push({
        kind: where,
        arbitrary: fc.oneof(...bad).map((value) => {
          if (parameter.in === 'path') return withBody({ what: `${where}=${value.slice(0, 40)}`, path: fillPath(operation, { [parameter.name]: value }) });
          if (parameter.in === 'query') return withBody({ what: `${where}=${value.slice(0, 40)}`, query: { [parameter.name]: value } });
          return withBody({ what: `${where}=${value.slice(0, 40)}`, headers: { [parameter.name]: value } });
        }),
      });
    }

    if (operation.body) {
      const body = operation.body;
      out.push({
        kind: 'malformed JSON',
        arbitrary: fc
          .tuple(fc.constantFrom('{', '[', '{"a":', "{'a': 1}", '{"a": 1,}', 'tru', '{"a" 1}', '"unterminated', '{"__proto__": {"admin": true}}'), fc.string({ maxLength: 20 }))
          .map(([prefix, suffix]) => `${prefix}${suffix}`)
          .filter((text) => {
            try {
              const parsed = JSON.parse(text);
              // Valid JSON is acceptable here only when it cannot match the schema (not an object).
              return parsed === null || typeof parsed !== 'object' || Array.isArray(parsed);
            } catch {
              return true;
            }
          })
          .map((rawBody) => ({ what: `malformed JSON ${rawBody.slice(0, 30)}`, path: fillPath(operation), rawBody })),
      });
      out.push({
        kind: 'oversized body',
        arbitrary: fc.integer({ min: 257, max: 400 }).map((kib) => ({
          what: `${kib} KiB body`,
          path: fillPath(operation),
          rawBody: JSON.stringify({ ...(validBody as object), padding: 'x'.repeat(kib * 1024) }),
        })),
      });
      out.push({
        kind: 'body of the wrong JSON type',
        arbitrary: fc.constantFrom<Json>(null, 1, 'text', true, [validBody ?? {}]).map((value) => withBody({ what: `body ${JSON.stringify(value).slice(0, 30)}`, body: value })),
      });
      for (const site of propertySites(body)) {
        const wrong = wrongType(site.schema);
        if (wrong) {
          out.push({
            kind: `wrong type at ${label(site.path)}`,
            arbitrary: wrong.map((value) => withBody({ what: `${label(site.path)}=${JSON.stringify(value)?.slice(0, 40)}`, body: setAt(validBody, site.path, value) })),
          });
        }
        const broken = outOfRule(site.schema);
        if (broken) {
          out.push({
            kind: `out of rule at ${label(site.path)}`,
            arbitrary: broken.map((value) => withBody({ what: `${label(site.path)}=${JSON.stringify(value)?.slice(0, 40)}`, body: setAt(validBody, site.path, value) })),
          });
        }
        if (isScheduleObject(site.schema)) {
          const goodCron = (getAt(validBody, [...site.path, 'cron']) as string | undefined) ?? '0 3 * * *';
          out.push({
            kind: `invalid cron or time zone at ${label(site.path)}`,
            arbitrary: fc
              .oneof(
                fc.constantFrom(...BAD_CRONS).map((cron) => ({ cron, timezone: 'UTC' })),
                fc.integer({ min: 60, max: 999 }).map((minute) => ({ cron: `${minute} * * * *`, timezone: 'UTC' })),
                fc.constantFrom(...BAD_TIMEZONES).map((timezone) => ({ cron: goodCron, timezone })),
                fc.stringMatching(/^[A-Z][a-z]{3,12}$/).map((city) => ({ cron: goodCron, timezone: `Nowhere/${city}` })),
              )
              .map((schedule) => withBody({ what: `${label(site.path)}=${JSON.stringify(schedule)}`, body: setAt(validBody, site.path, schedule) })),
          });
        }
      }
      for (const site of objectSites(body)) {
        const object = mainBranch(site.schema);
        if (object.additionalProperties === false) {
          out.push({
            kind: `unknown property in ${label(site.path)}`,
            arbitrary: fc.constantFrom('unexpected', 'databaseURL', 'isAdmin', '__proto__x').map((key) => {
              const base = getAt(validBody, site.path);
              const target = base && typeof base === 'object' && !Array.isArray(base) ? base : {};
              return withBody({ what: `${label(site.path)}.${key}`, body: setAt(validBody, site.path, { ...target, [key]: 1 }) });
            }),
          });
        }
        for (const required of (object.required as string[] | undefined) ?? []) {
          out.push({
            kind: `missing ${label([...site.path, required])}`,
            arbitrary: fc.constant(withBody({ what: `without ${label([...site.path, required])}`, body: setAt(validBody, [...site.path, required], undefined) })),
          });
        }
      }
    }
    return out;
  }

  const send = async (operation: Operation, request: BadRequest): Promise<HttpResult> => {
    const query = request.query ? `?${new URLSearchParams(request.query)}` : '';
    const headers: Record<string, string> = { ...request.headers };
    if (request.rawBody !== undefined) headers['content-type'] = 'application/json';
    return api.request(operation.method, request.path + query, { body: request.body, rawBody: request.rawBody, headers });
  };

  const check = (operation: Operation, request: BadRequest, result: HttpResult) => {
    const where = `${operation.method} ${operation.path} [${request.what}] → ${result.status} ${result.text.slice(0, 300)}`;
    assert.ok(result.status >= 400 && result.status < 500, where);
    assert.match(result.headers.get('content-type') ?? '', /^application\/json/, where);
    assert.equal(typeof result.json?.error?.code, 'string', where);
    assert.ok(typeof result.json.error.message === 'string' && result.json.error.message.length > 0, where);
  };

  it('every parameter and body property of every operation refuses bad values with a 4xx JSON error', async () => {
    let cases = 0;
    const covered = new Set<string>();
    const checks: Array<() => Promise<void>> = [];
    for (const operation of operations) {
      const kinds = badRequests(operation);
      if (operation.parameters.length === 0 && !operation.body) continue;
      assert.ok(kinds.length > 0, `no bad input generated for ${operation.method} ${operation.path}`);
      covered.add(`${operation.method} ${operation.path}`);
      for (const { arbitrary } of kinds) {
        checks.push(() =>
          fc.assert(
            fc.asyncProperty(arbitrary, async (request) => {
              cases++;
              check(operation, request, await send(operation, request));
            }),
            { numRuns: 2 },
          ),
        );
      }
    }
    // Every request here is refused, so they cannot interfere: run a few at a time.
    const queue = [...checks];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let next = queue.shift(); next; next = queue.shift()) await next();
      }),
    );
    // Routes without parameters or body (health, metrics, list targets, list tokens) have nothing to break.
    assert.ok(covered.size >= 17, `only ${covered.size} operations had inputs: ${[...covered].join(', ')}`);
    assert.ok(cases > 250, `only ${cases} requests`);
  });

  it('random mixes across all operations: still 4xx JSON, never 5xx', async () => {
    const all = operations.flatMap((operation) => badRequests(operation).map(({ arbitrary }) => arbitrary.map((request) => ({ operation, request }))));
    await fc.assert(
      fc.asyncProperty(fc.oneof(...all), async ({ operation, request }) => {
        check(operation, request, await send(operation, request));
      }),
      { numRuns: 150 },
    );
  });

  it('nothing was created, changed or dropped: the catalog has its tables and only its fixtures', async () => {
    const { rows } = await catalog.pool.query<{ table_name: string }>(`select table_name from information_schema.tables where table_schema = 'backstop'`);
    const tables = rows.map((row) => row.table_name);
    for (const table of ['targets', 'runs', 'run_events', 'api_tokens', 'runner_tokens', 'migrations']) assert.ok(tables.includes(table), `backstop.${table} is gone`);
    assert.deepEqual(await countRows(), counts);
    const run = await api.request('GET', `/api/v1/runs/${fixture.runId}`);
    assert.equal(run.json.status, 'queued');
    assert.equal((await api.request('GET', '/readyz', { token: null })).status, 200);
  });

  it('SQL text in free-text fields is data: stored or refused, never a 5xx, and the catalog keeps its tables', async () => {
    // A webhook secret or an event message may legitimately contain quotes and semicolons, so
    // here a success is allowed; what is not allowed is a server error or a changed schema.
    let accepted = 0;
    for (const operation of operations.filter((op) => op.body)) {
      const stringSites = propertySites(operation.body!).filter((site) => allowedTypes(site.schema)?.has('string'));
      for (const site of stringSites) {
        await fc.assert(
          fc.asyncProperty(fc.constantFrom(...SQL), async (sql) => {
            const request: BadRequest = { what: `${label(site.path)}=${sql}`, path: fillPath(operation), body: setAt(operation.example ?? {}, site.path, sql) };
            const result = await send(operation, request);
            assert.ok(result.status < 500, `${operation.method} ${operation.path} [${request.what}] → ${result.status} ${result.text}`);
            if (result.status >= 400) assert.equal(typeof result.json?.error?.message, 'string');
            else accepted++;
          }),
          { numRuns: 2 },
        );
      }
    }
    const { rows } = await catalog.pool.query<{ count: number }>(
      `select count(*)::int as count from information_schema.tables where table_schema = 'backstop' and table_name in ('targets', 'runs', 'run_events', 'api_tokens', 'runner_tokens')`,
    );
    assert.equal(rows[0]!.count, 5);
    assert.equal((await api.request('GET', `/api/v1/runs/${fixture.runId}`)).status, 200);
    // Some fields (names, messages, secrets) take such text as data: had every request been
    // refused, this test would have checked only the validation, never the store path.
    assert.ok(accepted > 0, 'every SQL-bearing request was refused: nothing reached the catalog');
  });
});
