import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assessTargetHealth, type TargetHealthInput } from '../src/core/targetHealth.ts';

/** The overview's health rules, pure: a clock is passed in, no catalog needed. */

const HOUR = 3_600_000;
const now = Date.parse('2026-03-10T12:30:00Z');
const daily = { cron: '0 3 * * *', timezone: 'UTC' };
const base: TargetHealthInput = {
  now,
  createdAt: now - 30 * 24 * HOUR,
  schedule: null,
  lastFinishedBackup: { status: 'succeeded', errorCode: null },
  newestGoodBackupAt: now - HOUR,
  lastVerification: null,
};

describe('target health', () => {
  it('ok when the last backup succeeded; on demand without a schedule', () => {
    assert.deepEqual(assessTargetHealth(base), { health: 'ok', reason: 'On demand only (no schedule).', nextScheduledAt: null });
  });

  it('failing when the last backup failed or timed out, naming the code; cancelled is not a failure', () => {
    const failed = assessTargetHealth({ ...base, lastFinishedBackup: { status: 'failed', errorCode: 'DUMP_FAILED' } });
    assert.equal(failed.health, 'failing');
    assert.match(failed.reason, /failed \(DUMP_FAILED\)/);
    assert.match(assessTargetHealth({ ...base, lastFinishedBackup: { status: 'timed_out', errorCode: 'LEASE_EXPIRED' } }).reason, /timed out/);
    assert.equal(assessTargetHealth({ ...base, lastFinishedBackup: { status: 'cancelled', errorCode: 'CANCELLED' } }).health, 'ok');
  });

  it('failing when the last restore drill failed', () => {
    assert.equal(assessTargetHealth({ ...base, lastVerification: { status: 'failed' } }).health, 'failing');
    assert.equal(assessTargetHealth({ ...base, lastVerification: { status: 'succeeded' } }).health, 'ok');
  });

  it('a daily schedule allows one slot of slack: stale only once the slot before the latest has no backup after it', () => {
    // Slots: 10 Mar 03:00 (latest), 9 Mar 03:00 (the one before).
    const at = (iso: string) => ({ ...base, schedule: daily, newestGoodBackupAt: Date.parse(iso) });
    assert.equal(assessTargetHealth(at('2026-03-10T03:01:00Z')).health, 'ok');
    assert.equal(assessTargetHealth(at('2026-03-09T03:05:00Z')).health, 'ok', 'yesterday’s backup, today’s may still be running');
    const stale = assessTargetHealth(at('2026-03-08T03:05:00Z'));
    assert.equal(stale.health, 'stale');
    assert.equal(stale.reason, 'No backup has succeeded in the last 2 scheduled slots.');
    assert.equal(stale.nextScheduledAt, Date.parse('2026-03-11T03:00:00Z'));
  });

  it('a new target is not stale before its schedule could have run; never backed up is "never"', () => {
    const fresh = { ...base, schedule: daily, createdAt: now - 2 * HOUR, newestGoodBackupAt: null, lastFinishedBackup: null };
    assert.equal(assessTargetHealth(fresh).health, 'never');
    assert.equal(assessTargetHealth({ ...fresh, createdAt: now - 3 * 24 * HOUR }).reason, 'Scheduled, but no backup has succeeded yet.');
  });

  it('a paused target has no next slot and is never stale; the reason says it is paused', () => {
    const missedSlots = { ...base, schedule: daily, newestGoodBackupAt: Date.parse('2026-03-01T03:05:00Z') };
    assert.equal(assessTargetHealth(missedSlots).health, 'stale');
    const paused = assessTargetHealth({ ...missedSlots, paused: true });
    assert.deepEqual(paused, { health: 'ok', reason: 'Paused: no scheduled backups until it is resumed.', nextScheduledAt: null });
    const pausedNever = assessTargetHealth({ ...missedSlots, paused: true, newestGoodBackupAt: null, lastFinishedBackup: null });
    assert.equal(pausedNever.health, 'never');
    assert.match(pausedNever.reason, /Paused/);
    assert.equal(assessTargetHealth({ ...missedSlots, paused: true, lastFinishedBackup: { status: 'failed', errorCode: 'DUMP_FAILED' } }).health, 'failing');
  });

  it('counts missed slots up to a bound', () => {
    const everyMinute = { ...base, schedule: { cron: '* * * * *', timezone: 'UTC' }, newestGoodBackupAt: now - 30 * 24 * HOUR };
    assert.equal(assessTargetHealth(everyMinute).reason, 'No backup has succeeded in the last 100 or more scheduled slots.');
  });
});
