import pino, { type DestinationStream, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';

/** `json`: one JSON object per line, for whatever collects logs; `pretty`: lines for a person. */
export type LogFormat = 'json' | 'pretty';

/**
 * BACKSTOP_LOG_FORMAT decides when set; otherwise a person is assumed where stderr is a
 * terminal, and a collector (a pipe, a file, systemd, a CI log) everywhere else.
 */
export function chooseLogFormat(setting: LogFormat | undefined, stderrIsTerminal: boolean): LogFormat {
  return setting ?? (stderrIsTerminal ? 'pretty' : 'json');
}

/**
 * Logs on stderr, written synchronously so nothing is lost when the process exits: JSON lines,
 * or on a terminal human lines (time, level, message, key fields) drawn by pino-pretty from the
 * same JSON, so both carry the same fields. Redaction is a second line of defence: secrets are
 * kept out of log calls in the first place. A one-shot command logs errors as their type, code
 * and message, the stack trace only at debug level (an operator's terminal is no place for
 * one: `prune --dry-run` printed them before its report); a worker or server, whose logs are
 * collected, keeps them (`errorStacks`).
 */
export function createLogger(level: string, options: { errorStacks?: boolean; format?: LogFormat } = {}): Logger {
  const destination = pino.destination({ fd: 2, sync: true });
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
    options.format === 'pretty' ? prettyLines(destination, process.stderr.hasColors?.() === true) : destination,
  );
}

/**
 * pino-pretty's formatter on each JSON line, then the same synchronous write: its stream form
 * would hand lines to a transform stream, and the last ones before an exit could be lost.
 */
function prettyLines(destination: DestinationStream, colorize: boolean): DestinationStream {
  const format = prettyFactory({
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
    singleLine: true,
    customPrettifiers: { err: describeError, error: describeError },
  });
  return { write: (line: string) => destination.write(format(line)) };
}

/** An error field as one line (`Type [CODE]: message`), its stack frames below when it has them. */
function describeError(value: unknown): string {
  if (value === null || typeof value !== 'object') return String(value);
  const { type, code, message, stack } = value as { type?: string; code?: string; message?: string; stack?: string };
  const frames =
    typeof stack === 'string'
      ? stack
          .split('\n')
          .filter((line) => /^\s+at /.test(line))
          .map((line) => `  ${line.trim()}`)
      : [];
  const line = `${type ?? 'Error'}${code ? ` [${code}]` : ''}: ${message ?? JSON.stringify(value)}`;
  // pino-pretty strips control characters from messages but not from what a prettifier returns:
  // an error's message may quote a tool's output, and a terminal would obey its escapes.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removes control characters (terminal escapes) from log text on purpose
  return [line, ...frames].join('\n').replace(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/g, '');
}

function errorWithoutStack(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const { stack: _stack, ...rest } = pino.stdSerializers.err(error);
  return rest;
}
