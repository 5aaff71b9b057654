import os from 'node:os';
import type { Config } from '../core/config.ts';
import { parseDatabaseUrl } from '../core/databaseUrl.ts';
import { BackstopError } from '../core/errors.ts';
import { httpRunner, type HttpRunner } from '../runner/httpRunnerCatalog.ts';
import type { CommandContext } from './context.ts';

/**
 * `backstop run` and `backstop report` over HTTP: what a CI job uses when it holds a runner
 * token and the API's address instead of the catalog's URL.
 */

export interface RemoteRunnerFlags {
  apiUrl?: string;
  token?: string;
}

export interface RemoteRunnerSettings {
  apiUrl: string;
  token: string;
}

export const remoteRunnerOptionHelp = {
  apiUrl: 'talk to this Backstop server over HTTP instead of the catalog (default: BACKSTOP_API_URL)',
  token: 'runner token for --api-url (default: BACKSTOP_RUNNER_TOKEN, which is safer: a command line is visible to other processes)',
};

/**
 * HTTP when an API URL or a token is given, by flag or by the environment. A variable that is
 * present but empty counts as given: in GitHub Actions it is a secret nobody set, and falling
 * back to a catalog the job cannot reach would only hide that.
 */
export function remoteRunnerSettings(config: Pick<Config, 'remoteRunner'>, flags: RemoteRunnerFlags): RemoteRunnerSettings | null {
  const apiUrl = (flags.apiUrl ?? config.remoteRunner.apiUrl)?.trim();
  const token = (flags.token ?? config.remoteRunner.token)?.trim();
  if (apiUrl === undefined && token === undefined) return null;
  const problems: string[] = [];
  if (!apiUrl) {
    problems.push(
      "BACKSTOP_API_URL (or --api-url) is empty: set it to the Backstop server's address, e.g. https://backstop.example.com (in GitHub Actions, the repository secret BACKSTOP_API_URL).",
    );
  } else if (!isHttpUrl(apiUrl)) {
    problems.push(`BACKSTOP_API_URL (or --api-url) "${apiUrl.slice(0, 200)}" is not an http:// or https:// URL; use the server's base URL, e.g. https://backstop.example.com.`);
  }
  if (!token) {
    problems.push(
      'BACKSTOP_RUNNER_TOKEN (or --token) is empty: set it to a runner token (in GitHub Actions, the repository secret BACKSTOP_RUNNER_TOKEN, made with `backstop token create --name NAME --github OWNER/REPO`).',
    );
  }
  if (problems.length > 0) {
    throw new BackstopError('CONFIG_INVALID', `To run over HTTP: ${problems.join(' ')} Or set neither, and BACKSTOP_DATABASE_URL, to use the catalog directly.`);
  }
  return { apiUrl: apiUrl!, token: token! };
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** The environment variable that holds one target's database URL: BACKSTOP_SOURCE_URL_<NAME>. */
export function sourceUrlVariable(targetName: string): string {
  return `BACKSTOP_SOURCE_URL_${targetName.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/**
 * The database a remote runner backs up comes from its own environment, never from the API:
 * BACKSTOP_SOURCE_URL_<TARGET> first (a repository serving several targets), then
 * BACKSTOP_SOURCE_URL.
 */
export function sourceUrlFromEnvironment(env: Record<string, string | undefined>, fallback: string | undefined): (targetName: string) => string {
  return (targetName) => {
    const variable = sourceUrlVariable(targetName);
    const url = env[variable]?.trim() || fallback?.trim();
    if (!url) {
      throw new BackstopError(
        'CONFIG_INVALID',
        `Target "${targetName}" needs its database URL in this runner's environment: set ${variable} or BACKSTOP_SOURCE_URL (in GitHub Actions, from a repository secret). Over HTTP, Backstop never sends database URLs.`,
      );
    }
    parseDatabaseUrl(url);
    return url;
  };
}

/** Who claims the run, as recorded on it: the GitHub run when there is one. */
export function remoteRunnerName(env: Record<string, string | undefined>): string {
  const name =
    env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID
      ? `github:${env.GITHUB_REPOSITORY}#${env.GITHUB_RUN_ID}${env.GITHUB_RUN_ATTEMPT && env.GITHUB_RUN_ATTEMPT !== '1' ? `/${env.GITHUB_RUN_ATTEMPT}` : ''}`
      : `run:${process.pid}@${os.hostname()}`;
  // The API accepts letters, digits and a few separators (see claimBody).
  return (
    name
      .replace(/[^A-Za-z0-9 _.:/@()#-]/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, 200) || 'remote-runner'
  );
}

export function openHttpRunner(ctx: CommandContext, settings: RemoteRunnerSettings): HttpRunner {
  return httpRunner({
    apiUrl: settings.apiUrl,
    token: settings.token,
    sourceUrl: sourceUrlFromEnvironment(process.env, ctx.config.remoteRunner.sourceUrl),
    log: ctx.log,
  });
}
