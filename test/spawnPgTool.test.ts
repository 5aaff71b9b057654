import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spawnPgTool } from '../src/pgtools/spawnPgTool.ts';

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
