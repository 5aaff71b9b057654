import assert from 'node:assert/strict';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { collectHeapEvery } from '../src/pipeline/heapCollector.ts';

/** The collections V8 reports while `work` runs, by kind. */
async function collectionsDuring(work: () => void): Promise<{ minor: number; major: number }> {
  const entries: PerformanceEntry[] = [];
  const observer = new PerformanceObserver((list) => entries.push(...list.getEntries()));
  observer.observe({ entryTypes: ['gc'] });
  try {
    work();
    // Entries are delivered asynchronously.
    await delay(50);
  } finally {
    observer.disconnect();
  }
  const kinds = entries.map((entry) => (entry as PerformanceEntry & { detail: { kind: number } }).detail.kind);
  return {
    minor: kinds.filter((kind) => kind === constants.NODE_PERFORMANCE_GC_MINOR).length,
    major: kinds.filter((kind) => kind === constants.NODE_PERFORMANCE_GC_MAJOR).length,
  };
}

describe('heapCollector', () => {
  it('collects the young generation once per interval of bytes, without any command-line flag', async () => {
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'this process was started without --expose-gc');
    const collect = collectHeapEvery(1 << 20, 'minor');
    const seen = await collectionsDuring(() => {
      // 10 MiB in 64 KiB pieces: ten collections, not 160.
      for (let i = 0; i < 160; i++) collect(64 * 1024);
    });
    assert.ok(seen.minor >= 10 && seen.minor <= 15, `10 scavenges expected, saw ${seen.minor}`);
    assert.equal((globalThis as { gc?: unknown }).gc, undefined, 'gc stays off the global object');
  });

  it('collects the whole heap when asked for full collections', async () => {
    const collect = collectHeapEvery(1 << 20, 'major');
    const seen = await collectionsDuring(() => {
      for (let i = 0; i < 3; i++) collect(1 << 20);
    });
    assert.ok(seen.major >= 3, `3 full collections expected, saw ${seen.major}`);
  });

  it('does nothing below the interval', async () => {
    const collect = collectHeapEvery(1 << 30, 'major');
    const seen = await collectionsDuring(() => collect(1 << 20));
    assert.equal(seen.major, 0);
  });
});
