import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundledFiles } from '../core/bundledFiles.ts';
import type { Pool } from './pool.ts';

// Arbitrary constant shared by every Backstop process: concurrent migrators serialize on it.
const MIGRATION_LOCK_KEY = 0x6261636b; // "back"

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

const MIGRATION_FILE = /^\d{3}_[a-z0-9_]+\.sql$/;

export async function readMigrations(): Promise<Migration[]> {
  if (bundledFiles) {
    const prefix = 'src/db/migrations/';
    const files = Object.keys(bundledFiles).filter((key) => key.startsWith(prefix) && MIGRATION_FILE.test(key.slice(prefix.length)));
    return files.sort().map((key) => migration(key.slice(prefix.length), bundledFiles![key]!));
  }
  const migrationsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');
  const files = (await fs.readdir(migrationsDir)).filter((file) => MIGRATION_FILE.test(file)).sort();
  return Promise.all(files.map(async (file) => migration(file, await fs.readFile(path.join(migrationsDir, file), 'utf8'))));
}

function migration(file: string, sql: string): Migration {
  return { id: Number(file.slice(0, 3)), name: file.replace(/\.sql$/, ''), sql };
}

/**
 * Applies pending migrations, each in its own transaction, under a session advisory lock so
 * that many processes starting at once apply each migration exactly once.
 */
export async function migrate(pool: Pool): Promise<number[]> {
  const migrations = await readMigrations();
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await client.query('create schema if not exists backstop');
      await client.query(`create table if not exists backstop.migrations (
        id integer primary key, name text not null, applied_at timestamptz not null default now())`);
      const { rows } = await client.query<{ id: number }>('select id from backstop.migrations');
      const applied = new Set(rows.map((row) => row.id));
      const newlyApplied: number[] = [];
      for (const migration of migrations) {
        if (applied.has(migration.id)) continue;
        await client.query('begin');
        try {
          // Insert our own row first: a migrator that somehow got past the lock fails fast
          // on the primary key instead of half-applying the migration twice.
          await client.query('insert into backstop.migrations (id, name) values ($1, $2)', [migration.id, migration.name]);
          await client.query(migration.sql);
          await client.query('commit');
        } catch (error) {
          await client.query('rollback').catch(() => {});
          throw new Error(`Migration ${migration.name} failed: ${(error as Error).message}`, { cause: error });
        }
        newlyApplied.push(migration.id);
      }
      return newlyApplied;
    } finally {
      await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => {});
    }
  } finally {
    client.release();
  }
}
