import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed, type ComponentFixture } from '@angular/core/testing';
import { provideRouter } from '@angular/router';
import type { KeyDetailView } from '../../core/api-types';
import { csrfInterceptor } from '../../core/csrf.interceptor';
import { MAX_PEM_TEXT } from '../../core/pem';
import { KEY_LIMITS } from '../../../testing/fixtures';
import { CERT_A, CERT_A_SHA256, CERT_B, CERT_B_SHA256, CERT_C, CERT_C_SHA256, CERT_D, CERT_D_SHA256 } from '../../../testing/certificates';
import { provideWebCrypto } from '../../../testing/webcrypto';
import { ExternalChainComponent } from './external-chain.component';

const URL = '/api/v1/keys/ext-root/external-chain';

/** An imported ROOT as GET /api/v1/keys/{keyid} answers it: its certificate A, below intermediate B and anchor C. */
function rootDetail(over: Partial<KeyDetailView> = {}): KeyDetailView {
  return {
    keyid: 'ext-root',
    type: 'ROOT',
    algorithm: 'EC_P256',
    hash: 'SHA256',
    requiredApprovers: 0,
    state: 'ACTIVE',
    product: null,
    certificate: CERT_A,
    notBefore: '2026-01-01T00:00:00.000Z',
    notAfter: '2028-09-27T00:00:00.000Z',
    chain: [CERT_A, CERT_B, CERT_C],
    usage: { signOrders: 0, certificatesIssued: 1, lastUsedAt: null },
    limits: { ...KEY_LIMITS },
    ...over,
  } as KeyDetailView;
}

describe(ExternalChainComponent.name, () => {
  let ctrl: HttpTestingController;
  beforeAll(provideWebCrypto);

  async function setup(canEdit = true): Promise<{ f: ComponentFixture<ExternalChainComponent>; el: HTMLElement; changed: KeyDetailView[] }> {
    TestBed.configureTestingModule({ providers: [provideHttpClient(withInterceptors([csrfInterceptor])), provideHttpClientTesting(), provideRouter([])] });
    ctrl = TestBed.inject(HttpTestingController);
    const f = TestBed.createComponent(ExternalChainComponent);
    f.componentRef.setInput('key', rootDetail());
    f.componentRef.setInput('canEdit', canEdit);
    const changed: KeyDetailView[] = [];
    f.componentInstance.changed.subscribe((d) => changed.push(d));
    await settle(f);
    return { f, el: f.nativeElement as HTMLElement, changed };
  }

  async function settle(f: ComponentFixture<unknown>) {
    for (let i = 0; i < 3; i++) {
      f.detectChanges();
      await new Promise((r) => setTimeout(r));
      await f.whenStable();
    }
  }

  const field = (el: HTMLElement, name: 'chain' | 'certificate') => el.querySelector(`textarea[formcontrolname="${name}"]`) as HTMLTextAreaElement;
  const button = (el: HTMLElement, text: string) => [...el.querySelectorAll('button')].find((b) => b.textContent?.trim() === text) ?? null;
  function type(el: HTMLElement, name: 'chain' | 'certificate', text: string) {
    const t = field(el, name);
    t.value = text;
    t.dispatchEvent(new Event('input'));
  }
  async function review(f: ComponentFixture<ExternalChainComponent>, el: HTMLElement, chain: string, certificate = '') {
    type(el, 'chain', chain);
    if (certificate) type(el, 'certificate', certificate);
    button(el, 'Review the change')?.click();
    // The fingerprints are Web Crypto's (asynchronous): settle until the review or a field error is shown.
    for (let i = 0; i < 50 && !rows(el).length && !el.querySelector('mat-error')?.textContent?.trim(); i++) await settle(f);
  }
  /** The review's rows: place, current SHA-256, new SHA-256, change. */
  const rows = (el: HTMLElement) =>
    [...el.querySelectorAll('table[aria-label="What the replacement changes"] tbody tr')].map((tr) => [...tr.querySelectorAll('th, td')].map((c) => (c.textContent ?? '').trim()));

  it('fail without an ACTIVE admin session: the review cannot start and the hint says why', async () => {
    const { el } = await setup(false);
    expect(button(el, 'Review the change')?.disabled).toBe(true);
    expect(el.querySelector('#external-chain-hint')?.textContent).toContain('administrative session');
    ctrl.verify();
  });

  it('ok shows before sending what changes: the ROOT kept, the renewed intermediate replacing the old one, the anchor unchanged', async () => {
    const { f, el } = await setup();
    await review(f, el, `subject=CN=Fixture D\n${CERT_D}${CERT_C}`);
    expect(rows(el)).toEqual([
      ['ROOT certificate', CERT_A_SHA256, CERT_A_SHA256, 'kept'],
      ['Issuer of the ROOT', CERT_B_SHA256, CERT_D_SHA256, 'replaced'],
      ['Anchor (self-signed root)', CERT_C_SHA256, CERT_C_SHA256, 'unchanged'],
    ]);
    expect(el.textContent).toContain('two different administrators');
    ctrl.expectNone(URL);
  });

  it('ok a re-issued ROOT certificate shows as replaced and is sent with the chain; after success the new key is reported and handed up', async () => {
    const { f, el, changed } = await setup();
    await review(f, el, CERT_B + CERT_C, CERT_D);
    expect(rows(el)[0]).toEqual(['ROOT certificate', CERT_A_SHA256, CERT_D_SHA256, 'replaced']);
    button(el, 'Replace the chain')?.click();
    await settle(f);
    const req = ctrl.expectOne({ method: 'POST', url: URL });
    expect(req.request.body).toEqual({ certificate: CERT_D, chain: [CERT_B, CERT_C] });
    const after = rootDetail({ certificate: CERT_D, chain: [CERT_D, CERT_B, CERT_C], notBefore: '2026-12-08T00:00:00.000Z', notAfter: '2029-05-26T00:00:00.000Z' });
    req.flush(after);
    await settle(f);
    expect(changed).toEqual([after]);
    expect(el.querySelector('[role="status"]')?.textContent).toContain('ext-root');
    expect(el.querySelector('[role="status"] time')?.getAttribute('datetime')).toBe('2026-12-08T00:00:00.000Z');
    expect(rows(el)).toEqual([]);
    expect(field(el, 'chain').value).toBe('');
  });

  it('ok without a re-issued certificate the body carries the chain only', async () => {
    const { f, el } = await setup();
    await review(f, el, CERT_D + CERT_C);
    button(el, 'Replace the chain')?.click();
    await settle(f);
    expect(ctrl.expectOne({ method: 'POST', url: URL }).request.body).toEqual({ chain: [CERT_D, CERT_C] });
  });

  it.each([
    ['fail an ACTIVE key below would outlive the new chain', 409, 'keys_below_outlive_chain'],
    ['fail a chain up to another offline root', 400, 'anchor_mismatch'],
    ['fail the certificate and chain already stored', 409, 'external_chain_unchanged'],
    ['fail a re-issued certificate under another subject', 400, 'subject_mismatch'],
    ['fail a chain that does not verify', 400, 'chain_invalid'],
    ['fail a DER block that is no X.509 certificate', 400, 'invalid_certificate'],
    ['fail a self-signed ROOT', 409, 'not_externally_certified'],
    ['fail another change of the key committed first', 409, 'version_conflict'],
    ['fail a session of one administrator', 403, 'ceremony_needs_two_administrators'],
  ] as const)('%s: the problem is shown in words with its code, the review stays for another try', async (_n, status, code) => {
    const { f, el, changed } = await setup();
    await review(f, el, CERT_D + CERT_C);
    button(el, 'Replace the chain')?.click();
    await settle(f);
    ctrl.expectOne(URL).flush({ type: 'about:blank', title: 'Refused', status, code, detail: 'the detail' }, { status, statusText: 'Refused' });
    await settle(f);
    const problem = el.querySelector('.problem');
    expect(problem?.getAttribute('data-code')).toBe(code);
    expect(problem?.querySelector('.problem-text')?.textContent).not.toBe('Refused');
    expect(rows(el)).toHaveLength(3);
    expect(changed).toEqual([]);
  });

  it.each([
    ['fail text that is not PEM', 'just some text, no armour'],
    ['fail unicode inside the armour', CERT_D.replace('MIIB', 'MII\u202e\u{1f600}B') + CERT_C],
    ['fail base64 that is not a certificate', '-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGUgYXQgYWxsLCBqdXN0IHNvbWUgdGV4dCBpbiBhIFBFTSBhcm1vdXI=\n-----END CERTIFICATE-----\n'],
    ['fail nine certificates', (CERT_D + CERT_C).repeat(5).slice(0, -1)],
    ['fail 10 MiB pasted', '-----BEGIN CERTIFICATE-----\n'.repeat(400_000)],
  ])('%s: the field says why within 500 ms, nothing is sent', async (_n, text) => {
    const { f, el } = await setup();
    const started = performance.now();
    await review(f, el, text);
    expect(performance.now() - started).toBeLessThan(500);
    expect(el.querySelector('mat-error')?.textContent?.trim()).toBeTruthy();
    expect(rows(el)).toEqual([]);
    ctrl.expectNone(URL);
  });

  it.each(['chain', 'certificate'] as const)('fail a paste over the largest chain into the %s field is not kept (a browser lays out megabytes of text slowly): emptied, and it says why', async (name) => {
    const { f, el } = await setup();
    type(el, name, 'A'.repeat(MAX_PEM_TEXT + 1));
    await settle(f);
    expect(field(el, name).value).toBe('');
    expect(el.querySelector('mat-error')?.textContent).toContain('too large');
    ctrl.expectNone(URL);
  });

  it('fail a re-issued certificate field holding two certificates', async () => {
    const { f, el } = await setup();
    await review(f, el, CERT_D + CERT_C, CERT_A + CERT_B);
    expect(el.querySelector('mat-error')?.textContent).toContain('Too many');
    expect(rows(el)).toEqual([]);
  });

  it('ok a chain file read from disk fills the field; a file over the limit is refused without being read', async () => {
    const { f, el } = await setup();
    const input = el.querySelector('input[type="file"][aria-label="Chain file"]') as HTMLInputElement;
    const pick = async (file: File) => {
      Object.defineProperty(input, 'files', { value: [file], configurable: true });
      input.dispatchEvent(new Event('change'));
      await settle(f);
    };
    // jsdom's File has no text(): the browser's does.
    const file = (size: number, content: string) => ({ name: 'chain.pem', size, text: jest.fn(async () => content) }) as unknown as File & { text: jest.Mock };
    await pick(file(2000, CERT_D + CERT_C));
    expect(field(el, 'chain').value).toBe(CERT_D + CERT_C);
    const huge = file(MAX_PEM_TEXT + 1, 'x');
    const text = huge.text;
    await pick(huge);
    expect(text).not.toHaveBeenCalled();
    expect(el.querySelector('mat-error')?.textContent).toContain('too large');
  });

  it.each(['Chain file', 'Re-issued certificate file'] as const)('fail the review cannot start while the %s is still being read (the browser reads it asynchronously): enabled again with the text in place', async (label) => {
    const { f, el } = await setup();
    type(el, 'chain', CERT_D + CERT_C);
    const input = el.querySelector(`input[type="file"][aria-label="${label}"]`) as HTMLInputElement;
    let done: (text: string) => void = () => undefined;
    const slow = { name: 'cert.pem', size: 2000, text: () => new Promise<string>((r) => (done = r)) } as unknown as File;
    Object.defineProperty(input, 'files', { value: [slow], configurable: true });
    input.dispatchEvent(new Event('change'));
    await settle(f);
    expect(button(el, 'Review the change')?.disabled).toBe(true);
    // Enter in a field submits the form without the button: not reviewed either.
    el.querySelector('form')?.dispatchEvent(new Event('submit'));
    await settle(f);
    expect(rows(el)).toEqual([]);
    done(label === 'Chain file' ? CERT_B + CERT_C : CERT_D);
    await settle(f);
    expect(button(el, 'Review the change')?.disabled).toBe(false);
    expect(field(el, label === 'Chain file' ? 'chain' : 'certificate').value).toBe(label === 'Chain file' ? CERT_B + CERT_C : CERT_D);
  });

  it('fail a file that cannot be read is said under its field and does not keep the review disabled', async () => {
    const { f, el } = await setup();
    const input = el.querySelector('input[type="file"][aria-label="Chain file"]') as HTMLInputElement;
    const unreadable = { name: 'chain.pem', size: 2000, text: () => Promise.reject(new DOMException('gone', 'NotReadableError')) } as unknown as File;
    Object.defineProperty(input, 'files', { value: [unreadable], configurable: true });
    input.dispatchEvent(new Event('change'));
    await settle(f);
    expect(button(el, 'Review the change')?.disabled).toBe(false);
    expect(field(el, 'chain').value).toBe('');
    expect(el.querySelector('mat-error')?.textContent).toContain('could not be read');
  });
});
