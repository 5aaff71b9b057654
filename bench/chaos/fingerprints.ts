import pg from 'pg';

/** Per table: row count and an order-independent digest of every row's text form. */
export type Fingerprints = Record<string, { rows: number; md5: string }>;

/**
 * Row count and digest of every listed table (names as SQL: qualified, quoted where needed),
 * read by the client's current transaction: one snapshot when it is a repeatable-read one.
 */
export async function fingerprintTables(client: pg.ClientBase, tables: string[]): Promise<Fingerprints> {
  const result: Fingerprints = {};
  for (const table of tables) {
    const { rows } = await client.query<{ rows: string; md5: string }>(`select count(*) as rows, coalesce(md5(string_agg(t::text, '|' order by t::text)), '') as md5 from ${table} t`);
    result[table] = { rows: Number(rows[0]!.rows), md5: rows[0]!.md5 };
  }
  return result;
}

/** What a database holds, to compare a restored copy with its source (plain SQL, no Backstop code). */
export async function tableFingerprints(url: string): Promise<Fingerprints> {
  const client = new pg.Client({ connectionString: url, application_name: 'backstop-chaos' });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rows: tables } = await client.query<{ schema: string; name: string }>(
      `select table_schema as schema, table_name as name from information_schema.tables
       where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema') order by 1, 2`,
    );
    const result: Fingerprints = {};
    for (const table of tables) {
      const qualified = `${client.escapeIdentifier(table.schema)}.${client.escapeIdentifier(table.name)}`;
      result[`${table.schema}.${table.name}`] = (await fingerprintTables(client, [qualified]))[qualified]!;
    }
    return result;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Differences between two fingerprints, one line each; empty when equal. */
export function compareFingerprints(expected: Fingerprints, actual: Fingerprints): string[] {
  const problems: string[] = [];
  for (const table of new Set([...Object.keys(expected), ...Object.keys(actual)])) {
    const want = expected[table];
    const got = actual[table];
    if (!want) problems.push(`${table}: not in the source`);
    else if (!got) problems.push(`${table}: missing`);
    else if (want.rows !== got.rows) problems.push(`${table}: ${got.rows} rows, the source has ${want.rows}`);
    else if (want.md5 !== got.md5) problems.push(`${table}: same row count, different content`);
  }
  return problems;
}
