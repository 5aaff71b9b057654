import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import pino from 'pino';
import { startGithubExecutor, type GithubExecutor } from '../../src/executors/github/githubExecutor.ts';
import type { Pool } from '../../src/db/pool.ts';
import { githubClient } from '../../src/executors/github/githubClient.ts';

/**
 * A local stand-in for the GitHub REST API's Actions endpoints that Backstop calls. Every
 * request it receives and every response it sends is validated against GitHub's official
 * OpenAPI description (@octokit/openapi, dereferenced); violations are collected for the test
 * to assert on. Response bodies are generated from the same schemas, then filled in.
 */

type Json = Record<string, unknown>;
interface Operation {
  method: string;
  pattern: RegExp;
  specPath: string;
}

const OPERATIONS: Operation[] = [
  { method: 'POST', pattern: /^\/repos\/[^/]+\/[^/]+\/actions\/workflows\/[^/]+\/dispatches$/, specPath: '/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches' },
  { method: 'GET', pattern: /^\/repos\/[^/]+\/[^/]+\/actions\/workflows\/[^/]+\/runs$/, specPath: '/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs' },
  { method: 'GET', pattern: /^\/repos\/[^/]+\/[^/]+\/actions\/runs\/\d+$/, specPath: '/repos/{owner}/{repo}/actions/runs/{run_id}' },
  { method: 'POST', pattern: /^\/repos\/[^/]+\/[^/]+\/actions\/runs\/\d+\/cancel$/, specPath: '/repos/{owner}/{repo}/actions/runs/{run_id}/cancel' },
];

let spec: { paths: Record<string, Record<string, Json>> } | undefined;
function loadSpec() {
  spec ??= createRequire(import.meta.url)('@octokit/openapi/generated/api.github.com.deref.json');
  return spec!;
}

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
(addFormatsModule as unknown as (ajv: Ajv) => void)(ajv);
ajv.addFormat('int64', true);
ajv.addFormat('int32', true);
const validators = new Map<object, ValidateFunction>();
function validatorFor(schema: object): ValidateFunction {
  let validate = validators.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    validators.set(schema, validate);
  }
  return validate;
}

/** A minimal valid instance of a schema: required properties only, filled by type and format. */
function exampleFor(schema: Json | undefined, depth = 0): unknown {
  if (!schema || depth > 12) return null;
  if (schema.enum) return (schema.enum as unknown[])[0];
  if (schema.const !== undefined) return schema.const;
  const variants = (schema.anyOf ?? schema.oneOf) as Json[] | undefined;
  if (variants) return exampleFor(variants.find((variant) => variant.type !== 'null') ?? variants[0], depth + 1);
  if (schema.allOf) return Object.assign({}, ...(schema.allOf as Json[]).map((part) => exampleFor(part, depth + 1) as Json));
  const type = Array.isArray(schema.type) ? (schema.type as string[]).find((t) => t !== 'null') : (schema.type as string | undefined);
  switch (type) {
    case 'object': {
      const result: Json = {};
      const properties = (schema.properties ?? {}) as Record<string, Json>;
      for (const name of (schema.required ?? []) as string[]) result[name] = exampleFor(properties[name], depth + 1);
      return result;
    }
    case 'array':
      return [];
    case 'integer':
    case 'number':
      return 1;
    case 'boolean':
      return false;
    case 'string':
      if (schema.format === 'date-time') return '2026-01-01T00:00:00Z';
      if (schema.format === 'uri' || schema.format === 'uri-template') return 'https://github.test/x';
      if (schema.format === 'email') return 'someone@example.com';
      return 'x';
    default:
      return null;
  }
}

export type DispatchBehaviour = 'details' | 'legacy' | 'unauthorized' | 'rate-limited' | 'not-found' | 'unprocessable';

export interface FakeRun {
  id: number;
  inputs: Record<string, string>;
  status: 'queued' | 'in_progress' | 'completed';
  conclusion: string | null;
  displayTitle: string;
  createdAt: string;
}

export interface FakeGithub {
  apiUrl: string;
  runs: Map<number, FakeRun>;
  requests: Array<{ method: string; path: string; body: unknown; status: number }>;
  /** Request and response contract violations against GitHub's OpenAPI description. */
  violations: string[];
  /** What the next dispatches answer, in order; afterwards, 'details'. */
  queueDispatch(...behaviours: DispatchBehaviour[]): void;
  onDispatch(listener: (run: FakeRun) => void): void;
  complete(runId: number, conclusion: string): void;
  close(): Promise<void>;
}

export async function startFakeGithub(options: { owner: string; repo: string; workflow: string; token: string }): Promise<FakeGithub> {
  const api = loadSpec();
  const runs = new Map<number, FakeRun>();
  const requests: FakeGithub['requests'] = [];
  const violations: string[] = [];
  const queued: DispatchBehaviour[] = [];
  const listeners: Array<(run: FakeRun) => void> = [];
  let nextRunId = 9_000_000_001;
  let base = '';

  const basicErrorSchema = () => {
    const cancel = api.paths['/repos/{owner}/{repo}/actions/runs/{run_id}/cancel']!.post!.responses as Record<string, Json>;
    return ((cancel['409']!.content as Json)['application/json'] as Json).schema as object;
  };

  const runJson = (run: FakeRun): Json => {
    const schema = (api.paths['/repos/{owner}/{repo}/actions/runs/{run_id}']!.get!.responses as Json)['200'] as Json;
    const example = exampleFor(((schema.content as Json)['application/json'] as Json).schema as Json) as Json;
    return {
      ...example,
      id: run.id,
      name: 'Backstop backup',
      display_title: run.displayTitle,
      event: 'workflow_dispatch',
      status: run.status,
      conclusion: run.conclusion,
      html_url: `https://github.test/${options.owner}/${options.repo}/actions/runs/${run.id}`,
      url: `${base}/repos/${options.owner}/${options.repo}/actions/runs/${run.id}`,
      created_at: run.createdAt,
      updated_at: run.createdAt,
      path: `.github/workflows/${options.workflow}`,
    };
  };

  const validateResponse = (operation: Operation, status: number, body: unknown) => {
    const responses = api.paths[operation.specPath]![operation.method.toLowerCase()]!.responses as Record<string, Json>;
    const declared = responses[String(status)];
    if (!declared) {
      // Error statuses (400, 401, 403, 404, 422) can come from any endpoint and are not listed
      // per operation: such bodies must be GitHub's documented "Basic Error".
      const basicError = validatorFor(basicErrorSchema());
      if (status < 400 || !basicError(body) || typeof (body as Json)?.message !== 'string') {
        violations.push(`${operation.method} ${operation.specPath}: status ${status} with body ${JSON.stringify(body)} is neither documented nor a Basic Error`);
      }
      return;
    }
    const schema = ((declared.content as Json | undefined)?.['application/json'] as Json | undefined)?.schema as object | undefined;
    if (!schema) {
      if (body !== undefined) violations.push(`${operation.method} ${operation.specPath} ${status}: documented without a body, sent one`);
      return;
    }
    const validate = validatorFor(schema);
    if (!validate(body)) violations.push(`${operation.method} ${operation.specPath} ${status} response: ${ajv.errorsText(validate.errors)}`);
  };

  const validateRequest = (operation: Operation, request: IncomingMessage, url: URL, body: unknown) => {
    const definition = api.paths[operation.specPath]![operation.method.toLowerCase()]! as Json;
    if (request.headers['x-github-api-version'] !== '2022-11-28') violations.push(`${operation.specPath}: X-GitHub-Api-Version missing or wrong`);
    const parameters = ((definition.parameters ?? []) as Json[]).filter((parameter) => parameter.in === 'query');
    for (const [name, value] of url.searchParams) {
      const parameter = parameters.find((candidate) => candidate.name === name);
      if (!parameter) violations.push(`${operation.specPath}: unknown query parameter ${name}`);
      else {
        const schema = parameter.schema as Json;
        // `created` is declared as a date-time, but its description (and GitHub) take the search
        // syntax for date ranges: `>=DATE`, `<DATE`, `DATE..DATE`. Validate the dates inside.
        const dates = name === 'created' ? value.replace(/^(>=|<=|>|<)/, '').split('..') : [value];
        if (dates.length > 1 || dates[0] !== value) {
          for (const date of dates) {
            if (!validatorFor(schema)(date)) violations.push(`${operation.specPath}: query ${name}: "${date}" is not a date-time`);
          }
          continue;
        }
        const typed = schema.type === 'integer' ? Number(value) : value;
        const validate = validatorFor(schema);
        if (!validate(typed)) violations.push(`${operation.specPath}: query ${name}: ${ajv.errorsText(validate.errors)}`);
      }
    }
    const requestBody = definition.requestBody as Json | undefined;
    const schema = ((requestBody?.content as Json | undefined)?.['application/json'] as Json | undefined)?.schema as object | undefined;
    if (schema) {
      const validate = validatorFor(schema);
      if (!validate(body)) violations.push(`${operation.specPath} request: ${ajv.errorsText(validate.errors)}`);
    } else if (body !== undefined) {
      violations.push(`${operation.specPath}: sent a body to an operation that takes none`);
    }
  };

  const server: Server = createServer(async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', base);
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    const operation = OPERATIONS.find((candidate) => candidate.method === request.method && candidate.pattern.test(url.pathname));
    const send = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
      requests.push({ method: request.method ?? '', path: url.pathname + url.search, body, status });
      if (operation) validateResponse(operation, status, payload);
      response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      response.end(payload === undefined ? undefined : JSON.stringify(payload));
    };
    if (!operation) {
      violations.push(`unexpected request ${request.method} ${url.pathname}`);
      return send(404, { message: 'Not Found' });
    }
    validateRequest(operation, request, url, body);
    if (request.headers.authorization !== `Bearer ${options.token}`) return send(401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' });

    const segments = url.pathname.split('/');
    if (operation.specPath.endsWith('/dispatches')) {
      const behaviour = queued.shift() ?? 'details';
      const input = body as { ref: string; inputs?: Record<string, string>; return_run_details?: boolean };
      if (behaviour === 'unauthorized') return send(401, { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' });
      if (behaviour === 'not-found') return send(404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
      if (behaviour === 'unprocessable') return send(422, { message: "Workflow does not have 'workflow_dispatch' trigger", documentation_url: 'https://docs.github.com/rest' });
      if (behaviour === 'rate-limited') {
        return send(403, { message: 'API rate limit exceeded', documentation_url: 'https://docs.github.com/rest' }, { 'retry-after': '1', 'x-ratelimit-remaining': '0' });
      }
      if (behaviour === 'legacy' && input.return_run_details !== undefined) {
        queued.unshift('legacy');
        return send(400, { message: 'Invalid request.\n\n"return_run_details" is not a permitted key.', documentation_url: 'https://docs.github.com/rest' });
      }
      const run: FakeRun = {
        id: nextRunId++,
        inputs: input.inputs ?? {},
        status: 'queued',
        conclusion: null,
        displayTitle: `Backstop backup ${input.inputs?.run_id ?? ''}`,
        createdAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      };
      runs.set(run.id, run);
      setImmediate(() => {
        for (const listener of listeners) listener(run);
      });
      if (behaviour === 'legacy' || !input.return_run_details) return send(204);
      return send(200, {
        workflow_run_id: run.id,
        run_url: `${base}/repos/${options.owner}/${options.repo}/actions/runs/${run.id}`,
        html_url: `https://github.test/${options.owner}/${options.repo}/actions/runs/${run.id}`,
      });
    }
    if (operation.specPath.endsWith('/runs') && request.method === 'GET' && operation.specPath.includes('/workflows/')) {
      const list = [...runs.values()].map(runJson);
      return send(200, { total_count: list.length, workflow_runs: list });
    }
    const runId = Number(segments[6]);
    const run = runs.get(runId);
    if (!run) return send(404, { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' });
    if (operation.specPath.endsWith('/cancel')) {
      if (run.status === 'completed') return send(409, { message: 'Cannot cancel a workflow run that is completed.' });
      run.status = 'completed';
      run.conclusion = 'cancelled';
      return send(202, {});
    }
    return send(200, runJson(run));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    apiUrl: base,
    runs,
    requests,
    violations,
    queueDispatch: (...behaviours) => queued.push(...behaviours),
    onDispatch: (listener) => listeners.push(listener),
    complete(runId, conclusion) {
      const run = runs.get(runId);
      if (!run) throw new Error(`no fake run ${runId}`);
      run.status = 'completed';
      run.conclusion = conclusion;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Backstop's GitHub executor dispatching to a fake GitHub; tests tick it by hand (`tickOnce`). */
export function startTestGithubExecutor(db: Pool, github: FakeGithub, token: string): GithubExecutor {
  return startGithubExecutor({
    db,
    client: githubClient({ apiUrl: github.apiUrl, token, maxRateLimitWaitMs: 5000 }),
    log: pino({ level: 'silent' }),
    // Long enough that a test which leaves a run dispatched on purpose never sees the reaper
    // time it out on a loaded machine.
    startDeadlineMs: 600_000,
    intervalMs: 3_600_000,
  });
}
