/**
 * Rewrites a dump line by line as it streams, with constant memory beyond the longest line.
 *
 * Lines are decoded as latin1, which maps every byte to one character and back: a dump in
 * any server encoding passes through byte for byte, and the rules, which look only at ASCII
 * keywords and quoted role names, still match.
 */
export async function* rewriteLines(source: AsyncIterable<Buffer>, rewrite: (line: string) => string): AsyncGenerator<Buffer> {
  let pending = '';
  for await (const chunk of source) {
    const text = pending + chunk.toString('latin1');
    const lastNewline = text.lastIndexOf('\n');
    if (lastNewline === -1) {
      pending = text;
      continue;
    }
    pending = text.slice(lastNewline + 1);
    const lines = text.slice(0, lastNewline).split('\n');
    yield Buffer.from(`${lines.map(rewrite).join('\n')}\n`, 'latin1');
  }
  if (pending !== '') yield Buffer.from(rewrite(pending), 'latin1');
}

/** `text`, then every chunk of `source`, then `trailer`. */
export async function* framed(header: string, source: AsyncIterable<Buffer>, trailer: string): AsyncGenerator<Buffer> {
  yield Buffer.from(header);
  yield* source;
  yield Buffer.from(trailer);
}
