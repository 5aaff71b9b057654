import type { Queryable } from '../db/pool.ts';
import { latestEventId, listEventsAfter, type FeedEvent } from '../db/runEventFeed.ts';

export type { FeedEvent } from '../db/runEventFeed.ts';

const PAGE = 500;

/** Up to 500 events of every run after `afterId`, in order, and where to read on. */
export async function readEventFeed(db: Queryable, afterId: number): Promise<{ events: FeedEvent[]; lastEventId: number }> {
  const events = await listEventsAfter(db, afterId, PAGE, 0);
  return { events, lastEventId: events.at(-1)?.id ?? afterId };
}

/** Where a feed opened "from now" starts: the newest event's id (0 when there is none). */
export async function newestEventId(db: Queryable): Promise<number> {
  return latestEventId(db);
}
