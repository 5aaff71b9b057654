/**
 * Up to `count` items of a newest-first listing (runs, audit entries), read a page at a time
 * (at most `pageSize` each, the API's limit) by following `nextCursor`.
 */
export async function readPages<T>(
  count: number,
  pageSize: number,
  page: (limit: number, cursor: string | undefined) => Promise<{ items: T[]; nextCursor: string | null }>,
): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const next = await page(Math.min(pageSize, count - items.length), cursor);
    items.push(...next.items);
    cursor = next.nextCursor ?? undefined;
  } while (cursor && items.length < count);
  return items;
}
