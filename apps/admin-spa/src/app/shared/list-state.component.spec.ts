import { TestBed } from '@angular/core/testing';
import { HttpErrorResponse } from '@angular/common/http';
import { of, throwError } from 'rxjs';
import { CursorList } from '../core/cursor-list';
import { ListStateComponent } from './list-state.component';

describe(ListStateComponent.name, () => {
  async function render(inputs: Record<string, unknown>) {
    const fixture = TestBed.createComponent(ListStateComponent);
    for (const [k, v] of Object.entries(inputs)) fixture.componentRef.setInput(k, v);
    await fixture.whenStable();
    return { fixture, el: fixture.nativeElement as HTMLElement };
  }
  const button = (el: HTMLElement, text: string) => [...el.querySelectorAll('button')].find((b) => b.textContent?.trim() === text);

  it('takes count, paging and "Load more" from a cursor list', async () => {
    const list = new CursorList<number>((c) => of(c === null ? { items: [1, 2], nextCursor: 'c2' } : { items: [3], nextCursor: null }));
    await list.reset();
    const { fixture, el } = await render({ list, emptyText: 'None.' });
    expect(el.querySelector('.load-more')?.textContent).toContain('2 shown');
    button(el, 'Load more')?.click();
    await fixture.whenStable();
    expect(list.items()).toEqual([1, 2, 3]);
    expect(el.querySelector('.load-more')).toBeNull();
    expect(el.textContent).toContain('3 shown, that is all.');
  });

  it("shows a cursor list's problem with a retry that the screen handles", async () => {
    const list = new CursorList<number>(() => throwError(() => new HttpErrorResponse({ status: 503, error: { code: 'hsm_unavailable', title: 'Unavailable', status: 503 } })));
    await list.reset();
    const { fixture, el } = await render({ list });
    let retried = 0;
    fixture.componentInstance.retry.subscribe(() => retried++);
    expect(el.querySelector('[role="alert"]')?.getAttribute('data-code')).toBe('hsm_unavailable');
    button(el, 'Try again')?.click();
    expect(retried).toBe(1);
  });

  it('says the list is empty only once it has loaded', async () => {
    const pending = await render({ loaded: false, count: 0, emptyText: 'No key is visible to you.' });
    expect(pending.el.querySelector('.empty')).toBeNull();
    const done = await render({ loaded: true, count: 0, emptyText: 'No key is visible to you.' });
    expect(done.el.querySelector('.empty')?.textContent).toBe('No key is visible to you.');
  });
});
