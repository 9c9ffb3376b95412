import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { AuthService, normalizeMe } from './auth.service';
import { BrowserNavigation } from './browser-navigation';
import { csrfInterceptor } from './csrf.interceptor';
import { ME, keyclientMe } from '../../testing/fixtures';

describe(AuthService.name, () => {
  let auth: AuthService;
  let ctrl: HttpTestingController;
  let assigned: string[];

  beforeEach(() => {
    assigned = [];
    localStorage.clear();
    sessionStorage.clear();
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(withInterceptors([csrfInterceptor])),
        provideHttpClientTesting(),
        { provide: BrowserNavigation, useValue: { assign: (u: string) => assigned.push(u), currentPath: () => '/' } },
      ],
    });
    auth = TestBed.inject(AuthService);
    ctrl = TestBed.inject(HttpTestingController);
  });

  afterEach(() => {
    ctrl.verify();
    // No token, nor anything else, is ever kept in web storage.
    expect(localStorage.length).toBe(0);
    expect(sessionStorage.length).toBe(0);
  });

  it('loads the signed-in user from GET /me', async () => {
    const done = auth.ensureLoaded();
    ctrl.expectOne({ method: 'GET', url: '/me' }).flush(keyclientMe(ME));
    await done;
    expect(auth.status()).toBe('signedIn');
    expect(auth.me()).toEqual(ME);
    expect(auth.has('operations:approve')).toBe(true);
    expect(auth.has('audit:read')).toBe(false);
  });

  it('is anonymous when /me answers 401', async () => {
    const done = auth.ensureLoaded();
    ctrl.expectOne('/me').flush({ type: 'about:blank', title: 'Not signed in', status: 401, code: 'unauthenticated' }, { status: 401, statusText: 'Unauthorized' });
    await done;
    expect(auth.status()).toBe('anonymous');
    expect(auth.me()).toBeNull();
  });

  it('keeps the problem when /me fails otherwise', async () => {
    const done = auth.ensureLoaded();
    ctrl.expectOne('/me').flush({ type: 'about:blank', title: 'Down', status: 502, code: 'upstream_unavailable' }, { status: 502, statusText: 'Bad Gateway' });
    await done;
    expect(auth.status()).toBe('error');
    expect(auth.problem()?.code).toBe('upstream_unavailable');
  });

  it('starts the login as a full-page navigation to /login with a local returnTo', () => {
    auth.login('/operations/abc?x=1');
    auth.login('https://evil.example/');
    auth.login('//evil.example/');
    expect(assigned).toEqual(['/login?returnTo=%2Foperations%2Fabc%3Fx%3D1', '/login?returnTo=%2F', '/login?returnTo=%2F']);
  });

  it('signs out with POST /logout (CSRF header, JSON) and follows the end-session URL', async () => {
    const done = auth.logout();
    const req = ctrl.expectOne({ method: 'POST', url: '/logout' });
    expect(req.request.headers.get('X-Keyserver-CSRF')).toBe('1');
    expect(req.request.headers.get('Accept')).toBe('application/json');
    req.flush({ redirectTo: 'https://login.example/logout?x=1' });
    await done;
    expect(assigned).toEqual(['https://login.example/logout?x=1']);
    expect(auth.status()).toBe('anonymous');
  });

  // The end-session URL comes from the keyclient (the provider's discovery document): only an http(s) URL or a path
  // is navigated to; anything else (javascript:, data:) lands on the start page. The CSP blocks javascript: URLs too.
  it.each(['javascript:alert(document.domain)', 'data:text/html,<script>alert(1)</script>', 'vbscript:msgbox(1)', ' javascript:alert(1)', 'JAVASCRIPT:alert(1)'])(
    'fail an end-session URL %s: the start page instead',
    async (redirectTo) => {
      const done = auth.logout();
      ctrl.expectOne({ method: 'POST', url: '/logout' }).flush({ redirectTo });
      await done;
      expect(assigned).toEqual(['/']);
    },
  );
});

describe('normalizeMe', () => {
  it('accepts the flat shape', () => {
    expect(normalizeMe({ displayName: 'A', tid: 't', oid: 'o', subjectId: 's', natures: ['AUDITOR'], permissions: ['audit:read'] })).toEqual({
      displayName: 'A',
      username: null,
      tid: 't',
      oid: 'o',
      subjectId: 's',
      natures: ['AUDITOR'],
      permissions: ['audit:read'],
    });
  });

  it('gives no permission when the API part is missing', () => {
    expect(normalizeMe({ displayName: 'A', tid: 't', oid: 'o', roles: ['x'] }).permissions).toEqual([]);
  });
});
