import pino, { type Logger } from 'pino';

/**
 * JSON logs on stderr, written synchronously so nothing is lost when the process exits.
 * Redaction is a second line of defence: secrets are kept out of log calls in the first place.
 */
export function createLogger(level: string): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: {
        paths: ['databaseUrl', '*.databaseUrl', 'password', '*.password', 'token', '*.token', 'identity', '*.identity'],
        censor: '*****',
      },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}
