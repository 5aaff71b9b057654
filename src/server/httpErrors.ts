import type { ErrorObject } from 'ajv';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { redactText } from '../core/databaseUrl.ts';
import { BackstopError, errorCodes, type ErrorCode, type FieldProblem } from '../core/errors.ts';
import { describeProblems } from '../core/inputProblems.ts';
import { pgErrorCode } from '../core/pgErrors.ts';
import { isConnectionLost } from '../core/pgErrors.ts';
import { partSubject, problemsFromAjv } from './validationProblems.ts';

/**
 * Every error the API sends: `{error: {code, message}}`, the code from src/core/errors.ts;
 * with `field` when one input field is at fault, and `fields` listing every problem of an input
 * that failed validation.
 */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; field?: string; fields?: FieldProblem[] };
}

export interface HttpError {
  status: number;
  body: ErrorBody;
  /** Worth a line in the server log at error level (a bug or an outage, not a client mistake). */
  serverFault: boolean;
}

const statusCodes: Partial<Record<number, ErrorCode>> = {
  400: 'INVALID_INPUT',
  401: 'UNAUTHORIZED',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
};

function body(code: ErrorCode, message: string, problems: { field?: string; fields?: readonly FieldProblem[] } = {}): ErrorBody {
  const field = problems.field ?? problems.fields?.[0]?.field;
  return {
    error: {
      code,
      message,
      ...(field !== undefined ? { field } : {}),
      ...(problems.fields !== undefined ? { fields: problems.fields.map((problem) => ({ field: problem.field, message: redactText(problem.message) })) } : {}),
    },
  };
}

/** Maps anything thrown while handling a request to a status and an error body. */
export function toHttpError(error: unknown, requestId: string): HttpError {
  if (error instanceof BackstopError) {
    // A failure that names an input field (a database that does not answer, a store that takes
    // no write) is the request's value at fault, not the server: 422, whatever the code's
    // status elsewhere.
    const status = error.field !== undefined && errorCodes[error.code].httpStatus >= 500 ? 422 : errorCodes[error.code].httpStatus;
    return { status, body: body(error.code, redactText(error.message), error), serverFault: status >= 500 };
  }
  const fastifyError = error as Partial<FastifyError> & { validation?: ErrorObject[]; validationContext?: string };
  if (fastifyError.validation) {
    const part = fastifyError.validationContext ?? 'body';
    const fields = problemsFromAjv(fastifyError.validation, part);
    return { status: 400, body: body('INVALID_INPUT', redactText(describeProblems(fields, undefined, partSubject(part))), { fields }), serverFault: false };
  }
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = statusCodes[status] ?? 'INVALID_INPUT';
    let message = fastifyError.message ?? 'Invalid request.';
    if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') message = 'Request body is too large (the limit is 256 KiB).';
    if (fastifyError.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') message = 'Unsupported Content-Type: send JSON with `Content-Type: application/json`.';
    if (fastifyError.code === 'FST_ERR_MAX_PARAM_LENGTH') message = 'A path parameter is too long (at most 200 characters).';
    if (fastifyError.code === 'FST_ERR_BAD_URL') message = 'Malformed URL: check its percent-encoding.';
    if (error instanceof SyntaxError) message = `Request body is not valid JSON: ${error.message}`;
    return { status, body: body(code, message), serverFault: false };
  }
  if (isConnectionLost(error)) {
    return {
      status: 503,
      body: body('CATALOG_UNAVAILABLE', 'The catalog database is unreachable; try again shortly. The server log has the details.'),
      serverFault: true,
    };
  }
  const sqlState = pgErrorCode(error);
  if (sqlState && (sqlState.startsWith('22') || sqlState.startsWith('23'))) {
    // Data exceptions and constraint violations: a value the route's validation let through but
    // the catalog refuses. Still the client's input, so a 400 (the details go to the log only).
    return { status: 400, body: body('INVALID_INPUT', 'The catalog refused a value in this request; check it against /api/openapi.json.'), serverFault: true };
  }
  return {
    status: 500,
    body: body('INTERNAL', `Internal error (request ${requestId}); the server log has the details.`),
    serverFault: true,
  };
}

export function sendError(reply: FastifyReply, error: unknown): FastifyReply {
  const mapped = toHttpError(error, reply.request.id);
  if (mapped.serverFault) reply.request.log.error({ err: error, status: mapped.status }, 'request failed');
  if (mapped.status === 401) reply.header('www-authenticate', 'Bearer realm="backstop"');
  return reply.code(mapped.status).type('application/json; charset=utf-8').send(mapped.body);
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error, _request, reply) => sendError(reply, error));
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) =>
    sendError(reply, new BackstopError('NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}. The API is described at /api/openapi.json.`)),
  );
}
