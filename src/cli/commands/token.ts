import type { Command } from 'commander';
import { BackstopError } from '../../core/errors.ts';
import { apiTokenRoles, createApiToken } from '../../operations/createApiToken.ts';
import { createGithubRunnerToken } from '../../operations/createGithubRunnerToken.ts';
import { listTokens } from '../../operations/listTokens.ts';
import { revokeToken } from '../../operations/revokeToken.ts';
import type { CommandContext } from '../context.ts';
import { printJson, table } from '../output.ts';
import { sayingFlags } from './targetOptions.ts';

const tokenFlags = { name: '--name', role: '--role', owner: '--owner', repository: '--github' };

export function registerTokenCommands(program: Command, context: () => CommandContext): void {
  const token = program.command('token').description('Manage API tokens and GitHub runner tokens for `backstop server` (stored as SHA-256 hashes).');
  token
    .command('create')
    .description('Create an API token (--role) or a GitHub runner token (--github) and print it (the only time it is shown).')
    .requiredOption('--name <name>', 'what the token is for, e.g. "dashboard" or "ci"')
    .option('--role <role>', `${apiTokenRoles.join(', ')}: viewer reads; operator also triggers, cancels, verifies and restores; admin also manages targets and tokens`)
    .option('--owner <owner>', 'the person or service that holds an API token, e.g. "alice@example.com" or "nightly-ci" (shown in `token list`)')
    .option('--github <owner/repo>', "a GitHub runner token for this repository's secrets: its jobs may claim only the runs Backstop dispatches to it, and report their outcome")
    .option('--json', 'print the token and its record as JSON')
    .action(async (options: { name: string; role?: string; owner?: string; github?: string; json?: boolean }) => {
      const ctx = context();
      if ((options.role === undefined) === (options.github === undefined)) {
        throw new BackstopError(
          'INVALID_INPUT',
          "Pass either --role ROLE (an API token) or --github OWNER/REPO (a GitHub runner token for that repository's BACKSTOP_RUNNER_TOKEN secret).",
        );
      }
      if (options.github !== undefined) {
        if (options.owner !== undefined) throw new BackstopError('INVALID_INPUT', 'A GitHub runner token is held by its repository: leave out --owner.');
        const created = await sayingFlags(tokenFlags, () => createGithubRunnerToken(ctx.db, { name: options.name, repository: options.github! }));
        if (options.json) printJson(created);
        else {
          process.stdout.write(`${created.token}\n`);
          process.stderr.write(
            `GitHub runner token ${created.id} ("${created.name}", ${created.repository}) created. It is shown only now: store it as the repository secret BACKSTOP_RUNNER_TOKEN of ${created.repository}.\n`,
          );
        }
        return;
      }
      const created = await sayingFlags(tokenFlags, () => createApiToken(ctx.db, { name: options.name, role: options.role as (typeof apiTokenRoles)[number], owner: options.owner }));
      if (options.json) printJson(created);
      else {
        process.stdout.write(`${created.token}\n`);
        process.stderr.write(`Token ${created.id} ("${created.name}", ${created.role}${created.owner ? `, held by ${created.owner}` : ''}) created. It is shown only now: store it.\n`);
      }
    });
  token
    .command('list')
    .description('List API tokens and GitHub runner tokens (never their values).')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const ctx = context();
      const { apiTokens: tokens, githubRunnerTokens: runners } = await listTokens(ctx.db);
      if (options.json) printJson(runners.length > 0 ? [...tokens, ...runners.map((runner) => ({ ...runner, role: 'github-runner' }))] : tokens);
      else if (tokens.length === 0 && runners.length === 0) process.stdout.write('No API tokens yet. Create one with `backstop token create --name NAME --role admin`.\n');
      else {
        const state = (t: { revokedAt: string | null }) => (t.revokedAt ? `revoked ${t.revokedAt}` : 'active');
        const rows = [
          ...tokens.map((t) => [t.id, t.name, t.role, t.owner ?? '', t.createdAt, t.lastUsedAt ?? '', state(t)]),
          ...runners.map((t) => [t.id, t.name, `github-runner ${t.repository}`, '', t.createdAt, t.lastUsedAt ?? '', state(t)]),
        ];
        process.stdout.write(`${table(['ID', 'NAME', 'ROLE', 'OWNER', 'CREATED', 'LAST USED', 'STATE'], rows)}\n`);
      }
    });
  token
    .command('revoke')
    .description('Revoke an API token or a GitHub runner token; requests made with it are refused from now on.')
    .argument('<id>', 'token id (from `backstop token list`)')
    .option('--json', 'print the revoked token as JSON')
    .action(async (id: string, options: { json?: boolean }) => {
      const ctx = context();
      const revoked = await revokeToken(ctx.db, id, { githubRunnerTokens: true });
      if (options.json) printJson(revoked.kind === 'github-runner' ? { ...revoked.token, role: 'github-runner' } : revoked.token);
      else process.stdout.write(`Token ${revoked.token.id} ("${revoked.token.name}") revoked.\n`);
    });
}
