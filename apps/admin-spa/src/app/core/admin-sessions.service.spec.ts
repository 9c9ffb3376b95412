import { HttpClient, provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { ADMIN_SESSION_HEADER, AdminSessionsService, adminSessionInterceptor, isUsableBy } from './admin-sessions.service';
import { AuthService } from './auth.service';
import { csrfInterceptor } from './csrf.interceptor';
import { ME, adminSession, keyclientMe } from '../../testing/fixtures';

describe(AdminSessionsService.name, () => {
  let svc: AdminSessionsService;
  let ctrl: HttpTestingController;

  beforeEach(async () => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(withInterceptors([csrfInterceptor, adminSessionInterceptor])), provideHttpClientTesting()],
    });
    ctrl = TestBed.inject(HttpTestingController);
    svc = TestBed.inject(AdminSessionsService);
    const auth = TestBed.inject(AuthService);
    const loaded = auth.ensureLoaded();
    ctrl.expectOne('/me').flush(keyclientMe({ ...ME, permissions: ['admin-sessions:manage', 'subjects:admin'] }));
    await loaded;
  });

  afterEach(() => ctrl.verify());

  async function refreshWith(items: unknown[]): Promise<void> {
    const done = svc.refresh();
    ctrl.expectOne({ method: 'GET', url: '/api/v1/admin-sessions?ended=recent' }).flush({ items });
    await done;
  }

  it('opens, authorizes and closes sessions with the documented routes and bodies', () => {
    svc.open('Add the release team').subscribe();
    const open = ctrl.expectOne({ method: 'POST', url: '/api/v1/admin-sessions' });
    expect(open.request.body).toEqual({ description: 'Add the release team', powers: false });
    open.flush(adminSession({ state: 'PENDING' }));
    svc.open('Make Carol a security officer', true).subscribe();
    const withPowers = ctrl.expectOne({ method: 'POST', url: '/api/v1/admin-sessions' });
    expect(withPowers.request.body).toEqual({ description: 'Make Carol a security officer', powers: true });
    withPowers.flush(adminSession({ state: 'PENDING', powers: true }));
    svc.authorize('abc').subscribe();
    ctrl.expectOne({ method: 'POST', url: '/api/v1/admin-sessions/abc/authorizations' }).flush(adminSession());
    svc.close('abc').subscribe();
    ctrl.expectOne({ method: 'POST', url: '/api/v1/admin-sessions/abc/closure' }).flush(adminSession({ state: 'CLOSED' }));
  });

  it('knows the active session I take part in', async () => {
    await refreshWith([adminSession({ id: 'a', state: 'PENDING' }), adminSession({ id: 'b' })]);
    expect(svc.active()?.id).toBe('b');
  });

  it('names the active session on administrative changes only', async () => {
    await refreshWith([adminSession({ id: '66666666-6666-4666-8666-666666666666' })]);
    const http = TestBed.inject(HttpClient);
    http.patch('/api/v1/subjects/s1', { enabled: false }).subscribe();
    const patch = ctrl.expectOne('/api/v1/subjects/s1');
    expect(patch.request.headers.get(ADMIN_SESSION_HEADER)).toBe('66666666-6666-4666-8666-666666666666');
    patch.flush({});
    http.post('/api/v1/operations/o/approvals', {}).subscribe();
    const approve = ctrl.expectOne('/api/v1/operations/o/approvals');
    expect(approve.request.headers.has(ADMIN_SESSION_HEADER)).toBe(false);
    approve.flush({});
    http.get('/api/v1/subjects').subscribe();
    const read = ctrl.expectOne('/api/v1/subjects');
    expect(read.request.headers.has(ADMIN_SESSION_HEADER)).toBe(false);
    read.flush({ items: [] });
  });

  it('sends no session header when none is active', async () => {
    await refreshWith([adminSession({ state: 'CLOSED' })]);
    TestBed.inject(HttpClient).post('/api/v1/roles', {}).subscribe();
    const req = ctrl.expectOne('/api/v1/roles');
    expect(req.request.headers.has(ADMIN_SESSION_HEADER)).toBe(false);
    req.flush({});
  });
});

describe('isUsableBy', () => {
  const me = ME.subjectId;
  it.each([
    ['ok active, I created it', adminSession(), true],
    ['ok active, I authorized it', adminSession({ creator: { subjectId: 'x', displayName: 'X' } }), true],
    ['fail pending', adminSession({ state: 'PENDING' }), false],
    ['fail closed', adminSession({ state: 'CLOSED' }), false],
    ['fail expired', adminSession({ expiresAt: new Date(Date.now() - 1000).toISOString() }), false],
    ['fail not a participant', adminSession({ creator: { subjectId: 'x', displayName: 'X' }, authorizedBy: [{ subjectId: 'x', displayName: 'X' }] }), false],
  ])('%s', (_name, s, expected) => {
    expect(isUsableBy(s, me)).toBe(expected);
  });
});
