import { signal } from '@angular/core';
import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed, type ComponentFixture } from '@angular/core/testing';
import { provideRouter } from '@angular/router';
import { AdminSessionsService } from '../../core/admin-sessions.service';
import type { RootCeremonyResultView } from '../../core/root-ceremony.service';
import { RootCeremonyComponent } from './root-ceremony.component';

const CERT = '-----BEGIN CERTIFICATE-----\nMIIBroot\n-----END CERTIFICATE-----\n';
const CHAIN = '-----BEGIN CERTIFICATE-----\nMIIBoffline\n-----END CERTIFICATE-----\n';
const SESSION = { id: 's-1', description: 'ROOT ceremony 2026', state: 'ACTIVE' };

function result(over: Partial<RootCeremonyResultView> = {}): RootCeremonyResultView {
  return {
    keyid: 'acme-root',
    state: 'ACTIVE',
    algorithm: 'EC_P384',
    spkiSha256: '0a1b'.repeat(16),
    certificate: CERT,
    csr: null,
    administrators: [
      { subjectId: 'a', displayName: 'Ada Admin' },
      { subjectId: 'b', displayName: 'Alan Admin' },
    ],
    adminSessionId: 's-1',
    ...over,
  } as RootCeremonyResultView;
}

describe(RootCeremonyComponent.name, () => {
  let ctrl: HttpTestingController;

  async function setup(active: unknown): Promise<{ f: ComponentFixture<RootCeremonyComponent>; el: HTMLElement }> {
    TestBed.configureTestingModule({
      providers: [provideRouter([]), provideHttpClient(), provideHttpClientTesting(), { provide: AdminSessionsService, useValue: { active: signal(active), refresh: async () => undefined } }],
    });
    ctrl = TestBed.inject(HttpTestingController);
    const f = TestBed.createComponent(RootCeremonyComponent);
    await settle(f);
    return { f, el: f.nativeElement as HTMLElement };
  }

  async function settle(f: ComponentFixture<unknown>) {
    f.detectChanges();
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
  }

  const button = (el: HTMLElement, text: string) => [...el.querySelectorAll('button')].find((b) => b.textContent?.trim() === text) as HTMLButtonElement;
  function type(el: HTMLElement, selector: string, value: string) {
    const input = el.querySelector(selector) as HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement;
    input.value = value;
    input.dispatchEvent(new Event(input instanceof HTMLSelectElement ? 'change' : 'input'));
  }
  async function fillAndReview(f: ComponentFixture<RootCeremonyComponent>, el: HTMLElement, external = false) {
    if (external) {
      const radio = el.querySelector('input[type="radio"][value="external"]') as HTMLInputElement;
      radio.click();
    }
    type(el, 'input[formControlName="keyid"]', 'acme-root');
    type(el, 'select[formControlName="algorithm"]', 'EC_P384');
    type(el, 'input[formControlName="commonName"]', ' Acme Root CA ');
    type(el, 'input[formControlName="organization"]', 'Acme');
    type(el, 'input[formControlName="country"]', 'dk');
    type(el, 'input[formControlName="pathLen"]', '2');
    await settle(f);
    button(el, 'Review the ceremony').click();
    await settle(f);
  }

  it('offers no ceremony without an active administrative session', async () => {
    const { el } = await setup(null);
    expect(button(el, 'Review the ceremony').disabled).toBe(true);
    expect(el.querySelector('[role="note"]')?.textContent).toContain('needs an active administrative session');
  });

  it('restates the ceremony, says two administrators are required, sends it only when confirmed and shows fingerprint and certificate', async () => {
    const { f, el } = await setup(SESSION);
    await fillAndReview(f, el);
    ctrl.expectNone('/api/v1/keys/root-ceremony');
    const review = el.querySelector('section[aria-labelledby="ceremony-review-title"]')?.textContent?.replace(/\s+/g, ' ') ?? '';
    expect(review).toContain('Two administrators are required.');
    expect(review).toContain('ROOT ceremony 2026');
    expect(review).toContain('CN=Acme Root CA, O=Acme, C=DK');
    expect(review).toContain('7300 days');
    button(el, 'Generate and self-sign the ROOT').click();
    const req = ctrl.expectOne({ method: 'POST', url: '/api/v1/keys/root-ceremony' });
    expect(req.request.body).toEqual({ keyid: 'acme-root', algorithm: 'EC_P384', subject: { commonName: 'Acme Root CA', organization: 'Acme', country: 'DK' }, validityDays: 7300, pathLen: 2, requiredApprovers: 2, mode: 'self-signed' });
    req.flush(result(), { status: 201, statusText: 'Created' });
    await settle(f);
    expect(el.querySelector('h2#ceremony-result-title')?.textContent).toContain('ROOT key acme-root is active');
    expect(el.querySelector('[data-testid="spki-sha256"]')?.textContent).toBe('0A:1B:'.repeat(16).slice(0, -1));
    expect(el.querySelector('pre[aria-label="Certificate PEM"]')?.textContent).toBe(CERT);
    expect(el.textContent).toContain('Ada Admin, Alan Admin');
  });

  it('shows a refusal in plain words with its code and keeps the confirmation', async () => {
    const { f, el } = await setup(SESSION);
    await fillAndReview(f, el);
    button(el, 'Generate and self-sign the ROOT').click();
    ctrl
      .expectOne('/api/v1/keys/root-ceremony')
      .flush({ type: 'about:blank', title: 'Forbidden', status: 403, code: 'ceremony_needs_two_administrators' }, { status: 403, statusText: 'Forbidden', headers: { 'content-type': 'application/problem+json' } });
    await settle(f);
    const alert = el.querySelector('[role="alert"]');
    expect(alert?.getAttribute('data-code')).toBe('ceremony_needs_two_administrators');
    expect(alert?.textContent).toContain('two different administrators');
    expect(button(el, 'Generate and self-sign the ROOT')).toBeTruthy();
  });

  it('external mode: shows the CSR, then imports the pasted certificate and chain as PEM blocks', async () => {
    const { f, el } = await setup(SESSION);
    await fillAndReview(f, el, true);
    button(el, 'Generate the key and its CSR').click();
    const req = ctrl.expectOne('/api/v1/keys/root-ceremony');
    expect(req.request.body.mode).toBe('external');
    req.flush(result({ state: 'AWAITING_CERTIFICATE', certificate: null, csr: '-----BEGIN CERTIFICATE REQUEST-----\nMIIBcsr\n-----END CERTIFICATE REQUEST-----\n' }));
    await settle(f);
    expect(el.querySelector('pre[aria-label="CSR PEM"]')?.textContent).toContain('MIIBcsr');
    type(el, 'textarea[formControlName="certificate"]', `subject=CN=Acme Root\n${CERT}`);
    type(el, 'textarea[formControlName="chain"]', CHAIN);
    await settle(f);
    button(el, 'Verify and import').click();
    const imp = ctrl.expectOne({ method: 'POST', url: '/api/v1/keys/acme-root/certificate' });
    expect(imp.request.body).toEqual({ certificate: CERT, chain: [CHAIN] });
    imp.flush({ keyid: 'acme-root', state: 'ACTIVE' });
    await settle(f);
    expect(el.querySelector('p.ok[role="status"]')?.textContent).toContain('Certificate imported: key acme-root is active.');
  });

  it('fail import without a PEM certificate: nothing is sent', async () => {
    const { f, el } = await setup(SESSION);
    await fillAndReview(f, el, true);
    button(el, 'Generate the key and its CSR').click();
    ctrl.expectOne('/api/v1/keys/root-ceremony').flush(result({ state: 'AWAITING_CERTIFICATE', certificate: null, csr: 'csr' }));
    await settle(f);
    type(el, 'textarea[formControlName="certificate"]', 'not a certificate');
    type(el, 'textarea[formControlName="chain"]', CHAIN);
    await settle(f);
    button(el, 'Verify and import').click();
    await settle(f);
    ctrl.expectNone('/api/v1/keys/acme-root/certificate');
  });

  it('cancels an external ceremony found again by its keyid only after a confirmation that says the key pair is destroyed', async () => {
    const { f, el } = await setup(SESSION);
    type(el, 'form[aria-label="Find a key awaiting its certificate"] input', 'acme-online');
    await settle(f);
    button(el, 'Show its CSR').click();
    ctrl.expectOne({ method: 'GET', url: '/api/v1/keys/acme-online/csr' }).flush({ keyid: 'acme-online', version: 1, algorithm: 'EC_P384', csr: 'csr', spkiSha256: '0a1b'.repeat(16), createdAt: '2026-12-01T00:00:00.000Z' });
    await settle(f);
    button(el, 'Cancel this ceremony…').click();
    await settle(f);
    ctrl.expectNone('/api/v1/keys/acme-online/csr/cancellation');
    expect(el.querySelector('[role="alert"]')?.textContent).toContain('Destroy the key pair of acme-online');
    button(el, 'Keep it').click();
    await settle(f);
    expect(el.querySelector('[role="alert"]')).toBeNull();
    button(el, 'Cancel this ceremony…').click();
    await settle(f);
    button(el, 'Destroy the key pair and cancel').click();
    const req = ctrl.expectOne({ method: 'POST', url: '/api/v1/keys/acme-online/csr/cancellation' });
    expect(req.request.body).toEqual({ version: 1 });
    req.flush({ keyid: 'acme-online', version: 1, spkiSha256: '0a1b'.repeat(16), administrators: [], adminSessionId: 's-1' });
    await settle(f);
    expect(el.querySelector('p.ok[role="status"]')?.textContent).toContain('Ceremony of acme-online cancelled: its key pair was destroyed');
    expect(el.querySelector('pre[aria-label="CSR PEM"]')).toBeNull();
  });

  it('offers no cancellation without an active administrative session', async () => {
    const { f, el } = await setup(null);
    type(el, 'form[aria-label="Find a key awaiting its certificate"] input', 'acme-online');
    await settle(f);
    button(el, 'Show its CSR').click();
    ctrl.expectOne('/api/v1/keys/acme-online/csr').flush({ keyid: 'acme-online', version: 2, algorithm: 'EC_P384', csr: 'csr', spkiSha256: '0a1b'.repeat(16), createdAt: '2026-12-01T00:00:00.000Z' });
    await settle(f);
    expect(button(el, 'Cancel this rotation…').disabled).toBe(true);
  });

  afterEach(() => ctrl.verify());
});
