import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { buildExecutable } from '../scripts/buildExecutable.ts';
import { repoRoot } from './support/cli.ts';
import { assertBackupRestores, createSampleDatabase, createTestDatabase, type TestDatabase } from './support/pg.ts';

const run = promisify(execFile);

/** Every `node` on a PATH, with its major version. */
async function nodesOn(searchPath: string): Promise<Array<{ file: string; major: number }>> {
  const found: Array<{ file: string; major: number }> = [];
  for (const dir of searchPath.split(':').filter(Boolean)) {
    const file = path.join(dir, 'node');
    const version = await run(file, ['--version']).then(
      ({ stdout }) => stdout.trim(),
      () => null,
    );
    if (version) found.push({ file, major: Number(/^v(\d+)/.exec(version)?.[1]) });
  }
  return found;
}

/**
 * The single-file executable for Linux x64 (scripts/buildExecutable.ts, from the committed
 * bundle), on a machine whose only Node.js is older than 24: its PATH holds the system's tools
 * and nothing of this checkout. The catalog is a new, empty database on the test server, so
 * the migrations it applies come from the executable itself.
 */
describe('the single executable, with no Node.js 24 on PATH', { timeout: 600_000 }, () => {
  let workDir: string;
  let executable: string;
  let catalog: TestDatabase;
  let source: TestDatabase;
  let env: Record<string, string>;
  const systemPath = '/usr/local/bin:/usr/bin:/bin';

  before(async () => {
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-executable-'));
    executable = await buildExecutable(path.join(workDir, 'backstop'));
    catalog = await createTestDatabase('executable_catalog');
    source = await createSampleDatabase(500);
    env = { PATH: systemPath, HOME: workDir, BACKSTOP_DATABASE_URL: catalog.url, BACKSTOP_STORE: `file://${path.join(workDir, 'store')}`, BACKSTOP_LOG_LEVEL: 'warn' };
  });
  after(async () => {
    await source?.drop();
    await catalog?.drop();
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  });

  const backstop = (args: string[]) => run(executable, args, { cwd: workDir, env, maxBuffer: 16 * 1024 * 1024 });

  it('has no Node.js 24 to lean on: every node on its PATH is older', async () => {
    for (const node of await nodesOn(systemPath)) assert.ok(node.major < 24, `${node.file} is Node.js ${node.major}`);
  });

  it('./backstop --version', async () => {
    const { version } = JSON.parse(await fs.readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal((await backstop(['--version'])).stdout.trim(), version);
  });

  it('backs up into a new catalog it migrates itself, and restores', async () => {
    await assertBackupRestores(backstop, source, 'executable');
  });

  it('pins `init github` to the commit it was built from, and says what to set without a catalog URL', async () => {
    const repo = path.join(workDir, 'repo');
    // `init github` writes into an existing repository; it refuses to invent the folder.
    await fs.mkdir(repo);
    await backstop(['init', 'github', '--dir', repo]);
    const head = (await run('git', ['--git-dir', path.join(repoRoot, '.git'), 'rev-parse', 'HEAD'])).stdout.trim();
    assert.match(await fs.readFile(path.join(repo, '.github', 'workflows', 'backstop-backup.yml'), 'utf8'), new RegExp(`uses: backstop-pg/backstop@${head}\\n`));
    const { BACKSTOP_DATABASE_URL: _catalog, ...withoutCatalog } = env;
    const refused = await run(executable, ['runs'], { cwd: workDir, env: withoutCatalog }).catch((error: { code: number; stderr: string }) => error);
    assert.equal((refused as { code: number }).code, 7);
    assert.match((refused as { stderr: string }).stderr, /^backstop: The single executable has no embedded PostgreSQL: set BACKSTOP_DATABASE_URL/);
  });
});

describe("bin/backstop.js on the machine's own, older Node.js", () => {
  it('prints the one-line fix and exits 2, without a stack trace', async (t) => {
    // Outside npm scripts: PATH without node_modules/.bin, where the `node` dev dependency is.
    const outside = (process.env.PATH ?? '')
      .split(':')
      .filter((dir) => !dir.includes(`${path.sep}node_modules${path.sep}`))
      .join(':');
    const old = (await nodesOn(`${outside}:/usr/bin:/usr/local/bin`)).find((node) => node.major < 24);
    if (!old) {
      t.skip('no Node.js older than 24 on this machine');
      return;
    }
    const result = await run(old.file, [path.join(repoRoot, 'bin', 'backstop.js'), 'backup', 'postgres://x@127.0.0.1/x'], { cwd: os.tmpdir() }).then(
      () => null,
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    assert.ok(result, 'it failed');
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    const lines = result.stderr.split('\n').filter(Boolean);
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0]!, new RegExp(`^Backstop needs Node\\.js 24 or newer; you have ${old.major}\\.\\d+\\.\\d+\\. Install Node\\.js 24`));
    t.diagnostic(`${old.file}: ${lines[0]}`);
  });
});
