import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repositoryRoot, runBiomeCheck } from '../scripts/lint.ts';

/**
 * The lint step of `npm test` and CI: the real Biome binary with the repository's biome.jsonc.
 *
 * The seeded file lives in a temporary folder, never in the tree, so that a run of the suite
 * at the same time does not lint it. Biome ignores a file outside the folder of the config it
 * was given ("No files were processed", exit 1, which must not pass for a finding), so the
 * folder holds a biome.json that only extends the repository's config: the same includes,
 * rules and formatter settings, resolved from the temporary folder.
 */
describe('lint step', () => {
  let folder: string;

  before(async () => {
    folder = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-lint-'));
    await fs.writeFile(path.join(folder, 'biome.json'), JSON.stringify({ extends: [path.join(repositoryRoot, 'biome.jsonc')] }));
    await fs.mkdir(path.join(folder, 'src'));
  });

  after(async () => {
    await fs.rm(folder, { recursive: true, force: true });
  });

  const check = async (name: string, source: string) => {
    await fs.writeFile(path.join(folder, 'src', name), source);
    const result = runBiomeCheck([path.join('src', name)], { configPath: folder, cwd: folder, stdio: 'pipe' });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  };

  it('fails on a seeded lint violation and a formatting violation, naming both', async () => {
    const seeded = await check('seeded.ts', 'export function same(a: number, b: string) {\n  return a == Number(b)\n}\n');
    assert.notEqual(seeded.status, 0, seeded.output);
    assert.match(seeded.output, /src\/seeded\.ts:2:\d+ lint\/suspicious\/noDoubleEquals/);
    assert.match(seeded.output, /src\/seeded\.ts format/);
    assert.match(seeded.output, /Checked 1 file/);
  });

  it('passes the same file once it is fixed, so the failure above came from the violations', async () => {
    const fixed = await check('fixed.ts', 'export function same(a: number, b: string) {\n  return a === Number(b);\n}\n');
    assert.equal(fixed.status, 0, fixed.output);
    assert.match(fixed.output, /Checked 1 file/);
  });

  it('passes on the tree', () => {
    const tree = runBiomeCheck([], { stdio: 'pipe' });
    assert.equal(tree.status, 0, `${tree.stdout}${tree.stderr}`);
    assert.match(`${tree.stdout}${tree.stderr}`, /Checked \d{3,} files/);
  });
});
