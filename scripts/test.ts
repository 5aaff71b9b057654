/**
 * The test command: runs the lint step (scripts/lint.ts) and stops if it fails, then starts a
 * real PostgreSQL server (the embedded binaries, as the postgres user when run as root) in a
 * temporary folder, prepares a migrated template catalog, runs every test file with node:test,
 * and stops the server whatever happened.
 *
 *   npm test                      all tests
 *   npm test -- test/foo.test.ts  some files
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ensureEmbeddedPostgres, stopEmbeddedPostgres, temporaryHome } from '../src/db/embeddedPostgres.ts';
import { stopEmbeddedServers } from '../src/operations/stopEmbeddedServers.ts';
import { abandonedEmbeddedServers, stopAbandonedServers } from '../test/support/abandonedServers.ts';
import { migrate } from '../src/db/migrate.ts';
import { createPool } from '../src/db/pool.ts';
import { createDatabaseIfMissing } from '../src/db/createDatabaseIfMissing.ts';
import { lintFixAdvice, runBiomeCheck } from './lint.ts';

const TEMPLATE = 'backstop_template';

function requireTool(tool: string, install: string): void {
  try {
    execFileSync(tool, ['--version'], { stdio: 'ignore' });
  } catch {
    process.stderr.write(`The tests need \`${tool}\` on PATH. Install it with: ${install}\n`);
    process.exit(1);
  }
}

async function main(): Promise<number> {
  const lint = runBiomeCheck([]);
  if (lint.error) throw lint.error;
  if (lint.status !== 0) {
    process.stderr.write(lintFixAdvice);
    return 1;
  }
  requireTool('pg_dump', 'apt-get install -y postgresql-client');
  requireTool('age', 'apt-get install -y age');

  const home = await temporaryHome('backstop-test-');
  const defaultHome = path.join(home, 'home');
  let code = 1;
  try {
    const server = await ensureEmbeddedPostgres(home);
    await createDatabaseIfMissing(server.url(), TEMPLATE);
    const pool = createPool(server.url(TEMPLATE));
    await migrate(pool);
    await pool.end();

    const args = process.argv.slice(2);
    const files =
      args.length > 0
        ? args
        : (await fs.readdir('test'))
            .filter((file) => file.endsWith('.test.ts'))
            .sort()
            .map((file) => path.join('test', file));
    const child = spawn(process.execPath, ['--test', '--test-reporter=spec', `--test-concurrency=${process.env.BACKSTOP_TEST_CONCURRENCY ?? '2'}`, ...files], {
      stdio: 'inherit',
      env: {
        ...process.env,
        // Where a test that names no home keeps one (drills start a scratch server there): never
        // the checkout, and stopped below with everything else.
        BACKSTOP_HOME: defaultHome,
        BACKSTOP_TEST_ADMIN_URL: server.url(),
        BACKSTOP_TEST_TEMPLATE: TEMPLATE,
        // The tests' webhook receivers, s3rver and fake GitHub listen on loopback, which the
        // outbound guard refuses by default; test/trust.outbound.test.ts removes this to
        // show the refusal.
        BACKSTOP_ALLOW_PRIVATE_ENDPOINTS: process.env.BACKSTOP_ALLOW_PRIVATE_ENDPOINTS ?? '127.0.0.0/8,::1',
      },
    });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    code = await new Promise<number>((resolve) => child.on('exit', (exitCode) => resolve(exitCode ?? 1)));
  } finally {
    await stopEmbeddedServers({ home: defaultHome, databaseUrl: undefined }).catch(() => {});
    await stopEmbeddedPostgres(home, { mode: 'immediate' }).catch(() => {});
    await fs.rm(home, { recursive: true, force: true });
  }
  // A test that removes its home without stopping the servers in it leaves them running.
  const abandoned = await abandonedEmbeddedServers();
  if (abandoned.length > 0) {
    process.stderr.write(
      `Stopping ${abandoned.length} PostgreSQL server(s) whose home a test removed without stopping them: ${abandoned.map((server) => server.dataDir).join(', ')}. Stop a home's servers (stopEmbeddedServers) before removing it.\n`,
    );
    await stopAbandonedServers(abandoned);
  }
  return code;
}

process.exitCode = await main();
