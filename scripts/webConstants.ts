/**
 * Writes web/src/serverConstants.js, the dashboard's copy of the server's lists (see
 * src/server/webConstants.ts). `--check` writes nothing and exits 1 when the committed file is
 * out of date.
 *
 *   npm run web:constants [-- --check]
 */
import fs from 'node:fs/promises';
import { buildWebConstants, WEB_CONSTANTS_PATH } from '../src/server/webConstants.ts';

const target = new URL(`../${WEB_CONSTANTS_PATH}`, import.meta.url);
const generated = buildWebConstants();

if (process.argv.includes('--check')) {
  const committed = await fs.readFile(target, 'utf8').catch(() => '');
  if (committed !== generated) {
    process.stderr.write(`${WEB_CONSTANTS_PATH} is out of date: run \`npm run web:constants\`.\n`);
    process.exitCode = 1;
  }
} else {
  await fs.writeFile(target, generated);
  process.stdout.write(`wrote ${WEB_CONSTANTS_PATH}\n`);
}
