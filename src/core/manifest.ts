import { z } from 'zod';

/**
 * Manifest v1: the open, versioned description of one backup, written last into its prefix.
 * An artifact is restorable from the bucket alone with this file and standard tools.
 */
export const MANIFEST_FORMAT = 'backstop.manifest';
export const MANIFEST_VERSION = 1;
export const MANIFEST_NAME = 'manifest.json';

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a lowercase hex SHA-256 digest');

export const manifestFileSchema = z.object({
  name: z.string().min(1).describe('File name inside the backup prefix.'),
  role: z
    .enum(['dump', 'roles', 'schema', 'data', 'storage', 'globals'])
    .describe('What the file holds. "globals": a whole server\'s roles, memberships, role settings and tablespaces (pg_dumpall --globals-only).'),
  format: z.enum(['pg_dump-custom', 'sql', 'object']).describe('Format of the decrypted, decompressed content. "object": the bytes of one Supabase Storage object, as stored.'),
  size: z.number().int().nonnegative().describe('Stored size in bytes.'),
  sha256: sha256.describe('SHA-256 of the stored bytes.'),
  uncompressedSize: z.number().int().nonnegative().describe('Size of the content before compression.'),
  dataBlocks: z
    .array(z.tuple([z.number().int().positive(), z.number().int().nonnegative()]))
    .optional()
    .describe(
      'For a "pg_dump-custom" file: where each data block starts in the plain archive, as [dump id, byte offset]. pg_dump writes these offsets into its table of contents only when its output is seekable, and Backstop dumps to a pipe; a restore fills them into its copy so that pg_restore --jobs can seek.',
    ),
  dumpedBy: z
    .object({
      tool: z.enum(['pg_dump', 'pg_dumpall']),
      version: z.string(),
      options: z.array(z.string()).describe('Options, connection excluded.'),
    })
    .optional()
    .describe('The tool that wrote this file. Absent: pg_dump, as `pgDump` describes.'),
  database: z.string().min(1).optional().describe('Server profile: the database a "dump" file holds (a pg_dump --create archive of it).'),
  object: z
    .object({
      bucket: z.string().min(1),
      key: z.string().min(1).describe('The object key exactly as the bucket holds it.'),
      contentType: z.string().optional(),
    })
    .optional()
    .describe('For a "storage" file: the Supabase Storage object it holds; its size is `uncompressedSize`.'),
});

export const backupProfiles = ['default', 'supabase', 'server'] as const;
export type BackupProfile = (typeof backupProfiles)[number];

export const manifestSchema = z.object({
  format: z.literal(MANIFEST_FORMAT),
  formatVersion: z.literal(MANIFEST_VERSION),
  backstopVersion: z.string(),
  runId: z.string().uuid(),
  attempt: z.number().int().positive(),
  target: z.string(),
  targetId: z
    .string()
    .uuid()
    .optional()
    .describe(
      "The catalog's id of the target (absent in manifests written before it was recorded). Names can be reused after a delete and changed by a rename; the id binds the backup to the one target it was taken for.",
    ),
  profile: z
    .enum(backupProfiles)
    .optional()
    .describe(
      'How the database was dumped. "default" (also when absent): one pg_dump custom-format archive. "supabase": roles, schema and data SQL files, split the way `supabase db dump` splits them, restored in that order with psql. "server": a whole server, its globals file then one pg_dump --create archive per database (see `databases`).',
    ),
  continuous: z
    .object({
      slot: z.string().describe("The target's logical replication slot."),
      consistentLsn: z.string().describe("The LSN the dump was taken at (the slot's exported snapshot): changes committed after it are in the change archive."),
      tables: z
        .array(z.string())
        .optional()
        .describe(
          "The tables the target's publication held when the base was taken (`schema.table`): those the change archive follows. A drill compares exactly these with a later base. Absent in manifests written before it was recorded.",
        ),
    })
    .optional()
    .describe('Continuous targets: this backup is a base of point-in-time restore; see docs/CONTINUOUS.md.'),
  createdAt: z.string().describe('When the run was created, database clock, ISO 8601.'),
  source: z.object({
    serverVersion: z.string(),
    serverVersionNum: z.number().int(),
    database: z.string(),
  }),
  pgDump: z.object({
    version: z.string(),
    options: z.array(z.string()).describe('pg_dump options, connection excluded.'),
    snapshot: z.boolean().describe('Row counts were taken in the same snapshot as the dump.'),
  }),
  compression: z.object({ algorithm: z.enum(['zstd', 'gzip', 'none']), level: z.number().int().nullable() }),
  encryption: z
    .object({ algorithm: z.literal('age'), recipients: z.array(z.string().startsWith('age1')) })
    .nullable()
    .describe('Public recipients only; never an identity.'),
  files: z.array(manifestFileSchema).min(1),
  storage: z
    .object({ buckets: z.array(z.string()).describe('Every bucket copied, including empty ones.') })
    .optional()
    .describe('Present when Supabase Storage objects were copied (`--with-storage`): each is a "storage" file under storage/<bucket>/.'),
  databases: z
    .array(
      z.object({
        name: z.string().min(1),
        file: z.string().min(1).describe('The "dump" file that holds it.'),
        snapshot: z.boolean().describe('Row counts were taken in the same snapshot as its dump.'),
      }),
    )
    .optional()
    .describe('Server profile: every database the backup holds, in the order they were listed on the server.'),
  parallel: z
    .object({
      jobs: z.number().int().min(2).describe('How many pg_dump streams were asked for (`--jobs`).'),
      schema: z.string().min(1).describe('The "schema" file: a custom-format archive of the pre-data and post-data sections (pg_dump --section=pre-data --section=post-data).'),
      data: z
        .array(
          z.object({
            file: z.string().min(1).describe('A "data" file: a custom-format archive of the data section (pg_dump --section=data) of these tables.'),
            tables: z.array(z.object({ schema: z.string(), name: z.string() })),
            rest: z.boolean().describe('This file also holds every other piece of data: sequence values, large objects, tables not listed in any file.'),
          }),
        )
        .min(1),
    })
    .optional()
    .describe(
      'Default profile with `--jobs` above 1: the database as several files dumped at once from one exported snapshot, restored as pre-data, then the data files at once, then post-data. Absent: one "dump" file.',
    ),
  globals: z
    .object({
      file: z.string().min(1).nullable().describe('The "globals" file, or null when the target backs up no globals.'),
      passwords: z.boolean().describe('Role passwords are in it. False when not asked for, or when the server does not let the backup read pg_authid (managed services).'),
    })
    .optional()
    .describe('Server profile: the roles of the server.'),
  tables: z.array(
    z.object({
      database: z.string().min(1).optional().describe('Server profile: the database the table is in.'),
      schema: z.string(),
      name: z.string(),
      rows: z.number().int().nonnegative(),
      checksum: z
        .string()
        .regex(/^-?\d+$/)
        .optional()
        .describe('Order-independent content checksum: sum of the first 64 bits of md5(row::text) over all rows, in decimal.'),
    }),
  ),
  materializedViews: z
    .array(z.object({ schema: z.string(), name: z.string() }))
    .optional()
    .describe(
      'Supabase profile: the materialized views the source had populated, which the data file leaves empty (pg_dump --data-only writes no REFRESH), in the order a restore refreshes them after the data: each after every materialized view it reads. Absent in manifests written before it was recorded: nothing is refreshed.',
    ),
  timings: z.object({ dumpMs: z.number().nonnegative(), totalMs: z.number().nonnegative() }),
});

export type Manifest = z.infer<typeof manifestSchema>;

export function manifestProfile(manifest: Manifest): BackupProfile {
  return manifest.profile ?? 'default';
}
export type ManifestFile = z.infer<typeof manifestFileSchema>;

/**
 * `<target>/<yyyy>/<mm>/<run-id>/attempt-<n>/`, dated by the run's creation (database clock,
 * UTC). Each attempt writes its own prefix: leases fence the catalog but cannot fence an
 * object store, so a stale attempt that wakes up must never be able to overwrite or delete
 * the files of the attempt that replaced it.
 */
export function artifactPrefix(target: string, createdAt: string, runId: string, attempt: number): string {
  const date = new Date(createdAt);
  const month = String(date.getUTCMonth() + 1).padStart(2, '0');
  return `${target}/${date.getUTCFullYear()}/${month}/${runId}/attempt-${attempt}/`;
}
