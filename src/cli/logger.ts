import pino, { type Logger } from 'pino';

/**
 * JSON logs on stderr, written synchronously so nothing is lost when the process exits.
 * Redaction is a second line of defence: secrets are kept out of log calls in the first place.
 * A one-shot command logs errors as their type, code and message, the stack trace only at debug
 * level (an operator's terminal is no place for one: `prune --dry-run` printed them before its
 * report); a worker or server, whose logs are collected, keeps them (`errorStacks`).
 */
export function createLogger(level: string, options: { errorStacks?: boolean } = {}): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      serializers: { err: options.errorStacks || level === 'debug' || level === 'trace' ? pino.stdSerializers.err : errorWithoutStack },
      redact: {
        paths: ['databaseUrl', '*.databaseUrl', 'password', '*.password', 'token', '*.token', 'identity', '*.identity'],
        censor: '*****',
      },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}

function errorWithoutStack(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const { stack: _stack, ...rest } = pino.stdSerializers.err(error);
  return rest;
}
