import { z } from 'zod';
import { TOKEN_NAME } from '../db/tokens.ts';

/** What a token is for, e.g. "dashboard" or "ci": shown in lists and in the events it causes. */
export const tokenName = z
  .string()
  .regex(TOKEN_NAME, 'must be 1 to 100 letters, digits, spaces, ".", "_", "@", ":" or "-", starting with a letter or digit')
  .describe('What the token is for, e.g. "dashboard" or "ci".');
