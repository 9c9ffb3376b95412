import { TestBed } from '@angular/core/testing';
import { MAT_DIALOG_DATA, MatDialogRef } from '@angular/material/dialog';
import { RejectDialogComponent } from './reject-dialog.component';

describe(RejectDialogComponent.name, () => {
  let closed: unknown[];

  async function render() {
    closed = [];
    TestBed.configureTestingModule({
      providers: [
        { provide: MAT_DIALOG_DATA, useValue: { description: 'Sign firmware 1.2.3' } },
        { provide: MatDialogRef, useValue: { close: (v: unknown) => closed.push(v) } },
      ],
    });
    const f = TestBed.createComponent(RejectDialogComponent);
    await f.whenStable();
    return f;
  }

  function type(el: HTMLElement, value: string) {
    const ta = el.querySelector('textarea') as HTMLTextAreaElement;
    ta.value = value;
    ta.dispatchEvent(new Event('input'));
  }

  it('has a labelled reason field', async () => {
    const f = await render();
    const el = f.nativeElement as HTMLElement;
    expect(el.querySelector('mat-label')?.textContent).toContain('Reason');
    expect(el.querySelector('textarea')?.getAttribute('id')).toBeTruthy();
  });

  it.each([
    ['fail empty', ''],
    ['fail blanks only', '    '],
    ['fail too short', 'no'],
  ])('%s: does not close and shows an error', async (_n, value) => {
    const f = await render();
    const el = f.nativeElement as HTMLElement;
    type(el, value);
    (el.querySelector('button[type="submit"]') as HTMLButtonElement).click();
    await f.whenStable();
    expect(closed).toEqual([]);
    expect(el.querySelector('mat-error')).not.toBeNull();
  });

  it('ok closes with the trimmed reason', async () => {
    const f = await render();
    const el = f.nativeElement as HTMLElement;
    type(el, '  wrong digest  ');
    (el.querySelector('button[type="submit"]') as HTMLButtonElement).click();
    expect(closed).toEqual(['wrong digest']);
  });
});
