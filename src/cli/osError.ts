import { BackstopError, describeError, type ErrorCode } from '../core/errors.ts';

/**
 * Operating-system errors (a path through a file, a read-only disk, a busy port) reach the CLI
 * as bare Node errors, or wrapped as the cause of a BackstopError. Each becomes one line that
 * names the path or address and says what to do, with the exit code of what was being done.
 */
export function describeOsError(error: unknown): BackstopError | null {
  const os = findOsError(error);
  if (!os) return null;
  const advice = adviceFor[os.code as keyof typeof adviceFor];
  // Wrapped (STORE_WRITE_FAILED, …): the wrapper's code and message stand, the advice is added.
  if (error instanceof BackstopError && error.code !== 'INTERNAL') {
    return new BackstopError(error.code, `${error.message.replace(/[.\s]+$/, '')}: ${advice}.`, { cause: error });
  }
  const where = os.path ? ` ${os.path}` : os.address ? ` ${os.address}${os.port !== undefined ? `:${os.port}` : ''}` : '';
  const action = os.syscall ? `${os.syscall}${where}` : where.trim() || 'the operation';
  const code: ErrorCode = os.code === 'EADDRINUSE' || os.code === 'EADDRNOTAVAIL' ? 'INVALID_INPUT' : 'STORE_WRITE_FAILED';
  return new BackstopError(code, `${action} failed: ${advice} (${os.code}).`, { cause: error });
}

const adviceFor = {
  ENOTDIR: 'a part of this path is a file, not a folder; choose a path whose parent folders are folders (e.g. --store /var/backups/app)',
  EISDIR: 'this path is a folder where a file was expected; choose a file path',
  EACCES: 'permission denied; choose a path this user may write (or fix its permissions)',
  EPERM: 'operation not permitted; choose a path this user may write (or fix its permissions)',
  EROFS: 'the file system is read-only; choose a path on a writable disk',
  ENOSPC: 'the disk is full; free space or choose a store on another disk',
  EDQUOT: 'the disk quota is exhausted; free space or choose a store on another disk',
  EMFILE: 'too many open files; raise the limit (ulimit -n) and run the command again',
  EADDRINUSE: 'the address is already in use; stop what listens there or choose another --port (0: any free port)',
  EADDRNOTAVAIL: 'this address is not one of this machine\'s; choose another --host (127.0.0.1, 0.0.0.0)',
  EPIPE: 'the reader of the output went away; run the command again with a reader that reads to the end',
} as const;

interface OsError {
  code: string;
  syscall?: string;
  path?: string;
  address?: string;
  port?: number;
}

function findOsError(error: unknown): OsError | null {
  for (let current = error, depth = 0; current && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code in adviceFor) return current as OsError;
  }
  return null;
}

/** The `{code, message}` of an error as the CLI reports it (an OS error with its advice). */
export function describeCliError(error: unknown): { code: ErrorCode; message: string } {
  return describeError(describeOsError(error) ?? error);
}
