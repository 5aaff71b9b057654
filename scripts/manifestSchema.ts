/**
 * Writes schemas/manifest-v1.json from the zod schema in src/core/manifest.ts, so the artifact
 * format is readable without Backstop. `npm run schema` regenerates it; a test fails when the
 * committed file and the code disagree.
 */
import fs from 'node:fs/promises';
import { manifestJsonSchema } from '../src/core/manifestJsonSchema.ts';

await fs.writeFile(new URL('../schemas/manifest-v1.json', import.meta.url), `${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
