import { ApplicationRef, Component } from '@angular/core';
import { HttpClient, provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { Router, provideRouter } from '@angular/router';
import { App } from './app';
import { BrowserNavigation } from './core/browser-navigation';
import { sessionExpiryInterceptor } from './core/session-expiry.interceptor';
import { ME, keyclientMe, operation } from '../testing/fixtures';
import { ApprovalCountService } from './core/approval-count.service';

@Component({ selector: 'app-stub', template: 'stub' })
class StubComponent {}

describe(App.name, () => {
  let ctrl: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting(), provideRouter([]), { provide: BrowserNavigation, useValue: { assign: jest.fn(), currentPath: () => '/' } }],
    });
    ctrl = TestBed.inject(HttpTestingController);
  });

  afterEach(() => ctrl.verify());

  async function render(permissions: string[]) {
    const f = TestBed.createComponent(App);
    ctrl.expectOne('/me').flush(keyclientMe({ ...ME, permissions }));
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    return f.nativeElement as HTMLElement;
  }
  const navLabels = (el: HTMLElement) => [...el.querySelectorAll('nav[aria-label="Main"] a')].map((a) => a.textContent?.trim());

  it('shows an approver only what approvers may use, with the count of operations waiting for him', async () => {
    const el = await render(['self:read', 'keys:read', 'operations:read', 'operations:approve']);
    ctrl.expectOne('/api/v1/operations?awaiting=me&limit=100').flush({ items: [operation(), operation({ id: '99999999-9999-4999-8999-999999999999' })], nextCursor: null });
    await new Promise((r) => setTimeout(r));
    await TestBed.inject(ApplicationRef).whenStable();
    expect(navLabels(el)).toEqual(['My approvals2 (2 waiting)', 'Operations', 'Keys', 'Device certificates']);
    expect(el.querySelector('nav .count-badge')?.textContent).toBe('2');
    expect(el.querySelector('[role="status"]')?.textContent).toContain('2 operations waiting for your approval');
    expect(el.textContent).toContain('Ada Approver');
  });

  it('says "100+" when more operations wait than one page holds, and no badge when none waits', async () => {
    const el = await render(['operations:read', 'operations:approve']);
    const items = Array.from({ length: 100 }, () => operation());
    ctrl.expectOne('/api/v1/operations?awaiting=me&limit=100').flush({ items, nextCursor: '99999999-9999-4999-8999-999999999999' });
    await new Promise((r) => setTimeout(r));
    await TestBed.inject(ApplicationRef).whenStable();
    expect(el.querySelector('nav .count-badge')?.textContent).toBe('100+');
    void TestBed.inject(ApprovalCountService).refresh();
    ctrl.expectOne('/api/v1/operations?awaiting=me&limit=100').flush({ items: [], nextCursor: null });
    await new Promise((r) => setTimeout(r));
    await TestBed.inject(ApplicationRef).whenStable();
    expect(el.querySelector('.count-badge')).toBeNull();
  });

  it('collapses the navigation behind a Menu button that says whether it is open', async () => {
    const el = await render(['audit:read']);
    const toggle = el.querySelector<HTMLButtonElement>('button.menu-toggle');
    expect(toggle?.getAttribute('aria-controls')).toBe('main-nav');
    expect(toggle?.getAttribute('aria-expanded')).toBe('false');
    toggle?.click();
    await TestBed.inject(ApplicationRef).whenStable();
    expect(toggle?.getAttribute('aria-expanded')).toBe('true');
    expect(el.querySelector('.layout')?.classList).toContain('menu-open');
  });

  it('shows an auditor only the audit log', async () => {
    const el = await render(['self:read', 'audit:read']);
    expect(navLabels(el)).toEqual(['Audit log']);
  });

  it('shows an administrator the sessions, subjects and audit screens and loads the sessions for the banner', async () => {
    const f = TestBed.createComponent(App);
    ctrl.expectOne('/me').flush(keyclientMe({ ...ME, permissions: ['keys:read', 'operations:read', 'subjects:read', 'subjects:admin', 'roles:read', 'roles:admin', 'audit:read', 'admin-sessions:manage'] }));
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    ctrl.expectOne('/api/v1/admin-sessions?ended=recent').flush({ items: [] });
    expect(navLabels(f.nativeElement)).toEqual(['Operations', 'Keys', 'Device certificates', 'Admin sessions', 'Subjects and roles', 'Audit log']);
  });

  it('shows no navigation to a signed-out visitor', async () => {
    const f = TestBed.createComponent(App);
    ctrl.expectOne('/me').flush({ code: 'unauthenticated' }, { status: 401, statusText: 'Unauthorized' });
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    expect((f.nativeElement as HTMLElement).querySelector('nav')).toBeNull();
  });
});

describe(`${App.name} session end`, () => {
  it('sends the user to the sign-in page with the current path when an API call answers 401', async () => {
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(withInterceptors([sessionExpiryInterceptor])),
        provideHttpClientTesting(),
        provideRouter([{ path: '', component: StubComponent }, { path: 'audit', component: StubComponent }]),
        { provide: BrowserNavigation, useValue: { assign: jest.fn(), currentPath: () => '/' } },
      ],
    });
    const ctrl = TestBed.inject(HttpTestingController);
    const router = TestBed.inject(Router);
    const f = TestBed.createComponent(App);
    ctrl.expectOne('/me').flush(keyclientMe({ ...ME, permissions: ['audit:read'] }));
    await router.navigateByUrl('/audit');
    await f.whenStable();
    TestBed.inject(HttpClient).get('/api/v1/audit').subscribe({ error: () => undefined });
    ctrl.expectOne('/api/v1/audit').flush({ code: 'session_refresh_failed' }, { status: 401, statusText: 'Unauthorized' });
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    expect(router.url).toBe('/?returnTo=%2Faudit');
    ctrl.verify();
  });
});

describe(ApprovalCountService.name, () => {
  it('reads again when asked during a read, so an answer from before my own decision does not stay', async () => {
    TestBed.configureTestingModule({ providers: [provideHttpClient(), provideHttpClientTesting(), provideRouter([]), { provide: BrowserNavigation, useValue: { assign: jest.fn(), currentPath: () => '/' } }] });
    const ctrl = TestBed.inject(HttpTestingController);
    const f = TestBed.createComponent(App);
    ctrl.expectOne('/me').flush(keyclientMe({ ...ME, permissions: ['operations:read', 'operations:approve'] }));
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    const first = ctrl.expectOne('/api/v1/operations?awaiting=me&limit=100');
    // My decision lands while the poll is in flight: that poll may have been answered before it.
    void TestBed.inject(ApprovalCountService).refresh();
    first.flush({ items: [operation()], nextCursor: null });
    await new Promise((r) => setTimeout(r));
    ctrl.expectOne('/api/v1/operations?awaiting=me&limit=100').flush({ items: [], nextCursor: null });
    await new Promise((r) => setTimeout(r));
    expect(TestBed.inject(ApprovalCountService).count()).toBe(0);
    ctrl.verify();
  });
});
