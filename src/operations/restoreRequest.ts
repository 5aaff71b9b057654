import { z } from 'zod';

/** How to restore a backup: the same fields from `backstop restore` and POST /api/v1/runs/:id/restore. */
export const restoreRequest = z
  .strictObject({
    databaseUrl: z.string().min(1).max(2048).meta({ writeOnly: true, description: 'Secret: the database to restore into (empty unless clean).' }),
    clean: z.boolean().default(false).describe('Drop and recreate the objects the backup contains.'),
    jobs: z.int().min(1).max(64).default(1).describe('Parallel pg_restore jobs; 1 restores in one transaction.'),
    noOwner: z.boolean().default(false).describe('Do not restore ownership and privileges.'),
    identity: z.string().min(1).max(16_384).optional().meta({ writeOnly: true, description: 'Secret: age identity file contents, for an encrypted backup.' }),
    databases: z.array(z.string().min(1).max(63)).max(500).optional().describe('A server backup: restore only these of its databases (default: every one).'),
    replaceDatabases: z
      .array(z.string().min(1).max(63))
      .max(500)
      .optional()
      .describe('A server backup: databases the destination server already has that may be dropped and restored again. Any other database it has refuses the restore.'),
    globals: z.boolean().default(true).describe('A server backup: restore its roles first (false: the roles its databases name must exist).'),
    privilegedRole: z
      .string()
      .min(1)
      .max(63)
      .optional()
      .describe(
        "The role the destination URL connects as, to accept it although it is a superuser, has CREATEROLE or can run programs or read files on its server (the backup's code runs as it). Without it, or with another name, such a role is refused (403 RESTORE_ROLE_PRIVILEGED).",
      ),
  })
  .meta({ examples: [{ databaseUrl: 'postgres://restore:secret@db.example.com:5432/app_restored', clean: false, jobs: 1 }] });

export type RestoreRequest = z.input<typeof restoreRequest>;
