import type { Command } from 'commander';
import { apiTokenRoles, assertRole, createApiToken, listApiTokens, revokeApiToken } from '../../db/tokens.ts';
import type { CommandContext } from '../context.ts';
import { printJson, table } from '../output.ts';

export function registerTokenCommands(program: Command, context: () => CommandContext): void {
  const token = program.command('token').description('Manage API tokens for `backstop server` (stored as SHA-256 hashes).');
  token
    .command('create')
    .description('Create an API token and print it (the only time it is shown).')
    .requiredOption('--name <name>', 'what the token is for, e.g. "dashboard" or "ci"')
    .requiredOption('--role <role>', `${apiTokenRoles.join(', ')}: viewer reads; operator also triggers, cancels, verifies and restores; admin also manages targets and tokens`)
    .option('--json', 'print the token and its record as JSON')
    .action(async (options: { name: string; role: string; json?: boolean }) => {
      const ctx = context();
      assertRole(options.role);
      const { pool } = await ctx.catalog();
      const created = await createApiToken(pool, { name: options.name, role: options.role });
      if (options.json) printJson(created);
      else {
        process.stdout.write(`${created.token}\n`);
        process.stderr.write(`Token ${created.id} ("${created.name}", ${created.role}) created. It is shown only now: store it.\n`);
      }
    });
  token
    .command('list')
    .description('List API tokens (never their values).')
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => {
      const ctx = context();
      const { pool } = await ctx.catalog();
      const tokens = await listApiTokens(pool);
      if (options.json) printJson(tokens);
      else if (tokens.length === 0) process.stdout.write('No API tokens yet. Create one with `backstop token create --name NAME --role admin`.\n');
      else {
        const rows = tokens.map((t) => [t.id, t.name, t.role, t.createdAt, t.lastUsedAt ?? '', t.revokedAt ? `revoked ${t.revokedAt}` : 'active']);
        process.stdout.write(`${table(['ID', 'NAME', 'ROLE', 'CREATED', 'LAST USED', 'STATE'], rows)}\n`);
      }
    });
  token
    .command('revoke')
    .description('Revoke an API token; requests made with it are refused from now on.')
    .argument('<id>', 'token id (from `backstop token list`)')
    .action(async (id: string) => {
      const ctx = context();
      const { pool } = await ctx.catalog();
      const revoked = await revokeApiToken(pool, id);
      process.stdout.write(`Token ${revoked.id} ("${revoked.name}") revoked.\n`);
    });
}
