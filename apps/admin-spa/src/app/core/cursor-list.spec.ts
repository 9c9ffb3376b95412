import { Subject, of, throwError } from 'rxjs';
import { HttpErrorResponse } from '@angular/common/http';
import type { CursorPage } from './api-types';
import { CursorList } from './cursor-list';

describe(CursorList.name, () => {
  it('loads the first page, then appends the next one with its cursor', async () => {
    const cursors: (string | null)[] = [];
    const list = new CursorList<number>((c) => {
      cursors.push(c);
      return of(c === null ? { items: [1, 2], nextCursor: 'c2' } : { items: [3], nextCursor: null });
    });
    await list.reset();
    expect(list.items()).toEqual([1, 2]);
    expect(list.nextCursor()).toBe('c2');
    await list.loadMore();
    expect(list.items()).toEqual([1, 2, 3]);
    expect(list.nextCursor()).toBeNull();
    await list.loadMore(); // no more pages: no request
    expect(cursors).toEqual([null, 'c2']);
    expect(list.loaded()).toBe(true);
  });

  it('drops a stale answer after a newer reset', async () => {
    const first = new Subject<CursorPage<string>>();
    const second = new Subject<CursorPage<string>>();
    const queue = [first, second];
    const list = new CursorList<string>(() => queue.shift() as Subject<CursorPage<string>>);
    const a = list.reset();
    const b = list.reset();
    second.next({ items: ['new'], nextCursor: null });
    second.complete();
    first.next({ items: ['old'], nextCursor: 'x' });
    first.complete();
    await Promise.all([a, b]);
    expect(list.items()).toEqual(['new']);
    expect(list.nextCursor()).toBeNull();
  });

  it('keeps the problem of a failed page', async () => {
    const list = new CursorList<number>(() => throwError(() => new HttpErrorResponse({ status: 403, error: { type: 'x', title: 'No', status: 403, code: 'forbidden' } })));
    await list.reset();
    expect(list.problem()?.code).toBe('forbidden');
    expect(list.loading()).toBe(false);
    expect(list.loaded()).toBe(false);
  });
});
