#!/usr/bin/env node
// Entry point. A checkout runs the TypeScript sources directly (Node 24 strips the types);
// the published package has no src/ and runs the JavaScript that `npm run build` compiled into
// dist/ (Node does not strip types under node_modules). BACKSTOP_DIST=1 runs dist/ in a
// checkout. The compile cache keeps compiled modules between runs (faster start-up).
import { existsSync } from 'node:fs';
import module from 'node:module';

module.enableCompileCache?.();
const sources = new URL('../src/cli/main.ts', import.meta.url);
const entry = existsSync(sources) && process.env.BACKSTOP_DIST !== '1' ? sources : new URL('../dist/cli/main.js', import.meta.url);
const { main } = await import(entry.href);
await main(process.argv);
