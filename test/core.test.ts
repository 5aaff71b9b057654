import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import { describe, it } from 'node:test';
import { loadConfig } from '../src/core/config.ts';
import { describeDatabase, redactDatabaseUrl } from '../src/core/databaseUrl.ts';
import { isBackstopError } from '../src/core/errors.ts';
import { artifactPrefix } from '../src/core/manifest.ts';
import { manifestJsonSchema } from '../src/core/manifestJsonSchema.ts';
import { parseCompression } from '../src/pipeline/compression.ts';
import { clientInstallAdvice, hostSystemFrom } from '../src/pgtools/clientInstallAdvice.ts';
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
      (error) => isBackstopError(error, 'PG_VERSION_MISMATCH') && /15\.18.*16\.6.*17\.2/.test(error.message) && /BACKSTOP_PG_BIN/.test(error.message),
    );
    assert.throws(
      () => pickPgTool('pg_dump', found, 18, 'server', { kind: 'macos' }),
      (error) => isBackstopError(error, 'PG_VERSION_MISMATCH') && /`brew install postgresql@18`/.test(error.message),
    );
    assert.throws(
      () => pickPgTool('pg_dump', [], 15),
      (error) => isBackstopError(error, 'PG_TOOL_NOT_FOUND') && /BACKSTOP_PG_BIN/.test(error.message),
    );
  });

  it('names the command that gets a matching PostgreSQL client on the machine it runs on', () => {
    const osRelease = (lines: string[]) => lines.join('\n');
    const system = (platform: string, release: string | null, env: Record<string, string> = {}) => hostSystemFrom({ platform, arch: 'x64', env, osRelease: release });
    const debian12 = system('linux', osRelease(['PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"', 'ID=debian', 'VERSION_ID="12"', 'VERSION_CODENAME=bookworm']));
    const ubuntu = system('linux', osRelease(['ID=ubuntu', 'ID_LIKE=debian', 'VERSION_ID="24.04"']));
    const fedora = system('linux', osRelease(['ID=fedora', 'VERSION_ID=41']));
    const rocky9 = system('linux', osRelease(['ID="rocky"', 'ID_LIKE="rhel centos fedora"', 'VERSION_ID="9.4"']));
    const rhel10 = system('linux', osRelease(['ID="rhel"', 'ID_LIKE="fedora"', 'VERSION_ID="10.0"']));
    const alpine = system('linux', osRelease(['ID=alpine', 'VERSION_ID=3.21.0']));
    const pgdgApt = 'sudo apt-get install -y postgresql-common && sudo /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y && sudo apt-get install -y postgresql-client-17';
    assert.deepEqual(
      [debian12, ubuntu].map((host) => host.kind),
      ['debian', 'debian'],
    );
    assert.equal(clientInstallAdvice(debian12, 17), `Install the PostgreSQL 17 client from the PostgreSQL project's apt repository: \`${pgdgApt}\``);
    assert.equal(clientInstallAdvice(ubuntu, 17), clientInstallAdvice(debian12, 17));
    assert.equal(clientInstallAdvice(system('darwin', null), 17), 'Install the PostgreSQL 17 client with Homebrew: `brew install postgresql@17`');
    assert.match(
      clientInstallAdvice(fedora, 17),
      /`sudo dnf install -y https:\/\/download\.postgresql\.org\/pub\/repos\/yum\/reporpms\/F-\$\(rpm -E %fedora\)-x86_64\/pgdg-fedora-repo-latest\.noarch\.rpm && sudo dnf install -y postgresql17`/,
    );
    assert.match(
      clientInstallAdvice(rocky9, 16),
      /reporpms\/EL-9-x86_64\/pgdg-redhat-repo-latest\.noarch\.rpm && sudo dnf -qy module disable postgresql && sudo dnf install -y postgresql16`/,
    );
    assert.doesNotMatch(clientInstallAdvice(rhel10, 16), /module disable/);
    assert.equal(clientInstallAdvice(alpine, 17), 'Install the PostgreSQL 17 client: `apk add postgresql17-client`');
    // A GitHub-hosted runner: the workflow's own step, whatever the runner's distribution.
    const runner = system('linux', osRelease(['ID=ubuntu', 'ID_LIKE=debian']), { GITHUB_ACTIONS: 'true' });
    assert.match(clientInstallAdvice(runner, 17), /Backstop's workflow \(`backstop init github`\) does it in its "Install the PostgreSQL client" step when dispatched with pg_major 17/);
    assert.ok(clientInstallAdvice(runner, 17).includes(pgdgApt));
    assert.equal(system('linux', null).kind, 'other');
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
