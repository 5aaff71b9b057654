#!/usr/bin/env node
// Entry point, in plain JavaScript that any Node.js can parse, so that an older one gets told
// what to install instead of a stack trace about TypeScript files or missing APIs. A checkout
// runs the TypeScript sources directly (Node 24 strips the types); the published package has
// no src/ and runs the JavaScript that `npm run build` compiled into dist/ (Node does not strip
// types under node_modules). BACKSTOP_DIST=1 runs dist/ in a checkout. The compile cache keeps
// compiled modules between runs (faster start-up).
import { existsSync } from 'node:fs';
import module from 'node:module';

const REQUIRED_MAJOR = 24;
const major = Number(process.versions.node.split('.')[0]);

if (!(major >= REQUIRED_MAJOR)) {
  process.stderr.write(
    `Backstop needs Node.js ${REQUIRED_MAJOR} or newer; you have ${process.versions.node}. Install Node.js ${REQUIRED_MAJOR} (https://nodejs.org), or use the single-file executable, which needs no Node.js.\n`,
  );
  process.exitCode = 2;
} else {
  module.enableCompileCache?.();
  const sources = new URL('../src/cli/main.ts', import.meta.url);
  const entry = existsSync(sources) && process.env.BACKSTOP_DIST !== '1' ? sources : new URL('../dist/cli/main.js', import.meta.url);
  import(entry.href).then(({ main }) => main(process.argv));
}
