/**
 * `npm run build` (and `npm pack`): compiles src/ to dist/ as plain JavaScript, and copies the
 * files that are not TypeScript (SQL migrations) beside it. The published package runs dist/:
 * Node does not strip types from files under node_modules, so `npx backstop` could not run
 * the sources; compiled, a process also loads no TypeScript stripper (about 30 MB less peak
 * RSS for a backup, bench/results/latest-backup.md). A checkout runs src/ directly.
 *
 *   node scripts/build.ts [--out DIR]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function build(outDir = path.join(root, 'dist')): Promise<string> {
  await fs.rm(outDir, { recursive: true, force: true });
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
  return outDir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out');
  const outDir = await build(at > 0 ? path.resolve(process.argv[at + 1]!) : undefined);
  process.stdout.write(`built ${path.relative(process.cwd(), outDir) || '.'}\n`);
}
