// @ts-check
/**
 * Errors in plain words for people using the dashboard: what happened and what to do there,
 * never a command line, flag or API path (those are for the CLI and API clients that get the
 * same answers). By stable error code (src/core/errors.ts); the original message of a run's
 * error is still shown under its explanation.
 */

/** @typedef {import('./types').RunErrorInfo} RunErrorInfo */

/** @type {Record<string, string>} */
const runExplanations = {
  LEASE_EXPIRED: 'The worker running this stopped reporting (it crashed, was killed, or lost the catalog), so Backstop ended the run. Check the worker, then run it again.',
  DEADLINE_EXCEEDED: 'The run took longer than its hard deadline and was stopped. A larger database may need a longer run deadline in the server settings.',
  START_DEADLINE_EXCEEDED: 'No worker or GitHub job picked the run up in time. Check that a worker is running (or that the GitHub workflow starts).',
  CANCELLED: 'Someone cancelled the run; nothing was kept.',
  DATABASE_UNREACHABLE: 'Backstop could not connect to the database. Check its host, port, user and password in the target.',
  PG_VERSION_MISMATCH: "The pg_dump on the worker is older than the database server. The worker needs the PostgreSQL client tools of the server's version.",
  PG_TOOL_NOT_FOUND: 'No pg_dump or pg_restore was found on the worker. The worker needs the PostgreSQL client tools installed.',
  DUMP_FAILED: 'pg_dump stopped with an error; its message is below.',
  RESTORE_FAILED: 'pg_restore stopped with an error; nothing was committed.',
  RESTORE_TARGET_NOT_EMPTY: 'The database to restore into is not empty. Use an empty database, or choose to replace the objects that exist.',
  RESTORE_ROLE_PRIVILEGED:
    "The database URL connects as a role that can run programs or read files on its server (a superuser, for one), and the backup's own code would run as it. Restore with a role that owns the destination database and nothing more, or accept this role by typing its name.",
  IDENTITY_REQUIRED: 'The backup is encrypted, and no age identity that decrypts it was at hand. The server and its workers need the identity of one of its recipients.',
  ARTIFACT_CORRUPT: 'A stored file does not match the checksum in its manifest: the backup was damaged or altered.',
  POINT_NOT_RESTORABLE: 'No base backup and unbroken run of change segments reaches that point. The message says which window is restorable, from when to when.',
  ARTIFACT_REJECTED:
    'The backup reported files that are not the ones this run was told to write (another store or folder, another run, or different sizes or checksums), so Backstop did not record it. Check the runner, then run it again.',
  ARTIFACT_UNSAFE: 'A file of the backup holds commands that pg_dump never writes, so Backstop refused to run it. Treat the store as tampered with; restore an older backup.',
  VERIFY_MISMATCH: 'The restored copy does not match the backup (row counts or checksums differ).',
  STORE_WRITE_FAILED: 'Writing to the store failed (disk full, permissions or the bucket). Nothing partial was kept.',
  STORE_READ_FAILED: 'Reading from the store failed. Check the store and its credentials.',
  CATALOG_UNAVAILABLE: 'The catalog database was unreachable.',
  DISPATCH_REFUSED: 'GitHub refused to start the workflow. Check the token and the workflow file.',
  EXECUTOR_ENDED: 'The GitHub job ended without reporting a result.',
  GITHUB_UNAVAILABLE: 'GitHub could not be reached.',
  LEASE_LOST: 'The runner lost its claim on the run; a newer attempt or the reaper took over.',
};

/**
 * A run's error in plain words.
 * @param {RunErrorInfo | null | undefined} error
 */
export function explainError(error) {
  if (!error) return null;
  return runExplanations[error.code] ?? 'The run failed; the message below says why.';
}

/** API answers whose words are meant for API clients: the dashboard says it its own way. */
/** @type {Record<string, (message: string) => string>} */
const apiExplanations = {
  UNAUTHORIZED: () => 'This API token is unknown or was revoked. Ask an admin for a new one.',
  FORBIDDEN: (message) => (/restore destinations/.test(message) ? message.replace(/\s*\(PATCH [^)]*\)/, '') : "Your token's role does not allow this. Ask an admin."),
  TOO_MANY_STREAMS: () => 'Too many dashboard tabs are open with this token. Close some, then reload.',
  CATALOG_UNAVAILABLE: () => 'The catalog database is unreachable right now; try again shortly.',
  TARGET_BUSY: () => 'A run of this target is queued or in progress; wait for it to end, or cancel it, then try again.',
  RESTORE_ROLE_PRIVILEGED: (message) => {
    const role = /connects as "([^"]+)"/.exec(message)?.[1];
    return `The destination connects as ${role ? `"${role}", ` : ''}a role that can run programs or read files on its server, and the backup's own code would run as it. Restore with a role that owns the destination database and nothing more, or accept ${role ? `"${role}"` : 'it'} by typing its name below.`;
  },
};

/** A sentence that shows a command line, a flag or an API path. */
const CLI_SYNTAX = /`[^`]*(backstop|--|\/api\/)[^`]*`|(^|[\s(])--[a-z]|\bbackstop [a-z]+ |\b(GET|POST|PATCH|DELETE) \/api\/|\/api\/v1\//;

/**
 * A message without its sentences of command lines, flags and API paths; backticks go.
 * @param {string} message
 */
export function withoutCliHints(message) {
  const sentences = message.split(/(?<=[.!?:;])\s+(?=[A-Z("])/);
  const kept = sentences.filter((sentence) => !CLI_SYNTAX.test(sentence));
  const text = kept.length > 0 ? kept.join(' ') : (sentences[0] ?? message).replace(/\s*(with|by passing|pass|use|run)\s+`[^`]*`.*$/i, '.');
  return text.replaceAll('`', '').replace(/[:;]$/, '.').trim();
}

/**
 * An error from the API (or anything thrown) as the dashboard shows it.
 * @param {{ code?: string, message?: string } | Error} error
 */
export function plainMessage(error) {
  const code = 'code' in error && typeof error.code === 'string' ? error.code : '';
  const message = error.message ?? '';
  return apiExplanations[code]?.(message) ?? withoutCliHints(message);
}
