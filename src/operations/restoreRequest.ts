import { z } from 'zod';

/** How to restore a backup: the same fields from `backstop restore` and POST /api/v1/runs/:id/restore. */
export const restoreRequest = z
  .strictObject({
    databaseUrl: z.string().min(1).max(2048).meta({ writeOnly: true, description: 'Secret: the database to restore into (empty unless clean).' }),
    clean: z.boolean().default(false).describe('Drop and recreate the objects the backup contains.'),
    jobs: z.int().min(1).max(64).default(1).describe('Parallel pg_restore jobs; 1 restores in one transaction.'),
    noOwner: z.boolean().default(false).describe('Do not restore ownership and privileges.'),
    identity: z.string().min(1).max(16_384).optional().meta({ writeOnly: true, description: 'Secret: age identity file contents, for an encrypted backup.' }),
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
