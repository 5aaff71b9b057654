import type { Logger } from 'pino';
import { loadConfig, type Config } from '../core/config.ts';
import { openCatalog, type Catalog } from './catalog.ts';
import { chooseLogFormat, createLogger } from './logger.ts';

/** What every command gets: config, a logger, and (lazily) the catalog. Built once per process. */
export interface CommandContext {
  config: Config;
  log: Logger;
  catalog(): Promise<Catalog>;
  close(): Promise<void>;
}

export function createContext(options: { defaultLogLevel: string; errorStacks?: boolean }): CommandContext {
  const config = loadConfig(process.env, process.cwd());
  const log = createLogger(process.env.BACKSTOP_LOG_LEVEL ? config.logLevel : options.defaultLogLevel, {
    errorStacks: options.errorStacks,
    format: chooseLogFormat(config.logFormat, process.stderr.isTTY === true),
  });
  let opened: Promise<Catalog> | null = null;
  return {
    config,
    log,
    catalog: () => (opened ??= openCatalog(config, log)),
    async close() {
      if (opened) await (await opened.catch(() => null))?.close();
    },
  };
}
