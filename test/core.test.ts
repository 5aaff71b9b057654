import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { describe, it } from 'node:test';
import { loadConfig } from '../src/core/config.ts';
import { describeDatabase, redactDatabaseUrl } from '../src/core/databaseUrl.ts';
import { isBackstopError } from '../src/core/errors.ts';
import { artifactPrefix } from '../src/core/manifest.ts';
import { manifestJsonSchema } from '../src/core/manifestJsonSchema.ts';
import { parseCompression } from '../src/pipeline/compression.ts';
import { parseToolVersion, pickPgTool, serverMajorFromVersionNum } from '../src/pgtools/pickPgTool.ts';

describe('pure pieces', () => {
  it('the committed manifest JSON Schema matches the code (npm run schema regenerates it)', async () => {
    const committed = JSON.parse(await fs.readFile(new URL('../schemas/manifest-v1.json', import.meta.url), 'utf8'));
    assert.deepEqual(committed, manifestJsonSchema());
  });

  it('names artifact prefixes by target, UTC month, run and attempt', () => {
    assert.equal(artifactPrefix('app', '2026-01-31T23:59:59.000Z', '6f1c8a44-0000-4000-8000-000000000001', 2), 'app/2026/01/6f1c8a44-0000-4000-8000-000000000001/attempt-2/');
  });

  it('parses compression settings and rejects bad ones with what to use', () => {
    assert.deepEqual(parseCompression('zstd'), { algorithm: 'zstd', level: 1 });
    assert.deepEqual(parseCompression('zstd:9'), { algorithm: 'zstd', level: 9 });
    assert.deepEqual(parseCompression('gzip'), { algorithm: 'gzip', level: 6 });
    assert.deepEqual(parseCompression('none'), { algorithm: 'none', level: null });
    for (const bad of ['zstd:0', 'zstd:20', 'gzip:10', 'lz4', 'none:1', '']) {
      assert.throws(
        () => parseCompression(bad),
        (error) => isBackstopError(error, 'INVALID_INPUT'),
        bad,
      );
    }
  });

  it('reads pg tool and server versions', () => {
    assert.deepEqual(parseToolVersion('pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)'), { version: '15.18', major: 15 });
    assert.deepEqual(parseToolVersion('pg_restore (PostgreSQL) 9.6.24'), { version: '9.6.24', major: 9.6 });
    assert.equal(parseToolVersion('nonsense'), null);
    assert.equal(serverMajorFromVersionNum(170002), 17);
    assert.equal(serverMajorFromVersionNum(90624), 9.6);
  });

  it('picks the lowest pg tool at or above the server, and says what to install otherwise', () => {
    const found = [
      { path: '/usr/lib/postgresql/17/bin/pg_dump', major: 17, version: '17.2' },
      { path: '/usr/lib/postgresql/15/bin/pg_dump', major: 15, version: '15.18' },
      { path: '/usr/lib/postgresql/16/bin/pg_dump', major: 16, version: '16.6' },
    ];
    assert.equal(pickPgTool('pg_dump', found, 15).major, 15);
    assert.equal(pickPgTool('pg_dump', found, 16).major, 16);
    assert.throws(
      () => pickPgTool('pg_dump', found, 18),
      (error) => isBackstopError(error, 'PG_VERSION_MISMATCH') && /15\.18.*16\.6.*17\.2/.test(error.message) && /postgresql-client-18/.test(error.message),
    );
    assert.throws(
      () => pickPgTool('pg_dump', [], 15),
      (error) => isBackstopError(error, 'PG_TOOL_NOT_FOUND') && /BACKSTOP_PG_BIN/.test(error.message),
    );
  });

  it('loads configuration with defaults and reports every problem at once', () => {
    const config = loadConfig({}, '/srv');
    assert.equal(config.home, '/srv/.backstop');
    assert.equal(config.leaseTtlMs, 60_000);
    assert.equal(config.heartbeatIntervalMs, 20_000);
    assert.equal(config.reaperIntervalMs, 10_000);
    assert.equal(config.defaultStoreUrl, 'file:///srv/.backstop/backups');
    assert.equal(loadConfig({ BACKSTOP_LEASE_TTL: '1.5' }, '/').heartbeatIntervalMs, 500);
    assert.throws(
      () => loadConfig({ BACKSTOP_LEASE_TTL: 'abc', BACKSTOP_REAPER_INTERVAL: '-1', BACKSTOP_LOG_LEVEL: 'loud' }, '/'),
      (error) =>
        isBackstopError(error, 'CONFIG_INVALID') &&
        /BACKSTOP_LEASE_TTL/.test(error.message) &&
        /BACKSTOP_REAPER_INTERVAL/.test(error.message) &&
        /BACKSTOP_LOG_LEVEL/.test(error.message),
    );
    assert.throws(() => loadConfig({ BACKSTOP_LEASE_TTL: '3', BACKSTOP_HEARTBEAT_INTERVAL: '3' }, '/'), /shorter than BACKSTOP_LEASE_TTL/);
  });

  it('keeps passwords out of printable database descriptions', () => {
    assert.equal(redactDatabaseUrl('postgres://u:hunter2@h:5432/db?password=x'), 'postgres://u:*****@h:5432/db?password=*****');
    assert.equal(describeDatabase('postgres://u:hunter2@h:5432/db'), 'database "db" on h:5432');
  });
});
