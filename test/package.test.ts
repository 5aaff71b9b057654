import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from './support/cli.ts';
import { createSampleDatabase, createTestCatalog, createTestDatabase, tableFingerprints, type TestCatalog, type TestDatabase } from './support/pg.ts';

const run = promisify(execFile);

/**
 * The package as npm publishes it: `npm pack` (which builds dist/), unpacked under a
 * node_modules folder the way `npx backstop` installs it, where Node strips no types. It must
 * carry no sources and still back up and restore.
 */
describe('the published package', () => {
  let workDir: string;
  let installed: string;
  let catalog: TestCatalog;
  let source: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-package-'));
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', workDir], { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024 });
    const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string }>;
    installed = path.join(workDir, 'app', 'node_modules', 'backstop');
    await fs.mkdir(installed, { recursive: true });
    await run('tar', ['-xzf', path.join(workDir, packed!.filename), '-C', installed, '--strip-components=1']);
    // Its dependencies, as npm would have installed them.
    await fs.symlink(path.join(repoRoot, 'node_modules'), path.join(installed, 'node_modules'));
    catalog = await createTestCatalog();
    source = await createSampleDatabase(500);
    env = { ...process.env, BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${path.join(workDir, 'store')}`, BACKSTOP_LOG_LEVEL: 'warn' } as Record<string, string>;
  });
  after(async () => {
    await source?.drop();
    await catalog?.close();
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  });

  const backstop = (args: string[]) =>
    run(process.execPath, [path.join(installed, 'bin', 'backstop.js'), ...args], { cwd: path.join(workDir, 'app'), env, maxBuffer: 16 * 1024 * 1024 });

  it('ships compiled JavaScript, its SQL migrations and templates, and no TypeScript sources', async () => {
    const entries = await fs.readdir(installed, { recursive: true });
    const files = entries.filter((entry) => !entry.startsWith('node_modules'));
    assert.ok(files.includes(path.join('dist', 'cli', 'main.js')));
    assert.ok(files.includes(path.join('dist', 'db', 'migrations', '001_catalog.sql')));
    assert.ok(files.includes(path.join('templates', 'github', 'backup.yml')));
    assert.deepEqual(
      files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts')),
      [],
    );
    const { stdout } = await backstop(['--version']);
    const { version } = JSON.parse(await fs.readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(stdout.trim(), version);
  });

  it('backs up and restores from node_modules', async () => {
    const backup = await backstop(['backup', source.url, '--target', 'packaged', '--json']);
    const result = JSON.parse(backup.stdout) as { id: string; status: string };
    assert.equal(result.status, 'succeeded');
    const target = await createTestDatabase('packaged_restore');
    try {
      await backstop(['restore', result.id, '--to', target.url]);
      assert.deepEqual(await tableFingerprints(target.url), await tableFingerprints(source.url));
    } finally {
      await target.drop();
    }
  });
});
