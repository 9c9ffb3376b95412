import type { Page } from '@keyserver/data-access';
import { visiblePage } from './paging';

/** A repository stand-in over ids 1..n, newest first, paging by "cursor = last id seen". */
function source(n: number, pageSize: number) {
  const all = Array.from({ length: n }, (_, i) => ({ id: String(n - i) }));
  const reads: (string | undefined)[] = [];
  const fetch = async (cursor: string | undefined): Promise<Page<{ id: string }>> => {
    reads.push(cursor);
    const start = cursor === undefined ? 0 : all.findIndex((x) => x.id === cursor) + 1;
    const items = all.slice(start, start + pageSize);
    return { items, nextCursor: start + pageSize < all.length ? items[items.length - 1].id : null };
  };
  return { fetch, reads };
}

describe(visiblePage.name, () => {
  it('returns the first visible items and a cursor after the last one returned', async () => {
    const s = source(10, 4);
    const page = await visiblePage(s.fetch, (x) => Number(x.id) % 2 === 0, undefined, 3);
    expect(page.items.map((x) => x.id)).toEqual(['10', '8', '6']);
    expect(page.nextCursor).toBe('6');
    const next = await visiblePage(s.fetch, (x) => Number(x.id) % 2 === 0, page.nextCursor ?? undefined, 3);
    expect(next.items.map((x) => x.id)).toEqual(['4', '2']);
    expect(next.nextCursor).toBeNull();
  });

  it('reports no next cursor when the last visible item is the last item of the source', async () => {
    const s = source(4, 4);
    const page = await visiblePage(s.fetch, () => true, undefined, 4);
    expect(page).toEqual({ items: [{ id: '4' }, { id: '3' }, { id: '2' }, { id: '1' }], nextCursor: null });
  });

  it('stops after a bounded number of reads and hands back a cursor to continue from', async () => {
    const s = source(10_000, 10);
    const page = await visiblePage(s.fetch, () => false, undefined, 5);
    expect(page.items).toEqual([]);
    expect(s.reads).toHaveLength(20);
    expect(page.nextCursor).toBe(String(10_000 - 199)); // the 200th item seen
  });
});
