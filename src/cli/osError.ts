import { BackstopError, describeError, type ErrorCode } from '../core/errors.ts';
import { findOsError, osErrorAdvice } from '../core/osError.ts';

/**
 * Operating-system errors (a path through a file, a read-only disk, a busy port) reach the CLI
 * as bare Node errors, or wrapped as the cause of a BackstopError. Each becomes one line that
 * names the path or address and says what to do, with the exit code of what was being done.
 */
export function describeOsError(error: unknown): BackstopError | null {
  const os = findOsError(error);
  if (!os) return null;
  const advice = osErrorAdvice[os.code as keyof typeof osErrorAdvice];
  // Wrapped (STORE_WRITE_FAILED, …): the wrapper's code and message stand, with the advice.
  if (error instanceof BackstopError && error.code !== 'INTERNAL') {
    if (error.message.includes(advice)) return error;
    return new BackstopError(error.code, `${error.message.replace(/[.\s]+$/, '')}: ${advice}.`, { cause: error });
  }
  const where = os.path ? ` ${os.path}` : os.address ? ` ${os.address}${os.port !== undefined ? `:${os.port}` : ''}` : '';
  const action = os.syscall ? `${os.syscall}${where}` : where.trim() || 'the operation';
  // A busy address or a path with nothing there was given by the user; anything else is the disk's.
  const code: ErrorCode = os.code === 'EADDRINUSE' || os.code === 'EADDRNOTAVAIL' || os.code === 'ENOENT' ? 'INVALID_INPUT' : 'STORE_WRITE_FAILED';
  return new BackstopError(code, `${action} failed: ${advice} (${os.code}).`, { cause: error });
}

/** The `{code, message}` of an error as the CLI reports it (an OS error with its advice). */
export function describeCliError(error: unknown): { code: ErrorCode; message: string } {
  return describeError(describeOsError(error) ?? error);
}
