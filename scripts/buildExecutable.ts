/**
 * `npm run executable`: the single-file executable for Linux x64, from the committed bundle
 * dist/executable/backstop.cjs (scripts/bundle.ts) and this Node.js 24 binary (the `node` dev
 * dependency's, which npm scripts run): Node's single executable applications
 * (`--experimental-sea-config` makes the blob, postject injects it into a copy of the binary).
 * A server or CI machine without Node.js 24 — or without any Node.js — runs it as it is.
 *
 * The blob carries the bundle twice: once as the script, once as an asset that the run's
 * heartbeat thread evaluates (a thread cannot start from the executable's own script). It also
 * carries the commit it was built from, which `backstop init github` pins the workflow to.
 *
 *   node scripts/buildExecutable.ts [--out FILE]     default: dist/backstop-linux-x64
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'postject';
import { COMMIT_FILE } from '../src/cli/actionReference.ts';
import { EXECUTABLE_SCRIPT_ASSET } from '../src/core/bundledFiles.ts';
import { bundles } from './bundle.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// The fuse Node.js checks at start-up for an injected blob (Node's documentation).
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

export async function buildExecutable(output = path.join(root, 'dist', 'backstop-linux-x64')): Promise<string> {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`the executable is built for Linux x64, not ${process.platform}-${process.arch}`);
  const script = path.join(root, bundles.find((bundle) => bundle.output.startsWith('dist/executable/'))!.output);
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-sea-'));
  try {
    const commit = path.join(work, COMMIT_FILE);
    const head = spawnSync('git', ['--git-dir', path.join(root, '.git'), 'rev-parse', 'HEAD'], { encoding: 'utf8' });
    await fs.writeFile(commit, head.status === 0 ? head.stdout : '');
    const blob = path.join(work, 'backstop.blob');
    const config = path.join(work, 'sea-config.json');
    await fs.writeFile(
      config,
      JSON.stringify({
        main: script,
        output: blob,
        disableExperimentalSEAWarning: true,
        assets: { [EXECUTABLE_SCRIPT_ASSET]: script, [COMMIT_FILE]: commit },
      }),
    );
    // The blob must come from the very binary it is injected into.
    execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: 'pipe' });
    await fs.mkdir(path.dirname(output), { recursive: true });
    await fs.copyFile(process.execPath, output);
    await fs.chmod(output, 0o755);
    await inject(output, 'NODE_SEA_BLOB', await fs.readFile(blob), { sentinelFuse: SEA_FUSE });
    return output;
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out');
  const output = await buildExecutable(at > 0 ? path.resolve(process.argv[at + 1]!) : undefined);
  process.stdout.write(`${path.relative(process.cwd(), output)} ${((await fs.stat(output)).size / 1024 / 1024).toFixed(0)} MiB\n`);
}
