import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { describe, it } from 'node:test';
import { buildWebConstants, WEB_CONSTANTS_PATH } from '../src/server/webConstants.ts';
import { errorCodes } from '../src/core/errors.ts';
import { runStatuses } from '../src/core/runState.ts';

/** The dashboard's copy of the server's lists is the server's: regenerated, it is the committed file. */
describe('web/src/serverConstants.js', () => {
  it('is exactly what src/server/webConstants.ts generates (else: npm run web:constants)', async () => {
    const committed = await fs.readFile(new URL(`../${WEB_CONSTANTS_PATH}`, import.meta.url), 'utf8');
    assert.equal(committed, buildWebConstants(), `${WEB_CONSTANTS_PATH} is stale: run \`npm run web:constants\` and commit it.`);
  });

  it('holds the lists the browser uses, as the server has them', async () => {
    const module = await import(new URL(`../${WEB_CONSTANTS_PATH}`, import.meta.url).href);
    assert.deepEqual(module.runStatuses, runStatuses);
    assert.deepEqual(module.errorCodes, Object.keys(errorCodes));
    assert.deepEqual(module.roleRank, { viewer: 0, operator: 1, admin: 2 });
  });
});
