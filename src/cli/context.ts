import type { Logger } from 'pino';
import type { AuditActor } from '../core/auditActor.ts';
import { loadConfig, type Config } from '../core/config.ts';
import { openCatalog, openOnFirstQuery, type Catalog, type Queryable } from '../operations/openCatalog.ts';
import { cliActor } from './cliActor.ts';
import { chooseLogFormat, createLogger } from './logger.ts';

/** What every command gets: config, a logger, and (lazily) the catalog. Built once per process. */
export interface CommandContext {
  config: Config;
  log: Logger;
  catalog(): Promise<Catalog>;
  /** The catalog for operations: opened on the first query, so bad input is refused first. */
  db: Queryable;
  /** Who runs the command, as the audit trail records it: the OS user and host. */
  actor: AuditActor;
  close(): Promise<void>;
}

export function createContext(options: { defaultLogLevel: string; errorStacks?: boolean }): CommandContext {
  const config = loadConfig(process.env, process.cwd());
  const log = createLogger(process.env.BACKSTOP_LOG_LEVEL ? config.logLevel : options.defaultLogLevel, {
    errorStacks: options.errorStacks,
    format: chooseLogFormat(config.logFormat, process.stderr.isTTY === true),
  });
  let opened: Promise<Catalog> | null = null;
  const catalog = () => (opened ??= openCatalog(config, log));
  return {
    config,
    log,
    catalog,
    db: openOnFirstQuery(catalog),
    actor: cliActor(),
    async close() {
      if (opened) await (await opened.catch(() => null))?.close();
    },
  };
}
