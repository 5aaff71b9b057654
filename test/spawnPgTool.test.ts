import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { spawnPgTool } from '../src/pgtools/spawnPgTool.ts';

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
      spawnPgTool('/bin/sh', ['-c', 'printf "progress 1\\nerror: one\\nprogress 2\\nerror: two" >&2; exit 1'], {}, {
        onStderrLine: (line) => {
          seen.push(line);
          return line.startsWith('progress');
        },
      }),
    );
    assert.deepEqual(seen, ['progress 1', 'error: one', 'progress 2', 'error: two']);
    assert.equal(run.stderr, 'error: one\nerror: two');
  });
});
