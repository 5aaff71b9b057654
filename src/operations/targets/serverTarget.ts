import { serverReadUrl } from '../../core/databaseUrl.ts';
import { BackstopError } from '../../core/errors.ts';
import type { TargetOptions } from '../../db/targets.ts';

interface UrlFields {
  databaseUrl?: string;
  serverUrl?: string;
  options?: TargetOptions;
}

/**
 * A target as stored: one URL, its profile saying what it is. `serverUrl` (a whole server)
 * becomes the URL the server is read from, and the options the server profile; `current`
 * are the options of the target being updated, when only the URL is sent.
 */
export function resolveServerUrl<T extends UrlFields>(fields: T, current?: TargetOptions): Omit<T, 'serverUrl'> {
  const { serverUrl, ...rest } = fields;
  if (serverUrl === undefined) return rest;
  const options = rest.options ?? current;
  if (current !== undefined && rest.options === undefined && current.profile !== 'server') {
    throw new BackstopError('INVALID_INPUT', 'replaces the database of a server target; this target backs up one database: change its databaseUrl, or add a server target', {
      field: 'serverUrl',
    });
  }
  return { ...rest, databaseUrl: serverReadUrl(serverUrl), ...(rest.options !== undefined || current === undefined ? { options: { ...options, profile: 'server' } } : {}) };
}
