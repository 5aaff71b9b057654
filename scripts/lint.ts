/**
 * The lint step: Biome's check (formatting and lint rules, biome.jsonc) with every warning
 * counted as a failure, so that the tree stays at zero of both. `npm run lint` checks,
 * `npm run format` passes --write (the formatting and the safe fixes), and `npm test` runs the
 * check before any test so that CI enforces it.
 *
 *   node scripts/lint.ts [--write] [PATH...]
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repositoryRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const lintFixAdvice = 'The lint step failed. Run `npm run format` to apply the formatting and the safe fixes, then `npm run lint` to see what is left to fix by hand.\n';
const handFixAdvice = 'What is left has no safe fix: change the code, or where the code is right, put `// biome-ignore lint/GROUP/RULE: why` on the line before it.\n';

export interface BiomeCheckOptions {
  /** The biome.jsonc, or the folder holding it; the repository's by default. */
  configPath?: string;
  cwd?: string;
  /** `pipe` returns the output instead of printing it. */
  stdio?: 'inherit' | 'pipe';
}

export function runBiomeCheck(args: readonly string[], options: BiomeCheckOptions = {}): SpawnSyncReturns<string> {
  // The package's launcher picks the binary of this platform from its optional dependencies.
  const biome = createRequire(import.meta.url).resolve('@biomejs/biome/bin/biome');
  // An explicit --config-path, so that BIOME_CONFIG_PATH or a biome.json above the working
  // folder cannot change which rules the check applies.
  const configPath = options.configPath ?? repositoryRoot;
  return spawnSync(process.execPath, [biome, 'check', '--error-on-warnings', `--config-path=${configPath}`, ...args], {
    cwd: options.cwd ?? repositoryRoot,
    stdio: options.stdio ?? 'inherit',
    encoding: 'utf8',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const result = runBiomeCheck(args);
  if (result.error) throw result.error;
  if (result.status !== 0) process.stderr.write(args.includes('--write') ? handFixAdvice : lintFixAdvice);
  process.exitCode = result.status ?? 1;
}
