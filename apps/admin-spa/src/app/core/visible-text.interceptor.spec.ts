import { HttpClient, HttpErrorResponse, provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { provideRouter } from '@angular/router';
import { firstValueFrom } from 'rxjs';
import { opKey, operation } from '../../testing/fixtures';
import { API_INTERCEPTORS } from '../app.config';
import { OperationDetailComponent } from '../features/operations/operation-detail.component';

// ADR 0047: what another user wrote reaches an approver's eyes with every hidden character named, never obeyed.

/** What a browser obeys or draws as nothing: controls (template whitespace aside), format characters, separators. */
// eslint-disable-next-line no-control-regex
const OBEYED_OR_HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\p{Cf}\u2028\u2029\u3164]/u;

describe('what an approver sees in the console', () => {
  let ctrl: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({ providers: [provideHttpClient(withInterceptors(API_INTERCEPTORS)), provideHttpClientTesting(), provideRouter([])] });
    ctrl = TestBed.inject(HttpTestingController);
  });

  afterEach(() => ctrl.verify());

  async function settle(): Promise<void> {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  }

  it('shows an operation whose every text is hostile as text, with bidi, zero-width and control characters named', async () => {
    const hostile = operation({
      description: 'Sign model X \u202egnp.exe\u202c <img src=x onerror="window.pwned=1"> u\u200bsages\u001b[2K',
      orderer: { subjectId: '55555555-5555-4555-8555-555555555555', displayName: 'Otto\u2067 Orderer\u2069' },
      rejectionReason: null,
      provenance: { project: 'fw\u2066x\u2069', pipeline: 'nightly\u200d', run: '7\u061c' },
      keys: [opKey({ product: 'model\u00adx', approvedBy: [{ subjectId: '88888888-8888-4888-8888-888888888888', displayName: 'Ann\u3164', approvedAt: '2026-11-29T01:00:00.000Z' }] })],
    });
    const f = TestBed.createComponent(OperationDetailComponent);
    f.componentRef.setInput('id', hostile.id);
    f.detectChanges();
    ctrl.expectOne(`/api/v1/operations/${hostile.id}`).flush(hostile);
    await settle();
    f.detectChanges();

    const root = f.nativeElement as HTMLElement;
    const text = root.textContent ?? '';

    expect(text).toContain('Sign model X \\u{202e}gnp.exe\\u{202c} <img src=x onerror="window.pwned=1"> u\\u{200b}sages\\u{1b}[2K');
    expect(root.querySelector('img')).toBeNull();
    expect(text).toContain('Otto\\u{2067} Orderer\\u{2069}');
    expect(text).toContain('fw\\u{2066}x\\u{2069}');
    expect(text).toContain('nightly\\u{200d}');
    expect(text).toContain('model\\u{ad}x');
    expect(text).toContain('Ann\\u{3164}');
    expect(text).not.toMatch(OBEYED_OR_HIDDEN);
    // Attributes too (aria-label, title): a screen reader reads what the eye reads.
    for (const el of [root, ...root.querySelectorAll('*')]) for (const a of el.attributes) expect(a.value).not.toMatch(OBEYED_OR_HIDDEN);
    f.destroy();
  });

  it('names hidden characters in a problem detail and leaves a text download as it is', async () => {
    const http = TestBed.inject(HttpClient);
    const failed = firstValueFrom(http.get('/api/v1/operations/x')).catch((e: HttpErrorResponse) => e);
    ctrl.expectOne('/api/v1/operations/x').flush({ type: 'about:blank', status: 400, code: 'bad', detail: 'x\u202ey' }, { status: 400, statusText: 'Bad Request' });
    expect(((await failed) as HttpErrorResponse).error).toEqual({ type: 'about:blank', status: 400, code: 'bad', detail: 'x\\u{202e}y' });

    // A certificate travels inside JSON too: its line breaks are whitespace to a browser, and the download needs them.
    const pemPart = '-----BEGIN CERTIFICATE-----\r\nMIIB\tAA==\n-----END CERTIFICATE-----\n';
    const view = firstValueFrom(http.get('/api/v1/certificates/2'));
    ctrl.expectOne('/api/v1/certificates/2').flush({ certificate: pemPart, subject: 'CN=a\u202eb\u0007' });
    expect(await view).toEqual({ certificate: pemPart, subject: 'CN=a\\u{202e}b\\u{7}' });

    const pem = firstValueFrom(http.get('/api/v1/certificates/1/pem', { responseType: 'text' }));
    ctrl.expectOne('/api/v1/certificates/1/pem').flush('-----BEGIN CERTIFICATE-----\nAA\u200b\n');
    expect(await pem).toBe('-----BEGIN CERTIFICATE-----\nAA\u200b\n');
  });
});
