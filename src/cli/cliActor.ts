import os from 'node:os';
import type { AuditActor } from '../core/auditActor.ts';

/**
 * The person at the command line, for the audit trail: the OS user running the command and
 * the host it runs on. The CLI holds the catalog, so this is what the OS says, not a proof.
 */
export function cliActor(): AuditActor {
  let user: string;
  try {
    user = os.userInfo().username;
  } catch {
    // A uid with no passwd entry (some containers): the environment is all there is.
    user = process.env.USER ?? process.env.LOGNAME ?? `uid ${process.getuid?.() ?? 'unknown'}`;
  }
  return { kind: 'cli', name: user, address: os.hostname(), client: 'cli' };
}
