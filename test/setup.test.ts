import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { repoRoot } from './support/cli.ts';

const run = promisify(execFile);

/**
 * scripts/setup.sh away from Debian/Ubuntu: on a machine with no PostgreSQL client, age or
 * zstd, it names the command that installs them there and carries on instead of failing. The
 * machine is simulated by its os-release file and `uname`; the script's PATH holds only what
 * it runs, so the tools it looks for are truly missing (npm is skipped).
 */
describe('scripts/setup.sh on other systems', () => {
  let workDir: string;
  let bin: string;

  before(async () => {
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-setup-'));
    bin = path.join(workDir, 'bin');
    await fs.mkdir(bin);
    for (const tool of ['bash', 'dirname', 'id', 'uname']) {
      const { stdout } = await run('bash', ['-c', `command -v ${tool}`]);
      await fs.symlink(stdout.trim(), path.join(bin, tool));
    }
  });
  after(async () => {
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  });

  async function setup(osRelease: string | null, kernel?: string): Promise<{ code: number; output: string }> {
    const release = path.join(workDir, `os-release-${Math.random().toString(36).slice(2)}`);
    if (osRelease !== null) await fs.writeFile(release, osRelease);
    let searchPath = bin;
    if (kernel) {
      searchPath = path.join(workDir, `uname-${kernel}`);
      await fs.mkdir(searchPath, { recursive: true });
      await fs.writeFile(path.join(searchPath, 'uname'), `#!${path.join(bin, 'bash')}\necho ${kernel}\n`, { mode: 0o755 });
      searchPath = `${searchPath}:${bin}`;
    }
    const env = { PATH: searchPath, BACKSTOP_SETUP_OS_RELEASE: release, BACKSTOP_SETUP_SKIP_NPM: '1', HOME: workDir };
    return run(path.join(bin, 'bash'), [path.join(repoRoot, 'scripts', 'setup.sh')], { env }).then(
      ({ stdout, stderr }) => ({ code: 0, output: stdout + stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, output: error.stdout + error.stderr }),
    );
  }

  it('Fedora and RHEL: the dnf command', async () => {
    for (const release of ['ID=fedora\nVERSION_ID=41\n', 'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n']) {
      const { code, output } = await setup(release);
      assert.equal(code, 0, output);
      assert.match(output, /^ {2}sudo dnf install -y postgresql age zstd\b/m);
      assert.match(output, /EPEL/);
    }
  });

  it('Alpine: the apk command', async () => {
    const { code, output } = await setup('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.21.0\n');
    assert.equal(code, 0, output);
    assert.match(output, /^ {2}apk add postgresql-client age zstd\b/m);
  });

  it('macOS: the Homebrew commands, with libpq linked onto PATH', async () => {
    const { code, output } = await setup(null, 'Darwin');
    assert.equal(code, 0, output);
    assert.match(output, /^ {2}brew install libpq age zstd\b/m);
    assert.match(output, /^ {2}brew link --force libpq$/m);
  });

  it('anything else: what to install, by what it is', async () => {
    const { code, output } = await setup('ID=plan9\n');
    assert.equal(code, 0, output);
    assert.match(output, /Install what is missing with your system's packages: postgresql-client age zstd\b/);
  });
});
