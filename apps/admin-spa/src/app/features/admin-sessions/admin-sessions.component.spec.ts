import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { AuthService } from '../../core/auth.service';
import { csrfInterceptor } from '../../core/csrf.interceptor';
import { ME, adminSession, keyclientMe } from '../../../testing/fixtures';
import { AdminSessionsComponent } from './admin-sessions.component';

describe(AdminSessionsComponent.name, () => {
  let ctrl: HttpTestingController;

  beforeEach(async () => {
    TestBed.configureTestingModule({ providers: [provideHttpClient(withInterceptors([csrfInterceptor])), provideHttpClientTesting()] });
    ctrl = TestBed.inject(HttpTestingController);
    const loaded = TestBed.inject(AuthService).ensureLoaded();
    ctrl.expectOne('/me').flush(keyclientMe({ ...ME, permissions: ['admin-sessions:manage'] }));
    await loaded;
  });

  afterEach(() => ctrl.verify());

  const tick = () => new Promise((r) => setTimeout(r));

  async function render(items: unknown[]) {
    const f = TestBed.createComponent(AdminSessionsComponent);
    ctrl.expectOne('/api/v1/admin-sessions?ended=recent').flush({ items });
    await tick();
    await f.whenStable();
    return { f, el: f.nativeElement as HTMLElement };
  }

  it('refuses a description shorter than 8 characters, then opens a session with a valid one', async () => {
    const { f, el } = await render([]);
    const input = el.querySelector('input[formcontrolname="description"]') as HTMLInputElement;
    const submit = () => (el.querySelector('form button[type="submit"]') as HTMLButtonElement).click();
    input.value = 'short';
    input.dispatchEvent(new Event('input'));
    submit();
    await f.whenStable();
    expect(el.querySelector('mat-error')?.textContent).toContain('At least 8 characters.');
    ctrl.expectNone({ method: 'POST' });
    input.value = 'Register the new release team';
    input.dispatchEvent(new Event('input'));
    submit();
    const req = ctrl.expectOne({ method: 'POST', url: '/api/v1/admin-sessions' });
    expect(req.request.body).toEqual({ description: 'Register the new release team', powers: false });
    expect(req.request.headers.get('X-Keyserver-CSRF')).toBe('1');
    req.flush(adminSession({ state: 'PENDING' }));
    await tick();
    ctrl.expectOne('/api/v1/admin-sessions?ended=recent').flush({ items: [adminSession({ state: 'PENDING' })] });
    await tick();
    await f.whenStable();
    expect(el.textContent).toContain('PENDING');
  });

  it('opens a session with powers when asked, and shows the powers of a session to the administrator who authorizes it', async () => {
    const { f, el } = await render([adminSession({ description: 'Make Carol a security officer', state: 'PENDING', powers: true, creator: { subjectId: 'x', displayName: 'Bob Admin' }, authorizedBy: [{ subjectId: 'x', displayName: 'Bob Admin' }] })]);
    expect(el.querySelector('tbody')?.textContent).toContain('may make or unmake administrators and approvers');
    const input = el.querySelector('input[formcontrolname="description"]') as HTMLInputElement;
    input.value = 'Disable Mallory';
    input.dispatchEvent(new Event('input'));
    (el.querySelector('mat-checkbox input[type="checkbox"]') as HTMLInputElement).click();
    (el.querySelector('form button[type="submit"]') as HTMLButtonElement).click();
    const req = ctrl.expectOne({ method: 'POST', url: '/api/v1/admin-sessions' });
    expect(req.request.body).toEqual({ description: 'Disable Mallory', powers: true });
    req.flush(adminSession({ state: 'PENDING', powers: true }));
    await tick();
    ctrl.expectOne('/api/v1/admin-sessions?ended=recent').flush({ items: [] });
    await tick();
    await f.whenStable();
    expect((el.querySelector('mat-checkbox input[type="checkbox"]') as HTMLInputElement).checked).toBe(false);
  });

  it('offers to authorize a pending session of another administrator, not my own', async () => {
    const other = adminSession({ id: 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa', description: 'Other admin session', state: 'PENDING', creator: { subjectId: 'x', displayName: 'Bob Admin' }, authorizedBy: [{ subjectId: 'x', displayName: 'Bob Admin' }] });
    const mine = adminSession({ id: 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb', description: 'My own session', state: 'PENDING', authorizedBy: [{ subjectId: ME.subjectId ?? '', displayName: ME.displayName }] });
    const { el } = await render([other, mine]);
    expect(el.querySelector('button[aria-label="Authorize My own session"]')).toBeNull();
    (el.querySelector('button[aria-label="Authorize Other admin session"]') as HTMLButtonElement).click();
    ctrl.expectOne({ method: 'POST', url: '/api/v1/admin-sessions/aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa/authorizations' }).flush(adminSession());
    await tick();
    ctrl.expectOne('/api/v1/admin-sessions?ended=recent').flush({ items: [] });
  });

  it('closes a session', async () => {
    const { el } = await render([adminSession({ description: 'Active one' })]);
    expect(el.textContent).toContain('You act in this session');
    (el.querySelector('button[aria-label="Close Active one"]') as HTMLButtonElement).click();
    ctrl.expectOne({ method: 'POST', url: `/api/v1/admin-sessions/${adminSession().id}/closure` }).flush(adminSession({ state: 'CLOSED' }));
    await tick();
    ctrl.expectOne('/api/v1/admin-sessions?ended=recent').flush({ items: [] });
  });
});
