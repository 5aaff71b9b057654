/**
 * `npm run build` (and `npm pack`): compiles src/ to dist/ as plain JavaScript, copies the
 * files that are not TypeScript (SQL migrations) beside it, and records the commit it was built
 * from in dist/commit (what `backstop init github` pins the workflow's action to). The published
 * package runs dist/: Node does not strip types from files under node_modules, so an installed
 * package could not run the sources; compiled, a process also loads no TypeScript stripper
 * (about 30 MB less peak RSS for a backup, bench/results/latest-backup.md). A checkout runs
 * src/ directly. dist/action/ and dist/executable/ are the committed bundles
 * (scripts/bundle.ts): a build leaves them alone, and the package does not ship them.
 *
 *   node scripts/build.ts [--out DIR]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundles } from './bundle.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** dist/'s folders that hold committed bundles rather than this build's output. */
const committed = new Set(bundles.map(({ output }) => output.split('/')[1]!));

export async function build(outDir = path.join(root, 'dist')): Promise<string> {
  for (const entry of await fs.readdir(outDir).catch(() => [])) {
    if (!committed.has(entry)) await fs.rm(path.join(outDir, entry), { recursive: true, force: true });
  }
  const tsc = path.join(root, 'node_modules', '.bin', 'tsc');
  const compiled = spawnSync(tsc, ['-p', path.join(root, 'tsconfig.build.json'), '--outDir', outDir], { stdio: 'inherit' });
  if (compiled.status !== 0) throw new Error(`tsc exited with ${compiled.status ?? compiled.signal}: the build failed, see above.`);
  const sourceRoot = path.join(root, 'src');
  for (const entry of await fs.readdir(sourceRoot, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || entry.name.endsWith('.ts')) continue;
    const from = path.join(entry.parentPath, entry.name);
    const to = path.join(outDir, path.relative(sourceRoot, from));
    await fs.mkdir(path.dirname(to), { recursive: true });
    await fs.copyFile(from, to);
  }
  const head = spawnSync('git', ['--git-dir', path.join(root, '.git'), 'rev-parse', 'HEAD'], { encoding: 'utf8' });
  if (head.status === 0) await fs.writeFile(path.join(outDir, 'commit'), head.stdout);
  return outDir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out');
  const outDir = await build(at > 0 ? path.resolve(process.argv[at + 1]!) : undefined);
  process.stdout.write(`built ${path.relative(process.cwd(), outDir) || '.'}\n`);
}
