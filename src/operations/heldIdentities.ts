import fs from 'node:fs/promises';
import type { HeldIdentities } from '../core/actions.ts';
import { describeError } from '../core/errors.ts';
import { parseIdentities, type AgeIdentity } from '../pipeline/age.ts';

/**
 * The age identities this server holds: the BACKSTOP_IDENTITY_FILE of its configuration,
 * which API restores decrypt with and which stands for its workers' (drills run there, with
 * the same setting). Read again when the file changes; a file that cannot be read or parsed
 * counts as no identity, with the reason (never the key).
 */
export interface ServerIdentities extends HeldIdentities {
  identities: AgeIdentity[];
}

let cached: { key: string; value: ServerIdentities } | null = null;

export async function readServerIdentities(identityFile: string | undefined): Promise<ServerIdentities> {
  if (!identityFile) return { identities: [], recipients: [], problem: null };
  let key: string;
  try {
    const stat = await fs.stat(identityFile);
    key = `${identityFile}\0${stat.mtimeMs}\0${stat.size}`;
  } catch (error) {
    return { identities: [], recipients: [], problem: `its identity file cannot be read: ${(error as NodeJS.ErrnoException).code ?? describeError(error).message}` };
  }
  if (cached?.key === key) return cached.value;
  let value: ServerIdentities;
  try {
    const identities = parseIdentities(await fs.readFile(identityFile, 'utf8'));
    value = { identities, recipients: identities.map((identity) => identity.recipient), problem: null };
  } catch {
    // The parser's message tells a person at a shell what to run; this one is read in the dashboard too.
    value = { identities: [], recipients: [], problem: 'its identity file holds no usable age identity (AGE-SECRET-KEY-1… lines)' };
  }
  cached = { key, value };
  return value;
}
