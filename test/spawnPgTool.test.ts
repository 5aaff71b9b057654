import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { connectionArgs, spawnPgTool } from '../src/pgtools/spawnPgTool.ts';

const execFileAsync = promisify(execFile);

async function output(run: ReturnType<typeof spawnPgTool>): Promise<{ stdout: string; stderr: string; code: number | null }> {
  let stdout = '';
  run.child.stdout.setEncoding('utf8');
  run.child.stdout.on('data', (text: string) => {
    stdout += text;
  });
  const { code, stderr } = await run.exited;
  return { stdout, stderr, code };
}

describe('spawnPgTool', () => {
  it('runs a dump tool under stdbuf with a 1 MiB stdout buffer, and anything else as it is', async () => {
    // env prints the environment it was started with: stdbuf's settings show there.
    const buffered = await output(spawnPgTool('/usr/bin/env', [], { PGAPPNAME: 'x' }, { bufferedStdout: true }));
    assert.equal(buffered.code, 0);
    assert.match(buffered.stdout, /^_STDBUF_O=1048576$/m);
    assert.match(buffered.stdout, /^PGAPPNAME=x$/m);
    const plain = await output(spawnPgTool('/usr/bin/env', [], {}));
    assert.doesNotMatch(plain.stdout, /_STDBUF_O/);
  });

  it('a stdbuf that does not work (its library missing) is left out: the tool runs as it is', async () => {
    const directory = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-stdbuf-'));
    try {
      await fs.writeFile(path.join(directory, 'stdbuf'), '#!/bin/sh\necho "stdbuf: failed to find libstdbuf.so" >&2\nexit 125\n', { mode: 0o755 });
      const script = `
        import { spawnPgTool } from ${JSON.stringify(new URL('../src/pgtools/spawnPgTool.ts', import.meta.url).href)};
        const run = spawnPgTool('/usr/bin/env', [], {}, { bufferedStdout: true });
        let out = '';
        run.child.stdout.on('data', (chunk) => (out += chunk));
        const { code } = await run.exited;
        console.log(JSON.stringify({ code, buffered: out.includes('_STDBUF_O') }));`;
      const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, PATH: `${directory}:/usr/bin:/bin` },
      });
      assert.deepEqual(JSON.parse(stdout), { code: 0, buffered: false });
    } finally {
      await fs.rm(directory, { recursive: true, force: true });
    }
  });

  it('a buffered tool still delivers everything it wrote, and its failure', async () => {
    const run = await output(spawnPgTool('/bin/sh', ['-c', 'seq 1 200000; echo "pg_dump: error: gone" >&2; exit 3'], {}, { bufferedStdout: true }));
    assert.equal(run.code, 3);
    assert.equal(run.stdout.split('\n').length, 200001);
    assert.equal(run.stderr, 'pg_dump: error: gone');
  });

  it('stderr lines the caller consumes are left out of the kept stderr; the rest, and a last line without a newline, stay', async () => {
    const seen: string[] = [];
    const run = await output(
      spawnPgTool(
        '/bin/sh',
        ['-c', 'printf "progress 1\\nerror: one\\nprogress 2\\nerror: two" >&2; exit 1'],
        {},
        {
          onStderrLine: (line) => {
            seen.push(line);
            return line.startsWith('progress');
          },
        },
      ),
    );
    assert.deepEqual(seen, ['progress 1', 'error: one', 'progress 2', 'error: two']);
    assert.equal(run.stderr, 'error: one\nerror: two');
  });

  it('a tool gets PATH, HOME, locale and the libpq settings, not the rest of the environment', async () => {
    const script = `
      import { spawnPgTool } from ${JSON.stringify(new URL('../src/pgtools/spawnPgTool.ts', import.meta.url).href)};
      const run = spawnPgTool('/usr/bin/env', [], { PGAPPNAME: 'x' });
      let out = '';
      run.child.stdout.on('data', (chunk) => (out += chunk));
      await run.exited;
      console.log(JSON.stringify(out.trim().split('\\n').map((line) => line.slice(0, line.indexOf('='))).sort()));`;
    const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script], {
      env: {
        PATH: process.env.PATH,
        HOME: '/home/someone',
        LANG: 'C.UTF-8',
        LC_ALL: 'C.UTF-8',
        PGSSLMODE: 'require',
        PGPASSFILE: '/home/someone/.pgpass',
        PGPASSWORD: 'for-another-server',
        PGHOST: 'elsewhere',
        BACKSTOP_RUNNER_TOKEN: 'secret',
        AWS_SECRET_ACCESS_KEY: 'secret',
      },
    });
    assert.deepEqual(JSON.parse(stdout), ['HOME', 'LANG', 'LC_ALL', 'PATH', 'PGAPPNAME', 'PGPASSFILE', 'PGSSLMODE']);
  });
});

describe('connectionArgs', () => {
  it('takes every secret out of the URL: the password to PGPASSWORD, sslpassword to the service parameters', () => {
    const fromQuery = connectionArgs('postgres://u@db.example.com:5432/app?sslmode=require&password=p%40ss&sslpassword=k%20ey&options=-c%20search_path%3Dx+y');
    assert.equal(fromQuery.dbname, 'postgres://u@db.example.com:5432/app?sslmode=require&options=-c%20search_path%3Dx+y', 'the rest of the query is kept byte for byte');
    assert.equal(fromQuery.env.PGPASSWORD, 'p@ss');
    assert.deepEqual(fromQuery.serviceParameters, { sslpassword: 'k ey' });

    const fromUserinfo = connectionArgs('postgres://u:pa%3Ass@db.example.com/app', 'backstop:run');
    assert.equal(fromUserinfo.dbname, 'postgres://u@db.example.com/app');
    assert.deepEqual(fromUserinfo.env, { PGAPPNAME: 'backstop:run', PGCONNECT_TIMEOUT: '15', PGPASSWORD: 'pa:ss' });
    assert.deepEqual(fromUserinfo.serviceParameters, {});

    // As libpq: the query string's password wins over the userinfo's, and a later one over an earlier one.
    assert.equal(connectionArgs('postgres://u:first@h/app?password=second&password=third').env.PGPASSWORD, 'third');
    assert.equal(connectionArgs('postgres://u@h/app?%70assword=encoded-key').env.PGPASSWORD, 'encoded-key');
    assert.equal(connectionArgs('postgres://u@h/app?%70assword=encoded-key').dbname, 'postgres://u@h/app');
  });

  it('refuses what a service file cannot carry safely, saying what to do', () => {
    assert.throws(() => connectionArgs('postgres://u@h/app?service=prod&sslpassword=x'), /names a service and gives sslpassword.*pg_service\.conf/);
    assert.throws(() => connectionArgs('postgres://u@h/app?sslpassword=%20x'), /white space or holds a line break/);
    assert.throws(() => connectionArgs('postgres://u@h/app?sslpassword=a%0Ab'), /line break/);
    assert.doesNotThrow(() => connectionArgs('postgres://u:p@h/app?service=prod'));
  });

  it('a service file holds the secrets while the tool runs, privately, and is gone after', async () => {
    const connection = connectionArgs('postgres://u@h/app?sslpassword=key-secret');
    const run = await output(
      spawnPgTool('/bin/sh', ['-c', 'stat -c %a "$PGSERVICEFILE" "$(dirname "$PGSERVICEFILE")"; echo "$PGSERVICE"; cat "$PGSERVICEFILE"; echo "$PGSERVICEFILE" >&2'], connection),
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '600\n700\nbackstop\n[backstop]\nsslpassword=key-secret\n');
    await assert.rejects(fs.stat(path.dirname(run.stderr.trim())), { code: 'ENOENT' });
  });
});
