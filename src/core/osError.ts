/**
 * What to do about an operating-system error (a path through a file, a read-only disk, a full
 * disk, a busy port): the advice the CLI prints and the stores put into their messages.
 */
export const osErrorAdvice = {
  ENOENT: 'nothing is there; check the path',
  ENOTDIR: 'a part of this path is a file, not a folder; choose a path whose parents are all folders',
  EISDIR: 'this path is a folder where a file was expected; choose a file path',
  EACCES: 'permission denied; choose a path this user may write (or fix its permissions)',
  EPERM: 'operation not permitted; choose a path this user may write (or fix its permissions)',
  EROFS: 'the file system is read-only; choose a path on a writable disk',
  ENOSPC: 'the disk is full; free space or choose a store on another disk',
  EDQUOT: 'the disk quota is exhausted; free space or choose a store on another disk',
  EMFILE: 'too many open files; raise the limit (ulimit -n) and run the command again',
  EADDRINUSE: 'the address is already in use; stop what listens there or choose another --port (0: any free port)',
  EADDRNOTAVAIL: "this address is not one of this machine's; choose another --host (127.0.0.1, 0.0.0.0)",
  EPIPE: 'the reader of the output went away; run the command again with a reader that reads to the end',
} as const;

export interface OsError {
  code: string;
  syscall?: string;
  path?: string;
  address?: string;
  port?: number;
}

/** The OS error itself, or the first one among its causes. */
export function findOsError(error: unknown): OsError | null {
  for (let current = error, depth = 0; current && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code in osErrorAdvice) return current as OsError;
  }
  return null;
}

/** The advice for an OS error (or one among its causes), or null. */
export function adviceForOsError(error: unknown): string | null {
  const os = findOsError(error);
  return os ? osErrorAdvice[os.code as keyof typeof osErrorAdvice] : null;
}
