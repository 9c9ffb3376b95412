import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';
import { opKey, operation } from '../../../testing/fixtures';
import { OPERATION_POLL_MS, OperationDetailComponent } from './operation-detail.component';

describe(OperationDetailComponent.name, () => {
  let ctrl: HttpTestingController;

  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: ['queueMicrotask', 'nextTick'] });
    TestBed.configureTestingModule({ providers: [provideHttpClient(), provideHttpClientTesting(), provideRouter([])] });
    ctrl = TestBed.inject(HttpTestingController);
  });

  afterEach(() => {
    ctrl.verify();
    jest.useRealTimers();
  });

  async function flushMicrotasks(): Promise<void> {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  }
  const url = `/api/v1/operations/${operation().id}`;

  it('polls an open operation so usage counts stay live, and stops once it is closed or left', async () => {
    const f = TestBed.createComponent(OperationDetailComponent);
    f.componentRef.setInput('id', operation().id);
    f.detectChanges();
    ctrl.expectOne(url).flush(operation({ state: 'APPROVED' }));
    await flushMicrotasks();
    f.detectChanges();
    expect((f.nativeElement as HTMLElement).textContent).toContain('2 / 10');

    jest.advanceTimersByTime(OPERATION_POLL_MS);
    ctrl.expectOne(url).flush(operation({ state: 'APPROVED', keys: [opKey({ usagesUsed: 7, approvals: 2, approvalsMissing: 0 })] }));
    await flushMicrotasks();
    f.detectChanges();
    expect((f.nativeElement as HTMLElement).textContent).toContain('7 / 10');

    jest.advanceTimersByTime(OPERATION_POLL_MS);
    ctrl.expectOne(url).flush(operation({ state: 'EXHAUSTED' }));
    await flushMicrotasks();
    jest.advanceTimersByTime(OPERATION_POLL_MS * 3);
    ctrl.expectNone(url);
    f.destroy();
  });

  it('stops polling when the page is left', async () => {
    const f = TestBed.createComponent(OperationDetailComponent);
    f.componentRef.setInput('id', operation().id);
    f.detectChanges();
    ctrl.expectOne(url).flush(operation());
    await flushMicrotasks();
    f.destroy();
    jest.advanceTimersByTime(OPERATION_POLL_MS * 3);
    ctrl.expectNone(url);
  });

  it('shows a missing operation in plain words without polling', async () => {
    const f = TestBed.createComponent(OperationDetailComponent);
    f.componentRef.setInput('id', operation().id);
    f.detectChanges();
    ctrl.expectOne(url).flush({ type: 'about:blank', title: 'Not found', status: 404, code: 'operation_not_found' }, { status: 404, statusText: 'Not Found' });
    await flushMicrotasks();
    f.detectChanges();
    expect((f.nativeElement as HTMLElement).querySelector('[role="alert"]')?.getAttribute('data-code')).toBe('operation_not_found');
    jest.advanceTimersByTime(OPERATION_POLL_MS * 2);
    ctrl.expectNone(url);
    f.destroy();
  });
});
