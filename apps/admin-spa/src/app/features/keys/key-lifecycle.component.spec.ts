import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed, type ComponentFixture } from '@angular/core/testing';
import { MatSnackBar } from '@angular/material/snack-bar';
import { csrfInterceptor } from '../../core/csrf.interceptor';
import type { KeyVersionListView } from '../../core/key-lifecycle.service';
import { KeyLifecycleComponent } from './key-lifecycle.component';

function version(n: number, over: Partial<KeyVersionListView['items'][number]> = {}): KeyVersionListView['items'][number] {
  return {
    version: n,
    state: 'ACTIVE',
    current: true,
    certificate: `pem-${n}`,
    serial: `0${n}`,
    notBefore: '2026-01-01T00:00:00.000Z',
    notAfter: '2027-01-01T00:00:00.000Z',
    spkiSha256: 'ab'.repeat(32),
    issuerKeyid: 'demo-root',
    issuerVersion: 1,
    createdAt: '2026-01-01T00:00:00.000Z',
    retiredAt: null,
    revokedAt: null,
    revocationReason: null,
    destroyedAt: null,
    ...over,
  };
}

const list = (over: Partial<KeyVersionListView> = {}): KeyVersionListView => ({ keyid: 'fw-1', state: 'ACTIVE', currentVersion: 2, pendingVersion: null, destroyedAt: null, items: [version(1, { state: 'RETIRED', current: false }), version(2)], ...over });

describe(KeyLifecycleComponent.name, () => {
  let ctrl: HttpTestingController;
  let confirmed: boolean;

  async function setup(canEdit: boolean, versions: KeyVersionListView): Promise<{ f: ComponentFixture<KeyLifecycleComponent>; el: HTMLElement; changed: number[] }> {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(withInterceptors([csrfInterceptor])), provideHttpClientTesting(), { provide: MatSnackBar, useValue: { open: () => undefined } }],
    });
    ctrl = TestBed.inject(HttpTestingController);
    const f = TestBed.createComponent(KeyLifecycleComponent);
    f.componentRef.setInput('keyid', 'fw-1');
    f.componentRef.setInput('canEdit', canEdit);
    const changed: number[] = [];
    f.componentInstance.changed.subscribe(() => changed.push(1));
    await settle(f);
    ctrl.expectOne({ method: 'GET', url: '/api/v1/keys/fw-1/versions' }).flush(versions);
    await settle(f);
    return { f, el: f.nativeElement as HTMLElement, changed };
  }

  async function settle(f: ComponentFixture<unknown>) {
    f.detectChanges();
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
  }

  const buttonNamed = (el: HTMLElement, text: string) => [...el.querySelectorAll('button')].find((b) => b.textContent?.trim() === text) ?? null;
  const rows = (el: HTMLElement) => [...el.querySelectorAll('tbody tr')].map((tr) => (tr.querySelector('td')?.textContent ?? '').trim());

  beforeEach(() => {
    confirmed = true;
    jest.spyOn(window, 'confirm').mockImplementation(() => confirmed);
  });
  afterEach(() => {
    ctrl.verify();
    jest.restoreAllMocks();
  });

  it('lists every version, the current one marked; no action without an ACTIVE session', async () => {
    const { el } = await setup(false, list());
    expect(rows(el)).toEqual(['1', '2 (current)']);
    expect(el.querySelector('[role="group"]')).toBeNull();
  });

  it('shows each validity as the console shows every date (a time element, ISO 8601 on hover) and labels the cells for the phone layout', async () => {
    const { el } = await setup(false, list());
    const times = [...el.querySelectorAll('tbody tr')].map((tr) => [...tr.querySelectorAll('time')].map((t) => [t.getAttribute('datetime'), t.getAttribute('title')]));
    expect(times).toEqual([
      [
        ['2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'],
        ['2027-01-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
      ],
      [
        ['2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z'],
        ['2027-01-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z'],
      ],
    ]);
    expect(el.querySelector('table')?.classList.contains('responsive')).toBe(true);
    expect([...el.querySelectorAll('tbody tr:first-child td')].map((td) => td.getAttribute('data-label'))).toEqual(['Version', 'State', 'Valid', 'Public key (SHA-256)', 'Actions']);
  });

  it.each([
    ['Renew', 'renewal', { validityDays: 90 }],
    ['Rotate', 'rotation', { validityDays: 90 }],
    ['Retire', 'retirement', {}],
  ])('%s posts to /%s with its body and reloads the versions', async (label, path, body) => {
    const { f, el, changed } = await setup(true, list());
    const days = el.querySelector('input[type="number"]') as HTMLInputElement;
    days.value = '90';
    days.dispatchEvent(new Event('input'));
    buttonNamed(el, label)?.click();
    await settle(f);
    const req = ctrl.expectOne({ method: 'POST', url: `/api/v1/keys/fw-1/${path}` });
    expect(req.request.body).toEqual(body);
    req.flush({});
    await settle(f);
    ctrl.expectOne('/api/v1/keys/fw-1/versions').flush(list({ currentVersion: 3 }));
    await settle(f);
    expect(changed).toHaveLength(1);
  });

  it('offers only destruction for a retired key, asks first, and sends nothing when refused', async () => {
    const { f, el } = await setup(true, list({ state: 'RETIRED' }));
    expect(buttonNamed(el, 'Rotate')).toBeNull();
    confirmed = false;
    buttonNamed(el, 'Destroy in the HSM')?.click();
    await settle(f);
    ctrl.expectNone({ method: 'POST' });
  });

  it('shows the refusal with its code and keeps the list', async () => {
    const { f, el } = await setup(true, list({ state: 'REVOKED' }));
    buttonNamed(el, 'Destroy in the HSM')?.click();
    await settle(f);
    ctrl.expectOne({ method: 'POST', url: '/api/v1/keys/fw-1/destruction' }).flush({ code: 'key_has_active_children', title: 'x', status: 409 }, { status: 409, statusText: 'Conflict' });
    await settle(f);
    expect(el.textContent).toContain('key_has_active_children');
    expect(rows(el)).toEqual(['1', '2 (current)']);
  });

  it('reloads the versions when the key changes state elsewhere on the page (a revocation)', async () => {
    const { f, el } = await setup(true, list());
    f.componentRef.setInput('keyState', 'REVOKED');
    await settle(f);
    ctrl.expectOne('/api/v1/keys/fw-1/versions').flush(list({ state: 'REVOKED', items: [version(1, { state: 'REVOKED', current: false }), version(2, { state: 'REVOKED', current: false })] }));
    await settle(f);
    expect([...el.querySelectorAll('.state')].map((s) => s.textContent?.trim())).toEqual(['REVOKED', 'REVOKED']);
  });

  it('fail another key chosen: the first key\'s versions and actions go at once, not shown as the new key\'s while its versions load', async () => {
    const { f, el } = await setup(true, list({ state: 'RETIRED' }));
    expect(buttonNamed(el, 'Destroy in the HSM')).not.toBeNull();
    f.componentRef.setInput('keyid', 'fw-2');
    await settle(f);
    expect({ rows: rows(el), group: el.querySelector('[role="group"]') }).toEqual({ rows: [], group: null });
    ctrl.expectOne('/api/v1/keys/fw-2/versions').flush(list({ keyid: 'fw-2', items: [version(1)] }));
    await settle(f);
    expect(rows(el)).toEqual(['1 (current)']);
    expect(buttonNamed(el, 'Rotate')).not.toBeNull();
  });

  it('fail answers out of order: only the versions of the key chosen last are shown', async () => {
    const { f, el } = await setup(true, list());
    f.componentRef.setInput('keyid', 'fw-2');
    await settle(f);
    f.componentRef.setInput('keyid', 'fw-3');
    await settle(f);
    const [second, third] = [ctrl.expectOne('/api/v1/keys/fw-2/versions'), ctrl.expectOne('/api/v1/keys/fw-3/versions')];
    third.flush(list({ keyid: 'fw-3', items: [version(1), version(2, { current: false }), version(3, { current: false })] }));
    await settle(f);
    second.flush(list({ keyid: 'fw-2', items: [version(1)] }));
    await settle(f);
    expect(el.querySelector('caption')?.textContent).toContain('fw-3');
    expect(rows(el)).toEqual(['1 (current)', '2', '3']);
  });

  it('offers nothing for a destroyed key', async () => {
    const { el } = await setup(true, list({ state: 'REVOKED', destroyedAt: '2026-06-01T00:00:00.000Z' }));
    expect(el.querySelector('[role="group"]')).toBeNull();
  });
});
