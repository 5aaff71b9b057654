import assert from 'node:assert/strict';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { findCycle, parseImports, readImports, type SourceImport } from './support/importGraph.ts';

/**
 * The layers of src/, checked on every import (static, `import type`, `export … from`,
 * dynamic `import()`). docs/DESIGN.md describes the same table in words; this is the one that
 * is enforced.
 */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Each folder of src/ (a file directly in src/ is a layer of its own, named after the file)
 * and the other layers it may import. A folder that is not here fails the test: add a row.
 */
const LAYERS: Record<string, { holds: string; mayImport: string[] }> = {
  core: { holds: 'pure domain: run states, plans, schemas, error codes', mayImport: [] },
  version: { holds: "Backstop's version and repository, read from package.json or inlined in a bundle", mayImport: ['core'] },
  pgtools: { holds: 'pg_dump/pg_restore/psql and connections to the databases backed up or restored into', mayImport: ['core'] },
  net: { holds: 'the outbound guard: which hosts Backstop may reach', mayImport: ['core', 'storage'] },
  storage: { holds: 'the Store interface, local disk and S3', mayImport: ['core', 'net'] },
  pipeline: { holds: 'backup, restore and verify of one artifact, per profile', mayImport: ['core', 'version', 'pgtools', 'storage', 'net'] },
  db: { holds: 'the catalog: pool, migrations, one query module per aggregate', mayImport: ['core', 'pgtools'] },
  continuous: {
    holds: 'continuous backup: the slot, its streamer into the change archive, the slot guard; reading, checking and replaying segments',
    mayImport: ['core', 'version', 'db', 'pgtools', 'storage', 'net', 'pipeline'],
  },
  // The runner's SQL catalog finalizes through control/finalizeReportedRun.ts, the same check
  // the server applies to a remote runner's report.
  runner: { holds: 'executes one claimed run', mayImport: ['core', 'db', 'pgtools', 'storage', 'net', 'pipeline', 'control', 'continuous'] },
  operations: {
    holds: 'one function per thing a person or a schedule can do',
    mayImport: ['core', 'version', 'db', 'pgtools', 'storage', 'net', 'pipeline', 'continuous'],
  },
  control: {
    holds: 'long-running loops: reaper, scheduler, pruner, notifier, worker pool',
    mayImport: ['core', 'version', 'db', 'pgtools', 'storage', 'net', 'pipeline', 'runner', 'operations', 'continuous'],
  },
  executors: { holds: 'the GitHub executor and its API client', mayImport: ['core', 'db', 'net', 'control'] },
  supabaseCatalog: { holds: "Supabase as the catalog's host: RLS SQL, JWT verification, the edge function's logic", mayImport: ['core', 'executors'] },
  server: {
    holds: 'the Fastify app: API, event streams, dashboard',
    mayImport: ['core', 'version', 'db', 'pgtools', 'storage', 'net', 'pipeline', 'runner', 'operations', 'control', 'executors', 'supabaseCatalog', 'continuous'],
  },
  action: { holds: 'the GitHub Action: its inputs become the run/report command', mayImport: ['core', 'control', 'cli'] },
  cli: {
    holds: 'commander commands',
    mayImport: ['core', 'version', 'db', 'pgtools', 'storage', 'net', 'pipeline', 'runner', 'operations', 'control', 'executors', 'supabaseCatalog', 'server', 'continuous'],
  },
};

/** Layers that must not know the catalog exists. */
const CATALOG_FREE = ['core', 'pgtools', 'net', 'storage', 'pipeline'];
const CATALOG_LAYERS = ['db', 'control', 'runner', 'server', 'cli', 'operations', 'continuous'];

/** Node builtins core may use: computation only, no I/O (no node:fs, node:child_process, node:net…). */
const CORE_BUILTINS = ['node:path', 'node:url', 'node:crypto', 'node:buffer', 'node:util'];
/** Packages core may use: pure computation. */
const CORE_PACKAGES = ['zod', 'croner'];

/**
 * Files of src/cli/ and src/server/routes/ that still import src/db/. The CLI and the API
 * routes only parse, call an operation (src/operations/) and print; a file here would still
 * query the catalog itself. None does any more; the list may only shrink, and a file that no
 * longer imports db/ fails the test until it is removed from here.
 */
const KNOWN_DB_IMPORTS: readonly string[] = [];

function layerOf(file: string): string {
  const parts = file.split('/');
  return parts.length > 2 ? parts[1]! : path.basename(file, '.ts');
}

const where = (item: SourceImport) => `${item.from}:${item.line} imports ${item.resolved ?? item.specifier}`;

/** Every broken rule, one line each: the whole picture at once rather than the first failure. */
function layerViolations(files: string[], imports: SourceImport[], knownDbImports: readonly string[] = KNOWN_DB_IMPORTS): string[] {
  const problems: string[] = [];
  const known = new Set(files);
  for (const layer of new Set(files.map(layerOf))) {
    if (!LAYERS[layer]) problems.push(`src/${layer} is not in the layer table (LAYERS in test/importGraph.test.ts): add a row saying what it holds and what it may import`);
  }
  const dbImporters = new Set<string>();
  for (const item of imports) {
    const from = layerOf(item.from);
    if (item.resolved) {
      if (!known.has(item.resolved)) {
        problems.push(`${where(item)}, which is not a TypeScript file in src/`);
        continue;
      }
      const to = layerOf(item.resolved);
      if (item.resolved.startsWith('src/db/')) dbImporters.add(item.from);
      if (to === from || !LAYERS[from]) continue;
      if (CATALOG_FREE.includes(from) && CATALOG_LAYERS.includes(to)) {
        problems.push(`${where(item)}: ${from} knows no catalog (nothing from ${CATALOG_LAYERS.join(', ')}); pass what it needs as plain values`);
      } else if (!LAYERS[from]!.mayImport.includes(to)) {
        problems.push(`${where(item)}: ${from} may import only ${[from, ...LAYERS[from]!.mayImport].join(', ')}`);
      }
    } else if (from === 'core') {
      const builtin = isBuiltin(item.specifier) ? (item.specifier.startsWith('node:') ? item.specifier : `node:${item.specifier}`) : null;
      if (builtin ? !CORE_BUILTINS.includes(builtin) : !CORE_PACKAGES.includes(item.specifier.split('/')[0]!)) {
        problems.push(`${where(item)}: core may use only ${[...CORE_BUILTINS, ...CORE_PACKAGES].join(', ')} (no I/O, no side effects)`);
      }
    }
  }
  const entryPoint = (file: string) => file.startsWith('src/cli/') || file.startsWith('src/server/routes/');
  for (const file of [...dbImporters].filter(entryPoint).sort()) {
    if (!knownDbImports.includes(file)) {
      problems.push(`${file} imports src/db/: the CLI and the API routes call an operation in src/operations/ instead of querying the catalog`);
    }
  }
  for (const file of knownDbImports) {
    if (!dbImporters.has(file)) problems.push(`${file} no longer imports src/db/: remove it from KNOWN_DB_IMPORTS in test/importGraph.test.ts`);
  }
  return problems;
}

describe('the import graph of src/', () => {
  const { files, imports } = readImports(repoRoot, 'src');

  it('reads every kind of import, and nothing in comments, strings, templates or regular expressions', () => {
    const source = [
      "import a from './a.ts';",
      "import type { B } from './b.ts';",
      "import { type C, d } from './c.ts';",
      'import {',
      '  e,',
      "} from './e.ts';",
      "import './side.ts';",
      "export { f } from './f.ts';",
      "export type { G } from './g.ts';",
      "export * from './h.ts';",
      "const i = await import('./i.ts');",
      "// import x from './comment.ts';",
      "/* import('./block.ts') */",
      'const s = "import y from \'./string.ts\'";',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: source text for the scanner, holding a template literal on purpose
      "const t = `import z from './template.ts' ${value + `import('./nested.ts')`}`;",
      "const r = /import w from '.\\/regex.ts'/;",
      "const o = { import: 'not-an-import' };",
      'const m = import.meta.url;',
    ].join('\n');
    const found = parseImports(source, 'sample.ts').map((item) => `${item.kind} ${item.specifier} @${item.line}`);
    assert.deepEqual(found, [
      'static ./a.ts @1',
      'type ./b.ts @2',
      'static ./c.ts @3',
      'static ./e.ts @4',
      'side-effect ./side.ts @7',
      'export ./f.ts @8',
      'export ./g.ts @9',
      'export ./h.ts @10',
      'dynamic ./i.ts @11',
    ]);
  });

  it('finds the imports of src/: every file, and the dynamic ones', () => {
    assert.ok(files.includes('src/cli/main.ts') && files.includes('src/core/runState.ts'));
    const dynamic = imports.filter((item) => item.kind === 'dynamic').map((item) => `${item.from} -> ${item.resolved}`);
    assert.ok(dynamic.includes('src/storage/openStore.ts -> src/storage/s3Store.ts'), dynamic.join('\n'));
    assert.ok(imports.some((item) => item.kind === 'type'));
  });

  it('keeps the layers', () => {
    const problems = layerViolations(files, imports);
    assert.deepEqual(problems, [], `\n${problems.join('\n')}`);
  });

  it('the layer check reports a catalog import from the pipeline, a new db import from the CLI, a stale allow-list entry and I/O in core', () => {
    // An allow-list entry for a file that imports no src/db/ (any more): a stale entry.
    const stale = 'src/cli/output.ts';
    const seeded: SourceImport[] = [
      ...imports,
      { from: 'src/pipeline/backup.ts', specifier: '../db/pool.ts', kind: 'type', resolved: 'src/db/pool.ts', line: 1 },
      { from: 'src/cli/commands/keygen.ts', specifier: '../../db/tokens.ts', kind: 'static', resolved: 'src/db/tokens.ts', line: 1 },
      { from: 'src/core/config.ts', specifier: 'node:fs', kind: 'static', resolved: null, line: 1 },
    ];
    const problems = layerViolations(files, seeded, [...KNOWN_DB_IMPORTS, stale]);
    assert.equal(problems.length, layerViolations(files, imports).length + 4, problems.join('\n'));
    assert.match(problems.join('\n'), /src\/pipeline\/backup\.ts:1 imports src\/db\/pool\.ts: pipeline knows no catalog/);
    assert.match(problems.join('\n'), /src\/cli\/commands\/keygen\.ts imports src\/db\//);
    assert.ok(problems.includes(`${stale} no longer imports src/db/: remove it from KNOWN_DB_IMPORTS in test/importGraph.test.ts`), problems.join('\n'));
    assert.match(problems.join('\n'), /src\/core\/config\.ts:1 imports node:fs: core may use only/);
  });

  it('has no import cycle', () => {
    const cycle = findCycle(files, imports);
    assert.equal(cycle, null, `import cycle: ${cycle?.join(' -> ')}`);
  });

  it('the cycle check prints the path of a cycle', () => {
    const seeded: SourceImport = { from: 'src/core/errors.ts', specifier: '../cli/main.ts', kind: 'static', resolved: 'src/cli/main.ts', line: 1 };
    const cycle = findCycle(files, [...imports, seeded]);
    assert.ok(cycle, 'the seeded cycle was not found');
    assert.equal(cycle[0], cycle[cycle.length - 1]);
    assert.ok(cycle.includes('src/core/errors.ts') && cycle.includes('src/cli/main.ts'), cycle.join(' -> '));
  });
});
