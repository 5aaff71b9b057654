import type { Logger } from 'pino';
import type { AlarmConfig } from '../core/config.ts';
import { formatDuration } from '../core/alarms.ts';
import { listAlarmChannels } from '../db/alarms.ts';
import type { Queryable } from '../db/pool.ts';
import type { ChannelSettings } from '../core/channelSettings.ts';
import { guardedFetch } from '../net/outboundGuard.ts';
import { deliverToChannel, type Fetch } from '../operations/deliverNotification.ts';
import { startPeriodicTask } from './periodicTask.ts';

export interface CatalogWatch {
  /** One probe now (also what the timer calls); answers whether the catalog answered. */
  probeOnce(): Promise<boolean>;
  stop(): Promise<void>;
}

/**
 * A worker's own alarm for the one thing the catalog cannot alarm about: itself. The outbox
 * lives in the catalog, so when a worker cannot reach it for `catalogUnreachableMs` it sends
 * `catalog_unreachable` straight to the alarm channels it read while the catalog answered
 * (kept in memory, refreshed by every probe), repeats it every `repeatMs`, and sends the
 * recovery once a probe gets through. Each worker speaks for itself: with the catalog gone
 * there is nothing to agree through, so N workers send N alarms, each naming its worker.
 * Time is measured on the monotonic clock: the wall clock may jump while we wait.
 */
export function startCatalogWatch(deps: { db: Queryable; log: Logger; workerName: string; fetch?: Fetch }, config: AlarmConfig): CatalogWatch {
  const log = deps.log.child({ component: 'catalog-watch' });
  const doFetch = deps.fetch ?? guardedFetch;
  const afterMs = config.catalogUnreachableMs;
  let channels: { id: string; settings: ChannelSettings }[] = [];
  let lastReached = performance.now();
  let downSince: number | null = null;
  let sent: { at: number; count: number } | null = null;
  let deliveries = 0;

  const send = async (event: 'alarm' | 'alarm_cleared', what: string): Promise<boolean> => {
    const payload = {
      target: null,
      worker: deps.workerName,
      alarm: {
        kind: 'catalog_unreachable',
        what,
        since: new Date(downSince ?? Date.now()).toISOString(),
        whatToDo: 'Check that the catalog database is up and reachable from this worker (BACKSTOP_DATABASE_URL, network, credentials); runs cannot start or finish until it is.',
        link: null,
        sentCount: (sent?.count ?? 0) + (event === 'alarm' ? 1 : 0),
      },
      event,
      at: new Date().toISOString(),
    };
    const results = await Promise.all(
      channels.map((channel) => deliverToChannel(doFetch, { id: `${deps.workerName}/${++deliveries}`, event, payload }, channel.settings, { timeoutMs: 10_000, publicUrl: null })),
    );
    results.forEach((result, index) => {
      if (result.error) log.warn({ channel: channels[index]!.id, event, error: result.error }, 'could not deliver the catalog alarm');
    });
    // Told nobody: try again at the next probe rather than count it as sent.
    return channels.length === 0 || results.some((result) => result.error === null);
  };

  const probe = async (): Promise<boolean> => {
    try {
      const known = await listAlarmChannels(deps.db);
      if (known.length !== channels.length) log.info({ channels: known.length }, 'alarm channels known');
      channels = known;
    } catch (error) {
      const now = performance.now();
      downSince ??= Date.now() - (now - lastReached);
      const downMs = now - lastReached;
      if (downMs >= afterMs && (sent === null || (config.repeatMs > 0 && now - sent.at >= config.repeatMs))) {
        log.error({ err: error, downForMs: Math.round(downMs) }, 'the catalog is unreachable; alarming');
        const what = `Worker ${deps.workerName} cannot reach the catalog since ${new Date(downSince).toISOString()} (${formatDuration(downMs)}).`;
        if (await send('alarm', what)) sent = { at: now, count: (sent?.count ?? 0) + 1 };
      }
      return false;
    }
    lastReached = performance.now();
    if (sent !== null) {
      const since = downSince;
      log.info('the catalog answers again; sending the recovery');
      await send('alarm_cleared', `Worker ${deps.workerName} reaches the catalog again (unreachable since ${new Date(since ?? Date.now()).toISOString()}).`);
      sent = null;
    }
    downSince = null;
    return true;
  };

  // Often enough to notice within a fraction of the bound, rarely enough to cost nothing.
  const intervalMs = Math.max(100, Math.min(config.intervalMs, afterMs / 4));
  const task = startPeriodicTask(intervalMs, probe, { firstDelayMs: 0 });
  return { probeOnce: task.runOnce, stop: task.stop };
}
