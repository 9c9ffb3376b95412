import { HttpClient, provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { CSRF_HEADER, csrfInterceptor } from './csrf.interceptor';

describe('csrfInterceptor', () => {
  let http: HttpClient;
  let ctrl: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(withInterceptors([csrfInterceptor])), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpClient);
    ctrl = TestBed.inject(HttpTestingController);
  });

  afterEach(() => ctrl.verify());

  it.each([
    ['POST', '/api/v1/operations'],
    ['PUT', '/api/v1/subjects/x'],
    ['PATCH', '/api/v1/roles/r'],
    ['DELETE', '/api/v1/admin-sessions/x'],
    ['POST', '/logout'],
    ['POST', `${location.origin}/api/v1/operations`],
  ])('ok %s %s carries X-Keyserver-CSRF: 1', (method, url) => {
    http.request(method, url, { body: {} }).subscribe();
    const req = ctrl.expectOne(url);
    expect(req.request.headers.get(CSRF_HEADER)).toBe('1');
    req.flush({});
  });

  it.each([
    ['GET', '/api/v1/operations'],
    ['HEAD', '/me'],
  ])('ok %s %s is sent without the header (not state-changing)', (method, url) => {
    http.request(method, url).subscribe();
    const req = ctrl.expectOne(url);
    expect(req.request.headers.has(CSRF_HEADER)).toBe(false);
    req.flush({});
  });

  it.each(['https://evil.example/api/v1/operations', '//evil.example/x'])('fail never sends the header to another origin: %s', (url) => {
    http.post(url, {}).subscribe();
    const req = ctrl.expectOne(url);
    expect(req.request.headers.has(CSRF_HEADER)).toBe(false);
    req.flush({});
  });
});
