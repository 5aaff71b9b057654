import { z } from 'zod';
import { TARGET_NAME } from '../db/targets.ts';

/** A target's name in a request: what `backstop target add` and POST /api/v1/targets accept. */
export const targetName = z
  .string()
  .regex(TARGET_NAME, 'is not a target name: lowercase letters, digits, ".", "_" and "-", 1 to 63, starting with a letter or digit');
