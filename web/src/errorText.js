/**
 * A run's error in plain words: what happened and what to do, by stable error code (see
 * src/core/errors.ts). The original message is always shown under it.
 */
const explanations = {
  LEASE_EXPIRED: 'The worker running this stopped reporting (it crashed, was killed, or lost the catalog), so Backstop ended the run. Check the worker, then run it again.',
  DEADLINE_EXCEEDED: 'The run took longer than its hard deadline and was stopped. A larger database may need a longer BACKSTOP_RUN_DEADLINE.',
  START_DEADLINE_EXCEEDED: 'No worker or GitHub job picked the run up in time. Check that a worker is running (or the GitHub workflow starts).',
  CANCELLED: 'Someone cancelled the run; nothing was kept.',
  DATABASE_UNREACHABLE: 'Backstop could not connect to the database. Check its host, port, user and password in the target.',
  PG_VERSION_MISMATCH: 'The pg_dump installed on the worker is older than the database server. Install the matching postgresql-client.',
  PG_TOOL_NOT_FOUND: 'No pg_dump/pg_restore was found on the worker. Install postgresql-client or set BACKSTOP_PG_BIN.',
  DUMP_FAILED: 'pg_dump stopped with an error; its message is below.',
  RESTORE_FAILED: 'pg_restore stopped with an error; nothing was committed.',
  RESTORE_TARGET_NOT_EMPTY: 'The database to restore into is not empty. Use an empty database, or restore with "clean".',
  RESTORE_ROLE_PRIVILEGED:
    "The database URL connects as a role that can run programs or read files on its server (a superuser, for one), and the backup's own code would run as it. Restore with a role that owns the destination database and nothing more, or accept this role by typing its name.",
  ARTIFACT_CORRUPT: 'A stored file does not match the checksum in its manifest: the backup was damaged or altered.',
  ARTIFACT_REJECTED:
    'The backup reported files that are not the ones this run was told to write (another store or folder, another run, or different sizes or checksums), so Backstop did not record it. Check the runner, then run it again.',
  ARTIFACT_UNSAFE:
    'A file of the backup holds commands that pg_dump never writes (a psql meta-command outside its restrict block), so Backstop refused to run it. Treat the store as tampered with; restore an older backup.',
  VERIFY_MISMATCH: 'The restored copy does not match the backup (row counts or checksums differ).',
  STORE_WRITE_FAILED: 'Writing to the store failed (disk full, permissions or the bucket). Nothing partial was kept.',
  STORE_READ_FAILED: 'Reading from the store failed. Check the store and its credentials.',
  CATALOG_UNAVAILABLE: 'The catalog database was unreachable.',
  DISPATCH_REFUSED: 'GitHub refused to start the workflow. Check the token and the workflow file.',
  EXECUTOR_ENDED: 'The GitHub job ended without reporting a result.',
  GITHUB_UNAVAILABLE: 'GitHub could not be reached.',
  LEASE_LOST: 'The runner lost its claim on the run; a newer attempt or the reaper took over.',
};

export function explainError(error) {
  if (!error) return null;
  return explanations[error.code] ?? 'The run failed; the message below says why.';
}
