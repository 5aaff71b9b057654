import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { continuousRefusals, planPublication, poolerRefusal, type SourceFacts } from '../src/core/continuousRules.ts';
import { baseOnlyContent, restoreWindow, type WindowInput, type WindowSegment } from '../src/core/restoreWindow.ts';

const SLOT = 'backstop_0123';
const base = (runId: string, lsn: string, at: string) => ({ runId: `00000000-0000-4000-8000-00000000000${runId}`, slot: SLOT, lsn, at });
const segment = (startLsn: string, endLsn: string, firstCommitAt: string, lastCommitAt: string, extra: Partial<WindowSegment> = {}): WindowSegment => ({
  slot: SLOT,
  startLsn,
  endLsn,
  firstCommitAt,
  lastCommitAt,
  schemaChanges: [],
  ...extra,
});
const streaming = { state: 'streaming' as const, stoppedReason: null, stoppedAt: null, lastCommitAt: null, unprotectedTables: [] };
const input = (parts: Partial<WindowInput>): WindowInput => ({ now: '2026-01-01T00:10:00Z', bases: [], segments: [], stream: streaming, maxRpoSeconds: 3600, ...parts });
/** The limits' kinds, but for `base_only`, which every running stream carries (tested on its own below). */
const kinds = (window: ReturnType<typeof restoreWindow>) => window.limits.filter((limit) => limit.kind !== 'base_only').map((limit) => limit.kind);

describe('the restorable window', () => {
  it('reaches from the oldest base to the last segment that chains on from it', () => {
    const window = restoreWindow(
      input({
        bases: [base('1', '0/1000', '2026-01-01T00:00:00Z')],
        segments: [
          // Before the base: the chain starts at the one that covers the base's LSN.
          segment('0/500', '0/900', '2025-12-31T23:59:00Z', '2025-12-31T23:59:30Z'),
          segment('0/900', '0/1500', '2026-01-01T00:00:10Z', '2026-01-01T00:01:00Z'),
          segment('0/1500', '0/2000', '2026-01-01T00:01:10Z', '2026-01-01T00:05:00Z'),
          // Another slot's segment (an earlier stream) never extends this base.
          segment('0/2000', '0/9000', '2026-01-01T00:05:10Z', '2026-01-01T00:09:00Z', { slot: 'backstop_other' }),
        ],
      }),
    );
    assert.equal(window.from?.lsn, '0/1000');
    assert.equal(window.from?.at, '2026-01-01T00:00:00Z');
    assert.deepEqual(window.to, { at: '2026-01-01T00:05:00Z', lsn: '0/2000' });
    assert.equal(window.ranges.length, 1);
    assert.deepEqual(kinds(window), []);
    assert.equal(window.rpoSeconds, 60, 'the newest stored commit of any slot counts for the RPO');
  });

  it('reports a break in the chain as a gap, closed only by a later base backup', () => {
    const window = restoreWindow(
      input({
        bases: [base('1', '0/1000', '2026-01-01T00:00:00Z'), base('2', '0/5000', '2026-01-01T00:06:00Z')],
        segments: [
          segment('0/1000', '0/2000', '2026-01-01T00:00:10Z', '2026-01-01T00:01:00Z'),
          // 0/2000 → 0/3000 missing: transactions there may be lost.
          segment('0/3000', '0/4000', '2026-01-01T00:03:00Z', '2026-01-01T00:04:00Z'),
          segment('0/4000', '0/6000', '2026-01-01T00:05:00Z', '2026-01-01T00:08:00Z'),
        ],
      }),
    );
    assert.equal(window.ranges.length, 2);
    assert.deepEqual(window.ranges[0]!.to, { at: '2026-01-01T00:01:00Z', lsn: '0/2000' });
    assert.deepEqual(window.ranges[1]!.from.lsn, '0/5000');
    assert.deepEqual(window.to, { at: '2026-01-01T00:08:00Z', lsn: '0/6000' });
    const gap = window.limits.find((limit) => limit.kind === 'gap');
    assert.ok(gap && gap.kind === 'gap');
    assert.equal(gap.from.at, '2026-01-01T00:01:00Z');
    assert.equal(gap.to.at, '2026-01-01T00:06:00Z');
  });

  it('says so when the newest segments do not chain on from any base', () => {
    const window = restoreWindow(
      input({
        bases: [base('1', '0/1000', '2026-01-01T00:00:00Z')],
        // The first segment after the base starts after its LSN: changes in between may be lost.
        segments: [segment('0/1800', '0/2000', '2026-01-01T00:02:00Z', '2026-01-01T00:03:00Z')],
      }),
    );
    assert.deepEqual(window.to, { at: '2026-01-01T00:00:00Z', lsn: '0/1000' });
    assert.deepEqual(kinds(window), ['gap']);
    assert.match(window.limits[0]!.message, /breaks after 0\/1000.*0\/1800/);
  });

  it('says where replay crosses a schema change, and that a base taken after it clears it for later points', () => {
    const changed = segment('0/1000', '0/2000', '2026-01-01T00:00:10Z', '2026-01-01T00:01:00Z', { schemaChanges: ['public.items'] });
    const later = segment('0/2000', '0/3000', '2026-01-01T00:01:10Z', '2026-01-01T00:05:00Z');
    const before = restoreWindow(input({ bases: [base('1', '0/1000', '2026-01-01T00:00:00Z')], segments: [changed, later] }));
    const crossing = before.limits.find((limit) => limit.kind === 'schema_change');
    assert.ok(crossing?.kind === 'schema_change');
    assert.equal(crossing.clearedBy, null);
    assert.deepEqual(crossing.tables, ['public.items']);
    assert.match(crossing.message, /public\.items changed between 2026-01-01T00:00:10Z and 2026-01-01T00:01:00Z.*until a base backup taken after it succeeds/);

    const rebased = restoreWindow(input({ bases: [base('1', '0/1000', '2026-01-01T00:00:00Z'), base('2', '0/2500', '2026-01-01T00:02:00Z')], segments: [changed, later] }));
    const cleared = rebased.limits.find((limit) => limit.kind === 'schema_change');
    assert.ok(cleared?.kind === 'schema_change');
    assert.deepEqual(cleared.clearedBy, { at: '2026-01-01T00:02:00Z', lsn: '0/2500', runId: base('2', '0/2500', '2026-01-01T00:02:00Z').runId });
    assert.match(cleared.message, /before 2026-01-01T00:02:00Z replays across it.*from 2026-01-01T00:02:00Z on, base backup \S+2 restores without crossing it/);

    // A base inside the changed segment does not have the new shape for certain: it clears nothing.
    const inside = restoreWindow(input({ bases: [base('1', '0/1000', '2026-01-01T00:00:00Z'), base('2', '0/1800', '2026-01-01T00:00:30Z')], segments: [changed, later] }));
    assert.equal(
      inside.limits.find((limit) => limit.kind === 'schema_change' && limit.clearedBy !== null),
      undefined,
    );

    // Once the bases before the change are pruned, nothing restorable crosses it: no limit.
    const pruned = restoreWindow(input({ bases: [base('2', '0/2500', '2026-01-01T00:02:00Z')], segments: [changed, later] }));
    assert.deepEqual(kinds(pruned), []);
  });

  it('names every limit: no base, starting, stopped, unprotected tables, schema changes, RPO', () => {
    const empty = restoreWindow(input({ stream: { ...streaming, state: 'starting' } }));
    assert.equal(empty.from, null);
    assert.deepEqual(kinds(empty), ['no_base', 'starting']);

    const limited = restoreWindow(
      input({
        now: '2026-01-01T02:00:00Z',
        maxRpoSeconds: 300,
        bases: [base('1', '0/1000', '2026-01-01T00:00:00Z')],
        segments: [segment('0/1000', '0/2000', '2026-01-01T00:00:10Z', '2026-01-01T00:01:00Z', { schemaChanges: ['public.items'] })],
        stream: {
          ...streaming,
          lastCommitAt: '2026-01-01T00:01:00Z',
          unprotectedTables: [{ schema: 'public', table: 'logs', reason: 'no primary key', fix: 'ALTER TABLE …' }],
        },
      }),
    );
    assert.deepEqual(kinds(limited), ['unprotected_tables', 'schema_change', 'rpo']);
    assert.match(limited.limits[0]!.message, /public\.logs/);
    assert.equal(limited.rpoSeconds, 7140);

    const stopped = restoreWindow(input({ stream: { ...streaming, state: 'stopped', stoppedReason: 'slot over its limit', stoppedAt: '2026-01-01T00:02:00Z' } }));
    assert.ok(kinds(stopped).includes('stream_stopped'));
    assert.match(stopped.limits.find((limit) => limit.kind === 'stream_stopped')!.message, /slot over its limit/);
  });

  it('measures the RPO from the recovery point: a quiet source the streamer is caught up with is not late', () => {
    const quiet = restoreWindow(
      input({
        now: '2026-01-01T02:00:00Z',
        maxRpoSeconds: 300,
        bases: [base('1', '0/1000', '2026-01-01T00:00:00Z')],
        segments: [segment('0/1000', '0/2000', '2026-01-01T00:00:10Z', '2026-01-01T00:01:00Z')],
        stream: { ...streaming, lastCommitAt: '2026-01-01T00:01:00Z', recoveryPoint: '2026-01-01T01:59:58Z' },
      }),
    );
    assert.equal(quiet.rpoSeconds, 2);
    assert.deepEqual(kinds(quiet), []);
    const late = restoreWindow(
      input({
        now: '2026-01-01T02:00:00Z',
        maxRpoSeconds: 300,
        bases: [base('1', '0/1000', '2026-01-01T00:00:00Z')],
        stream: { ...streaming, lastCommitAt: null, recoveryPoint: '2026-01-01T01:50:00Z' },
      }),
    );
    assert.equal(late.rpoSeconds, 600);
    assert.match(late.limits.find((limit) => limit.kind === 'rpo')!.message, /nothing committed after 2026-01-01T01:50:00Z is known to be stored: 600 s, over the bound of 300 s/);
  });

  it('says what a restore holds as of its base backup only, for every running stream', () => {
    const plain = restoreWindow(input({ baseOnly: baseOnlyContent(undefined) }));
    const said = plain.limits.find((limit) => limit.kind === 'base_only');
    assert.deepEqual(said && 'what' in said ? said.what : null, ['large objects', 'schema changes (DDL)']);
    assert.match(said!.message, /restored as of the base backup before the point: large objects, schema changes \(DDL\); sequences are set to at least every value used/);
    const supabase = restoreWindow(input({ baseOnly: baseOnlyContent('supabase') }));
    assert.match(supabase.limits.find((limit) => limit.kind === 'base_only')!.message, /roles, Storage objects/);
    const stopped = restoreWindow(input({ stream: { ...streaming, state: 'stopped', stoppedReason: 'turned off', stoppedAt: '2026-01-01T00:02:00Z' } }));
    assert.equal(
      stopped.limits.find((limit) => limit.kind === 'base_only'),
      undefined,
      'nothing streams: nothing to say of the stream',
    );
  });
});

describe('what a continuous target follows and refuses', () => {
  it('publishes tables with a key or a replica identity, never one whose UPDATE or DELETE would then fail', () => {
    const plan = planPublication(
      [
        { schema: 'public', table: 'items', replicaIdentity: 'd', hasPrimaryKey: true },
        { schema: 'public', table: 'logs', replicaIdentity: 'd', hasPrimaryKey: false },
        { schema: 'public', table: 'events', replicaIdentity: 'f', hasPrimaryKey: false },
        { schema: 'public', table: 'byindex', replicaIdentity: 'i', hasPrimaryKey: false },
        { schema: 'Odd', table: 'Nothing', replicaIdentity: 'n', hasPrimaryKey: true },
      ],
      null,
    );
    assert.deepEqual(
      plan.published.map((table) => table.table),
      ['items', 'events', 'byindex'],
    );
    assert.deepEqual(
      plan.unprotected.map((table) => [table.table, /NOTHING/.test(table.reason)]),
      [
        ['logs', false],
        ['Nothing', true],
      ],
    );
    assert.match(plan.unprotected[0]!.fix, /ALTER TABLE public\.logs REPLICA IDENTITY FULL/);
    assert.match(plan.unprotected[1]!.fix, /"Odd"\."Nothing"/);
    const chosen = planPublication([{ schema: 'public', table: 'items', replicaIdentity: 'd', hasPrimaryKey: true }], ['public.items', 'public.gone']);
    assert.deepEqual(chosen.missing, ['public.gone']);
  });

  it('tells a pooler by its URL: Supabase pooler host, port 6543 or 6432', () => {
    assert.match(poolerRefusal('postgres://u:p@aws-0-eu-west-1.pooler.supabase.com:5432/postgres')!, /db\.<project-ref>\.supabase\.co:5432/);
    assert.match(poolerRefusal('postgres://u:p@db.example.com:6543/app')!, /port 6543/);
    assert.match(poolerRefusal('postgres://u:p@db.example.com:6432/app')!, /PgBouncer/);
    assert.equal(poolerRefusal('postgres://u:p@db.abcdefghij.supabase.co:5432/postgres'), null);
    assert.equal(poolerRefusal('postgres://u:p@localhost/app'), null);
  });

  it('refuses with the setting to change, per platform', () => {
    const facts: SourceFacts = {
      walLevel: 'logical',
      role: 'app',
      superuser: false,
      replication: true,
      rdsReplication: false,
      platform: 'other',
      maxReplicationSlots: 10,
      usedReplicationSlots: 0,
      maxWalSenders: 10,
      usedWalSenders: 0,
      slotExists: false,
    };
    assert.deepEqual(continuousRefusals(facts, 's'), []);
    assert.match(continuousRefusals({ ...facts, walLevel: 'replica' }, 's')[0]!, /ALTER SYSTEM SET wal_level = logical/);
    assert.match(continuousRefusals({ ...facts, walLevel: 'replica', platform: 'rds' }, 's')[0]!, /rds\.logical_replication = 1/);
    assert.match(continuousRefusals({ ...facts, walLevel: 'replica', platform: 'cloudsql' }, 's')[0]!, /cloudsql\.logical_decoding/);
    assert.match(continuousRefusals({ ...facts, replication: false }, 's')[0]!, /ALTER ROLE app WITH REPLICATION/);
    assert.deepEqual(continuousRefusals({ ...facts, replication: false, rdsReplication: true, platform: 'rds' }, 's'), []);
    assert.match(continuousRefusals({ ...facts, usedReplicationSlots: 9 }, 's')[0]!, /max_replication_slots is 10 and 9 are in use/);
    assert.match(continuousRefusals({ ...facts, usedWalSenders: 9 }, 's')[0]!, /max_wal_senders/);
    assert.match(continuousRefusals({ ...facts, slotExists: true }, 'backstop_x')[0]!, /pg_drop_replication_slot\('backstop_x'\)/);
    assert.deepEqual(continuousRefusals({ ...facts, slotExists: true }, 'backstop_x', true), [], "a continuous target's own slot");
  });
});
