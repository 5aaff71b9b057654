/**
 * Every failure Backstop reports has a stable code. The CLI maps codes to exit codes, the
 * server to HTTP statuses, the runner writes them to the run. Messages say what to do next.
 */
export const errorCodes = {
  INVALID_INPUT: { exitCode: 2, httpStatus: 400 },
  CONFIG_INVALID: { exitCode: 2, httpStatus: 500 },
  RUN_NOT_FOUND: { exitCode: 4, httpStatus: 404 },
  TARGET_NOT_FOUND: { exitCode: 4, httpStatus: 404 },
  TARGET_EXISTS: { exitCode: 5, httpStatus: 409 },
  CHANNEL_NOT_FOUND: { exitCode: 4, httpStatus: 404 },
  CHANNEL_EXISTS: { exitCode: 5, httpStatus: 409 },
  // A shared notification channel that targets still use: removing it would silence them.
  CHANNEL_IN_USE: { exitCode: 5, httpStatus: 409 },
  RUN_NOT_CLAIMABLE: { exitCode: 5, httpStatus: 409 },
  RUN_ALREADY_TERMINAL: { exitCode: 5, httpStatus: 409 },
  LEASE_LOST: { exitCode: 6, httpStatus: 409 },
  CATALOG_UNAVAILABLE: { exitCode: 7, httpStatus: 503 },
  DATABASE_UNREACHABLE: { exitCode: 8, httpStatus: 502 },
  PG_TOOL_NOT_FOUND: { exitCode: 9, httpStatus: 500 },
  PG_VERSION_MISMATCH: { exitCode: 9, httpStatus: 500 },
  DUMP_FAILED: { exitCode: 10, httpStatus: 500 },
  RESTORE_FAILED: { exitCode: 10, httpStatus: 500 },
  RESTORE_TARGET_NOT_EMPTY: { exitCode: 5, httpStatus: 409 },
  // An API restore whose destination role could run programs or read files on its server
  // (superuser, CREATEROLE, server-access roles), not accepted by name.
  RESTORE_ROLE_PRIVILEGED: { exitCode: 2, httpStatus: 403 },
  ARTIFACT_CORRUPT: { exitCode: 11, httpStatus: 500 },
  // A point-in-time restore to a point no base backup and unbroken run of change segments
  // reaches (before the window, after its end, or in a gap): the message prints the window.
  POINT_NOT_RESTORABLE: { exitCode: 4, httpStatus: 409 },
  // An artifact that is not the one the run was told to write (another store, another prefix,
  // another run's manifest, files that differ from what was reported): refused, never recorded.
  ARTIFACT_REJECTED: { exitCode: 11, httpStatus: 422 },
  // A plain SQL file that is not what pg_dump writes (a meta-command outside its \restrict block).
  ARTIFACT_UNSAFE: { exitCode: 11, httpStatus: 422 },
  VERIFY_MISMATCH: { exitCode: 11, httpStatus: 500 },
  // An encrypted backup and no age identity that decrypts it: neither given with the request nor
  // held by the server (BACKSTOP_IDENTITY_FILE). Refused before anything starts.
  IDENTITY_REQUIRED: { exitCode: 2, httpStatus: 409 },
  STORE_WRITE_FAILED: { exitCode: 12, httpStatus: 502 },
  STORE_READ_FAILED: { exitCode: 12, httpStatus: 502 },
  CANCELLED: { exitCode: 130, httpStatus: 409 },
  DEADLINE_EXCEEDED: { exitCode: 124, httpStatus: 504 },
  LEASE_EXPIRED: { exitCode: 124, httpStatus: 504 },
  START_DEADLINE_EXCEEDED: { exitCode: 124, httpStatus: 504 },
  // Raised by the HTTP API (src/server); the CLI never sees them but every code has an exit code.
  UNAUTHORIZED: { exitCode: 2, httpStatus: 401 },
  FORBIDDEN: { exitCode: 2, httpStatus: 403 },
  NOT_FOUND: { exitCode: 4, httpStatus: 404 },
  TOKEN_NOT_FOUND: { exitCode: 4, httpStatus: 404 },
  TARGET_BUSY: { exitCode: 5, httpStatus: 409 },
  TOO_MANY_STREAMS: { exitCode: 5, httpStatus: 429 },
  PAYLOAD_TOO_LARGE: { exitCode: 2, httpStatus: 413 },
  UNSUPPORTED_MEDIA_TYPE: { exitCode: 2, httpStatus: 415 },
  DISPATCH_REFUSED: { exitCode: 13, httpStatus: 502 },
  EXECUTOR_ENDED: { exitCode: 13, httpStatus: 502 },
  GITHUB_UNAVAILABLE: { exitCode: 13, httpStatus: 502 },
  // Dashboard sign-in with OpenID Connect: the provider refused a sign-in or no longer accepts
  // one (sign in again), or could not be asked at all (the request is refused, never let through).
  SIGN_IN_FAILED: { exitCode: 2, httpStatus: 401 },
  IDENTITY_PROVIDER_UNAVAILABLE: { exitCode: 13, httpStatus: 502 },
  // A source that cannot be a continuous target as it is (wal_level, replication rights, a
  // pooler, no free slot, the server profile): refused before anything is created, the fix named.
  CONTINUOUS_REFUSED: { exitCode: 2, httpStatus: 422 },
  INTERNAL: { exitCode: 1, httpStatus: 500 },
} as const satisfies Record<string, { exitCode: number; httpStatus: number }>;

export type ErrorCode = keyof typeof errorCodes;

/**
 * One problem with one input field. `field` is the path of the field in the input object
 * (`databaseUrl`, `options.encryptTo.0`): the API names it as is, the CLI as its flag.
 */
export interface FieldProblem {
  field: string;
  message: string;
}

export class BackstopError extends Error {
  readonly code: ErrorCode;
  /** The input field at fault, when one is (the first of `fields` when there are several). */
  readonly field?: string;
  /** Every problem with the input, each with its field (input validation reports them all at once). */
  readonly fields?: readonly FieldProblem[];
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; field?: string; fields?: readonly FieldProblem[] }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BackstopError';
    this.code = code;
    const field = options?.field ?? options?.fields?.[0]?.field;
    if (field !== undefined) this.field = field;
    if (options?.fields !== undefined) this.fields = options.fields;
  }
}

/** The same error, now naming the input field it is about (a check that failed on that field's value). */
export function forField(error: BackstopError, field: string): BackstopError {
  return new BackstopError(error.code, error.message, { cause: error, field });
}

export function isBackstopError(error: unknown, code?: ErrorCode): error is BackstopError {
  return error instanceof BackstopError && (code === undefined || error.code === code);
}

/** The `{code, message}` pair stored on a run and printed by `--json`. */
export function describeError(error: unknown): { code: ErrorCode; message: string } {
  if (error instanceof BackstopError) return { code: error.code, message: error.message };
  const message = error instanceof Error ? error.message : String(error);
  return { code: 'INTERNAL', message };
}
