import { signal } from '@angular/core';
import { firstValueFrom, type Observable } from 'rxjs';
import type { CursorPage } from './api-types';
import { toProblem, type Problem } from './problem';

/**
 * A cursor-paginated list as signals: `reset` loads the first page, `loadMore` appends the next one.
 * Only the pages asked for are ever loaded; a stale answer (after a newer reset) is dropped.
 */
export class CursorList<T> {
  readonly items = signal<T[]>([]);
  readonly loading = signal(false);
  readonly problem = signal<Problem | null>(null);
  readonly nextCursor = signal<string | null>(null);
  /** True once the first page answered (distinguishes "empty" from "not loaded yet"). */
  readonly loaded = signal(false);
  private generation = 0;

  constructor(private fetchPage: (cursor: string | null) => Observable<CursorPage<T>>) {}

  reset(fetchPage?: (cursor: string | null) => Observable<CursorPage<T>>): Promise<void> {
    if (fetchPage) this.fetchPage = fetchPage;
    this.generation++;
    this.items.set([]);
    this.nextCursor.set(null);
    this.loaded.set(false);
    return this.load(null);
  }

  loadMore(): Promise<void> {
    const cursor = this.nextCursor();
    if (!cursor || this.loading()) return Promise.resolve();
    return this.load(cursor);
  }

  /** Replaces one row in place (after an action on it). */
  replace(match: (item: T) => boolean, next: T): void {
    this.items.update((xs) => xs.map((x) => (match(x) ? next : x)));
  }

  remove(match: (item: T) => boolean): void {
    this.items.update((xs) => xs.filter((x) => !match(x)));
  }

  private async load(cursor: string | null): Promise<void> {
    const gen = this.generation;
    this.loading.set(true);
    this.problem.set(null);
    try {
      const page = await firstValueFrom(this.fetchPage(cursor));
      if (gen !== this.generation) return;
      this.items.update((xs) => [...xs, ...page.items]);
      this.nextCursor.set(page.nextCursor);
      this.loaded.set(true);
    } catch (err) {
      if (gen === this.generation) this.problem.set(toProblem(err));
    } finally {
      if (gen === this.generation) this.loading.set(false);
    }
  }
}
