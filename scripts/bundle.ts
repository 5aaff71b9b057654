/**
 * `npm run bundle`: the two bundles committed to the repository, each one self-contained
 * CommonJS script that needs nothing but Node.js 24 (no node_modules, no files beside it):
 *
 *   dist/action/index.cjs          the GitHub Action (action.yml), run by the runner's Node 24
 *   dist/executable/backstop.cjs   the whole CLI: the single executable's script
 *                                  (scripts/buildExecutable.ts)
 *
 * Deterministic: the same sources and dependencies give the same bytes, so a test rebuilds
 * them and fails when the committed ones are stale (`--check` does the same).
 *
 *   node scripts/bundle.ts [--out DIR] [--check]
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const bundles = [
  { entry: 'src/action/index.ts', output: 'dist/action/index.cjs' },
  { entry: 'src/cli/executable.ts', output: 'dist/executable/backstop.cjs' },
] as const;

/**
 * What the bundled code would otherwise read beside itself (src/core/bundledFiles.ts). Of
 * package.json only what the code reads: a dependency added to it must not make the
 * committed bundles stale.
 */
export async function bundledFiles(): Promise<Record<string, string>> {
  const packageJson = JSON.parse(await fs.readFile(path.join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  const files: Record<string, string> = {
    'package.json': JSON.stringify({ name: packageJson.name, version: packageJson.version, repository: packageJson.repository }),
    'templates/github/backup.yml': await fs.readFile(path.join(root, 'templates/github/backup.yml'), 'utf8'),
  };
  const migrations = 'src/db/migrations';
  for (const file of (await fs.readdir(path.join(root, migrations))).filter((name) => name.endsWith('.sql')).sort()) {
    files[`${migrations}/${file}`] = await fs.readFile(path.join(root, migrations, file), 'utf8');
  }
  return files;
}

/**
 * A CommonJS bundle has no import.meta: these modules read it only where Backstop runs from
 * its files (BACKSTOP_BUNDLED_FILES absent, no single executable) or, for the embedded
 * PostgreSQL, to report that its binaries are missing. Any other use fails the bundle.
 */
const readsImportMetaOnlyFromFiles = new Set([
  'src/version.ts',
  'src/db/migrate.ts',
  'src/db/embeddedPostgres.ts',
  'src/runner/heartbeatThread.ts',
  'src/cli/commands/init.ts',
  'src/cli/actionReference.ts',
  'src/server/dashboard.ts',
]);

/** Builds every bundle into `outDir` (the repository by default); returns their paths. */
export async function bundle(outDir = root): Promise<string[]> {
  const define = { BACKSTOP_BUNDLED_FILES: JSON.stringify(await bundledFiles()) };
  const written: string[] = [];
  for (const { entry, output } of bundles) {
    const outfile = path.join(outDir, output);
    const result = await esbuild.build({
      absWorkingDir: root,
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: 'node',
      target: 'node24',
      format: 'cjs',
      define,
      // pg's optional native binding, loaded only when asked for (`pg.native`), never here.
      external: ['pg-native'],
      legalComments: 'none',
      charset: 'utf8',
      logLevel: 'silent',
    });
    const problems = [...result.errors, ...result.warnings.filter((warning) => !(warning.id === 'empty-import-meta' && readsImportMetaOnlyFromFiles.has(warning.location?.file ?? '')))];
    if (problems.length > 0) {
      const text = await esbuild.formatMessages(problems, { kind: 'warning' });
      throw new Error(`bundling ${entry}:\n${text.join('\n')}`);
    }
    written.push(outfile);
  }
  return written;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--out');
  if (process.argv.includes('--check')) {
    const stale = await staleBundles();
    for (const file of stale) process.stderr.write(`${file} is stale: run \`npm run bundle\` and commit the result.\n`);
    process.exitCode = stale.length > 0 ? 1 : 0;
  } else {
    for (const file of await bundle(at > 0 ? path.resolve(process.argv[at + 1]!) : undefined)) {
      process.stdout.write(`${path.relative(process.cwd(), file)} ${((await fs.stat(file)).size / 1024 / 1024).toFixed(1)} MiB\n`);
    }
  }
}

/** The committed bundles that differ from a fresh build. */
export async function staleBundles(): Promise<string[]> {
  const fresh = await fs.mkdtemp(path.join((await import('node:os')).tmpdir(), 'backstop-bundle-'));
  try {
    await bundle(fresh);
    const stale: string[] = [];
    for (const { output } of bundles) {
      const committed = await fs.readFile(path.join(root, output)).catch(() => null);
      if (!committed?.equals(await fs.readFile(path.join(fresh, output)))) stale.push(output);
    }
    return stale;
  } finally {
    await fs.rm(fresh, { recursive: true, force: true });
  }
}
