import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readManifest } from '../src/pipeline/readManifest.ts';
import { restoreArtifact } from '../src/pipeline/restore.ts';
import { backupSupabase } from '../src/pipeline/supabaseSource/backupSupabase.ts';
import { materializedViewRefreshOrder, refreshMaterializedViewsSql, type SourceRelation } from '../src/pipeline/supabaseSource/materializedViews.ts';
import { verifyArtifact } from '../src/pipeline/verify.ts';
import { localStore } from '../src/storage/localStore.ts';
import type { Store } from '../src/storage/store.ts';
import { adminQuery, adminUrl, type TestDatabase } from './support/pg.ts';
import { createSupabaseProject } from './support/supabase.ts';

describe('Supabase profile: the order materialized views are refreshed in', () => {
  const relation = (oid: number, name: string, kind: SourceRelation['kind'], populated = true, schema = 'public'): SourceRelation => ({ oid, schema, name, kind, populated });

  it('each after every materialized view it reads, directly or through views; unpopulated and managed ones left out', () => {
    const relations = [
      relation(1, 'a_top', 'materialized view'),
      relation(2, 'b_ranking', 'materialized view'),
      relation(3, 'big_regions', 'view'),
      relation(4, 'c_by_region', 'materialized view'),
      relation(5, 'never_filled', 'materialized view', false),
      relation(6, 'reads_never_filled', 'materialized view'),
      relation(7, 'platform_stats', 'materialized view', true, 'auth'),
      relation(8, 'reads_platform', 'materialized view'),
    ];
    const dependencies = [
      { dependent: 1, dependency: 2 },
      { dependent: 2, dependency: 3 },
      { dependent: 3, dependency: 4 },
      { dependent: 4, dependency: 100 },
      { dependent: 6, dependency: 5 },
      { dependent: 8, dependency: 7 },
      { dependent: 1, dependency: 1 },
    ];
    assert.deepEqual(
      materializedViewRefreshOrder(relations, dependencies).map((view) => view.name),
      ['c_by_region', 'b_ranking', 'a_top', 'reads_platform'],
    );
    assert.equal(refreshMaterializedViewsSql([]), null);
    assert.equal(
      refreshMaterializedViewsSql([
        { schema: 'public', name: 'plain' },
        { schema: 'odd"schema', name: 'a "quoted"; name' },
      ]),
      'REFRESH MATERIALIZED VIEW "public"."plain";\nREFRESH MATERIALIZED VIEW "odd""schema"."a ""quoted""; name";',
    );
  });
});

describe('Supabase profile: materialized views answer queries after a restore', () => {
  let source: TestDatabase;
  let workDir: string;
  let store: Store;
  const drops: Array<() => Promise<void>> = [];

  before(async () => {
    workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'backstop-supabase-matviews-'));
    store = localStore(path.join(workDir, 'store'));
    source = await createSupabaseProject('supabase_mv_src');
    // Named so that alphabetical order is the wrong one: a_top_region reads b_region_ranking,
    // which reads c_sales_by_region through a plain view.
    await adminQuery(
      `create table public.sales (id bigint generated always as identity primary key, region text not null, amount numeric not null);
       insert into public.sales (region, amount) select 'region ' || (i % 7), i * 1.25 from generate_series(1, 700) i;
       create materialized view public.c_sales_by_region as select region, sum(amount) as total, count(*) as sales from public.sales group by region;
       create view public.big_regions as select region, total from public.c_sales_by_region where sales >= 100;
       create materialized view public.b_region_ranking as select region, rank() over (order by total desc) as rank from public.big_regions;
       create materialized view public.a_top_region as select region from public.b_region_ranking where rank = 1;
       create materialized view public.never_filled as select count(*) as sales from public.sales with no data;`,
      [],
      source.url,
    );
  });
  after(async () => {
    for (const drop of drops) await drop().catch(() => {});
    await source?.drop();
    await store?.close();
    if (workDir) await fs.rm(workDir, { recursive: true, force: true });
  });

  const views = ['a_top_region', 'b_region_ranking', 'c_sales_by_region'];
  const contents = async (url: string) => {
    const result: Record<string, unknown> = {};
    for (const view of views) result[view] = await adminQuery(`select * from public.${view} order by 1`, [], url);
    return result;
  };

  it('refreshes, after the data and in dependency order, the ones the source had populated, and only those', async () => {
    const artifact = await backupSupabase({
      runId: randomUUID(),
      attempt: 1,
      targetName: 'supabase-matviews',
      createdAt: new Date().toISOString(),
      databaseUrl: source.url,
      store,
      signal: new AbortController().signal,
    });
    const { manifest } = await readManifest(store, artifact.prefix);
    assert.deepEqual(
      manifest.materializedViews?.map((view) => `${view.schema}.${view.name}`),
      ['public.c_sales_by_region', 'public.b_region_ranking', 'public.a_top_region'],
    );

    const target = await createSupabaseProject('supabase_mv_dst');
    drops.push(target.drop);
    await restoreArtifact({ store, prefix: artifact.prefix, manifest, toUrl: target.url });
    const restored = await contents(target.url);
    assert.deepEqual(restored, await contents(source.url));
    assert.equal((restored.c_sales_by_region as unknown[]).length, 7);
    assert.equal((restored.a_top_region as unknown[]).length, 1);
    const populated = await adminQuery<{ matviewname: string; ispopulated: boolean }>(
      `select matviewname, ispopulated from pg_matviews where schemaname = 'public' order by 1`,
      [],
      target.url,
    );
    assert.deepEqual(
      populated.map((row) => [row.matviewname, row.ispopulated]),
      [
        ['a_top_region', true],
        ['b_region_ranking', true],
        ['c_sales_by_region', true],
        ['never_filled', false],
      ],
    );

    // A drill restores as a role that owns only its scratch database: it refreshes them too.
    const drill = await verifyArtifact({
      store,
      prefix: artifact.prefix,
      manifest,
      scratchServer: { url: adminUrl(), privilegedOk: 'postgres' },
      sourceUrl: source.url,
      afterRestore: async (scratchUrl) => assert.deepEqual(await contents(scratchUrl), await contents(source.url)),
    });
    assert.equal(drill.status, 'passed', JSON.stringify(drill.error));
  });
});
