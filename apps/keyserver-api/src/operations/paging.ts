import type { Page } from '@keyserver/data-access';

/** How many repository pages one request may scan to fill a page of visible items. */
const MAX_SCANS = 20;

/**
 * Fills one page with the items the caller may see: reads repository pages from `cursor` and keeps the
 * visible ones. The returned cursor is the id of the last item looked at, so the next page starts after it.
 */
export async function visiblePage<T extends { id: string }>(
  fetch: (cursor: string | undefined) => Promise<Page<T>>,
  visible: (item: T) => boolean,
  cursor: string | undefined,
  limit: number,
): Promise<{ items: T[]; nextCursor: string | null }> {
  const items: T[] = [];
  let at = cursor;
  for (let scan = 0; scan < MAX_SCANS; scan++) {
    const page = await fetch(at);
    for (let i = 0; i < page.items.length; i++) {
      const item = page.items[i];
      if (visible(item)) items.push(item);
      if (items.length === limit) {
        const more = i < page.items.length - 1 || page.nextCursor !== null;
        return { items, nextCursor: more ? item.id : null };
      }
    }
    if (page.nextCursor === null) return { items, nextCursor: null };
    at = page.nextCursor;
  }
  return { items, nextCursor: at ?? null };
}
