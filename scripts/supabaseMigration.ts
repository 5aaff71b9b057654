/**
 * Writes the Supabase migration (supabase/migrations/…_backstop.sql) from the catalog
 * migrations and src/supabaseCatalog/catalogSecurity.sql. `--check` writes nothing and exits 1 when
 * the committed file is out of date.
 *
 *   npx node scripts/supabaseMigration.ts [--check]
 */
import fs from 'node:fs/promises';
import { readMigrations } from '../src/db/migrate.ts';
import { buildSupabaseMigration, CATALOG_SECURITY_PATH, SUPABASE_MIGRATION_PATH } from '../src/supabaseCatalog/supabaseMigration.ts';

const root = new URL('../', import.meta.url);
const generated = buildSupabaseMigration(await readMigrations(), await fs.readFile(new URL(CATALOG_SECURITY_PATH, root), 'utf8'));
const target = new URL(SUPABASE_MIGRATION_PATH, root);

if (process.argv.includes('--check')) {
  const committed = await fs.readFile(target, 'utf8').catch(() => '');
  if (committed !== generated) {
    process.stderr.write(`${SUPABASE_MIGRATION_PATH} is out of date: run \`npx node scripts/supabaseMigration.ts\`.\n`);
    process.exitCode = 1;
  }
} else {
  await fs.mkdir(new URL('.', target), { recursive: true });
  await fs.writeFile(target, generated);
  process.stdout.write(`wrote ${SUPABASE_MIGRATION_PATH}\n`);
}
