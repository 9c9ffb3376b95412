import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed, type ComponentFixture } from '@angular/core/testing';
import { MatDialog } from '@angular/material/dialog';
import { MatSnackBar } from '@angular/material/snack-bar';
import { provideRouter } from '@angular/router';
import { of } from 'rxjs';
import { ADMIN_SESSION_HEADER, AdminSessionsService, adminSessionInterceptor } from '../../core/admin-sessions.service';
import type { KeyDetailView, KeySummaryView } from '../../core/api-types';
import { AuthService } from '../../core/auth.service';
import { csrfInterceptor } from '../../core/csrf.interceptor';
import { ME, adminSession, keyclientMe } from '../../../testing/fixtures';
import { CERT_A, CERT_B, CERT_C, CERT_D } from '../../../testing/certificates';
import { provideWebCrypto } from '../../../testing/webcrypto';
import { KeysComponent } from './keys.component';

const ADMIN_PERMS = ['keys:read', 'keys:admin', 'admin-sessions:manage'];
const ACTIVE_KEYS = '/api/v1/keys?state=ACTIVE';
const EVERY_KEY = '/api/v1/keys';

function summary(over: Partial<KeySummaryView> = {}): KeySummaryView {
  return {
    keyid: 'fw-1',
    type: 'FW',
    algorithm: 'EC_P256',
    hash: 'SHA256',
    requiredApprovers: 2,
    state: 'ACTIVE',
    product: 'gadget',
    parentKeyid: 'demo-root',
    notBefore: '2026-01-01T00:00:00.000Z',
    notAfter: '2027-01-01T00:00:00.000Z',
    revokedAt: null,
    revocationReason: null,
    certificate: 'fw-pem',
    ...over,
  };
}
// The ROOT is recognised by its type alone: its keyid says nothing.
const ROOT = summary({ keyid: 'trust-anchor', type: 'ROOT', algorithm: 'EC_P384', hash: 'SHA384', requiredApprovers: 0, product: null, parentKeyid: null, certificate: 'root-pem' });
const FW = summary();
const OLD = summary({ keyid: 'fw-old', state: 'REVOKED', revokedAt: '2026-06-01T00:00:00.000Z', revocationReason: 'superseded', certificate: 'old-pem' });

function detail(over: Partial<KeyDetailView> = {}): KeyDetailView {
  return {
    keyid: 'fw-1',
    type: 'FW',
    algorithm: 'EC_P256',
    hash: 'SHA256',
    requiredApprovers: 2,
    state: 'ACTIVE',
    product: null,
    certificate: 'fw-pem',
    chain: ['fw-pem', 'root-pem'],
    notBefore: '2026-01-01T00:00:00.000Z',
    notAfter: '2027-01-01T00:00:00.000Z',
    usage: { signOrders: 0, certificatesIssued: 0, lastUsedAt: null },
    limits: { source: 'default', updatedAt: null, maxWindowSeconds: 604_800, maxUsagesPerOperation: 100, maxBackdateSeconds: 300, maxStartAheadSeconds: 86_400 },
    ...over,
  };
}

describe(KeysComponent.name, () => {
  let ctrl: HttpTestingController;
  /** What the next dialog closes with (the dialogs themselves are tested in key-dialogs.spec.ts). */
  let dialogResult: unknown;
  let opened: unknown[];

  async function setup(permissions: string[], sessions: unknown[], items: KeySummaryView[] = [ROOT, FW]): Promise<{ f: ComponentFixture<KeysComponent>; el: HTMLElement }> {
    opened = [];
    TestBed.configureTestingModule({
      providers: [
        provideHttpClient(withInterceptors([csrfInterceptor, adminSessionInterceptor])),
        provideHttpClientTesting(),
        provideRouter([]),
        { provide: MatDialog, useValue: { open: (c: unknown, cfg: unknown) => (opened.push([c, cfg]), { afterClosed: () => of(dialogResult) }) } },
      ],
    });
    ctrl = TestBed.inject(HttpTestingController);
    const loaded = TestBed.inject(AuthService).ensureLoaded();
    ctrl.expectOne('/me').flush(keyclientMe({ ...ME, permissions }));
    await loaded;
    if (permissions.includes('admin-sessions:manage')) {
      const refreshed = TestBed.inject(AdminSessionsService).refresh();
      ctrl.expectOne('/api/v1/admin-sessions?ended=recent').flush({ items: sessions });
      await refreshed;
    }
    const f = TestBed.createComponent(KeysComponent);
    ctrl.expectOne(ACTIVE_KEYS).flush({ items });
    await settle(f);
    return { f, el: f.nativeElement as HTMLElement };
  }

  async function settle(f: ComponentFixture<unknown>) {
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
  }

  afterEach(() => ctrl.verify());

  const button = (el: HTMLElement, label: string) => el.querySelector(`button[aria-label="${label}"]`) as HTMLButtonElement | null;
  const newKey = (el: HTMLElement) => [...el.querySelectorAll('button')].find((b) => b.textContent?.trim() === 'New key') ?? null;
  const showRevoked = (el: HTMLElement) => el.querySelector('mat-checkbox input[type="checkbox"]') as HTMLInputElement;
  const cells = (el: HTMLElement, keyid: string) => {
    const row = [...el.querySelectorAll('tbody tr')].find((tr) => tr.querySelector('td')?.textContent?.trim() === keyid);
    return row ? [...row.querySelectorAll('td')].slice(0, 6).map((td) => td.textContent?.trim()) : null;
  };

  it('lists the active keys with type, algorithm, approvers, state and product', async () => {
    const { el } = await setup(['keys:read'], []);
    expect(showRevoked(el).checked).toBe(false);
    expect([...el.querySelectorAll('thead th')].map((th) => th.textContent?.trim())).toEqual(['Key id', 'Type', 'Algorithm', 'Approvers', 'State', 'Product', 'Actions']);
    expect(cells(el, 'trust-anchor')).toEqual(['trust-anchor', 'ROOT', 'EC_P384 / SHA384', '0', 'ACTIVE', '—']);
    expect(cells(el, 'fw-1')).toEqual(['fw-1', 'FW', 'EC_P256 / SHA256', '2', 'ACTIVE', 'gadget']);
  });

  it('shows revoked keys with their state and no administration action when asked, and hides them again', async () => {
    const { f, el } = await setup(ADMIN_PERMS, [adminSession()]);
    showRevoked(el).click();
    await settle(f);
    ctrl.expectOne(EVERY_KEY).flush({ items: [ROOT, FW, OLD] });
    await settle(f);
    expect(cells(el, 'fw-old')).toEqual(['fw-old', 'FW', 'EC_P256 / SHA256', '2', 'REVOKED', 'gadget']);
    expect(el.querySelector('tbody .state[data-state="REVOKED"]')).not.toBeNull();
    expect(button(el, 'Revoke fw-old')).toBeNull();
    expect(button(el, 'Change approvers of fw-old')).toBeNull();
    // Reading stays possible: details and downloads.
    expect(button(el, 'Details of fw-old')).not.toBeNull();
    expect(button(el, 'Download the chain of fw-old')).not.toBeNull();
    expect(button(el, 'Revoke fw-1')?.disabled).toBe(false);

    showRevoked(el).click();
    await settle(f);
    ctrl.expectOne(ACTIVE_KEYS).flush({ items: [ROOT, FW] });
    await settle(f);
    expect(cells(el, 'fw-old')).toBeNull();
  });

  it('shows only the answer to the latest toggle when an earlier one comes back later', async () => {
    const { f, el } = await setup(['keys:read'], []);
    showRevoked(el).click();
    await settle(f);
    showRevoked(el).click();
    await settle(f);
    const [every, active] = [ctrl.expectOne(EVERY_KEY), ctrl.expectOne(ACTIVE_KEYS)];
    active.flush({ items: [FW] });
    await settle(f);
    every.flush({ items: [ROOT, FW, OLD] });
    await settle(f);
    expect([...el.querySelectorAll('tbody tr')].map((tr) => tr.querySelector('td')?.textContent?.trim())).toEqual(['fw-1']);
  });

  it('shows a reader no administration action', async () => {
    const { el } = await setup(['keys:read'], []);
    expect(el.textContent).toContain('fw-1');
    expect(newKey(el)).toBeNull();
    expect(button(el, 'Change approvers of fw-1')).toBeNull();
    expect(button(el, 'Revoke fw-1')).toBeNull();
    expect(el.querySelector('#key-edit-hint')).toBeNull();
  });

  it('disables the actions with a hint when no administrative session is active', async () => {
    const { el } = await setup(ADMIN_PERMS, [adminSession({ state: 'PENDING' })]);
    expect(el.querySelector('#key-edit-hint')?.textContent).toContain('open an administrative session');
    for (const b of [newKey(el), button(el, 'Change approvers of fw-1'), button(el, 'Revoke fw-1')]) {
      expect(b?.disabled).toBe(true);
      expect(b?.getAttribute('aria-describedby')).toBe('key-edit-hint');
    }
  });

  it('enables the actions inside an active session and offers no revoke for the ROOT', async () => {
    const { el } = await setup(ADMIN_PERMS, [adminSession()]);
    expect(el.querySelector('#key-edit-hint')).toBeNull();
    expect(newKey(el)?.disabled).toBe(false);
    expect(button(el, 'Revoke fw-1')?.disabled).toBe(false);
    expect(button(el, 'Change approvers of trust-anchor')?.disabled).toBe(false);
    expect(button(el, 'Revoke trust-anchor')).toBeNull();
  });

  it('creates a key in the active session, shows it and reloads the list', async () => {
    const { f, el } = await setup(ADMIN_PERMS, [adminSession()]);
    const body = { keyid: 'fw-2', type: 'FW', algorithm: 'EC_P256', requiredApprovers: 1, validityDays: 365, commonName: 'Firmware 2' };
    dialogResult = body;
    newKey(el)?.click();
    await settle(f);
    const create = ctrl.expectOne({ method: 'POST', url: '/api/v1/keys' });
    expect(create.request.body).toEqual(body);
    expect(create.request.headers.get(ADMIN_SESSION_HEADER)).toBe(adminSession().id);
    expect(create.request.headers.get('X-Keyserver-CSRF')).toBe('1');
    create.flush(detail({ keyid: 'fw-2', requiredApprovers: 1 }), { status: 201, statusText: 'Created' });
    await settle(f);
    ctrl.expectOne(ACTIVE_KEYS).flush({ items: [ROOT, FW, summary({ keyid: 'fw-2', requiredApprovers: 1, certificate: 'x' })] });
    await settle(f);
    expect(button(el, 'Revoke fw-2')).not.toBeNull();
    expect(el.querySelector('#key-detail-title')?.textContent).toContain('fw-2');
    // The detail shows the key's versions (key-lifecycle.component.spec.ts).
    ctrl.expectOne({ method: 'GET', url: '/api/v1/keys/fw-2/versions' }).flush({ keyid: 'fw-2', state: 'ACTIVE', currentVersion: 1, destroyedAt: null, items: [] });
  });

  it('changes the approvers starting from the current number', async () => {
    const { f, el } = await setup(ADMIN_PERMS, [adminSession()]);
    dialogResult = 3;
    button(el, 'Change approvers of fw-1')?.click();
    await settle(f);
    ctrl.expectOne({ method: 'GET', url: '/api/v1/keys/fw-1' }).flush(detail());
    await settle(f);
    expect(opened[0]).toEqual([expect.anything(), expect.objectContaining({ data: { keyid: 'fw-1', requiredApprovers: 2 } })]);
    const patch = ctrl.expectOne({ method: 'PATCH', url: '/api/v1/keys/fw-1' });
    expect(patch.request.body).toEqual({ requiredApprovers: 3 });
    expect(patch.request.headers.get(ADMIN_SESSION_HEADER)).toBe(adminSession().id);
    patch.flush(detail({ requiredApprovers: 3 }));
    await settle(f);
    ctrl.expectOne(ACTIVE_KEYS).flush({ items: [ROOT, { ...FW, requiredApprovers: 3 }] });
    await settle(f);
    expect(cells(el, 'fw-1')?.[3]).toBe('3');
  });

  it('sends nothing when a dialog is cancelled', async () => {
    const { f, el } = await setup(ADMIN_PERMS, [adminSession()]);
    dialogResult = undefined;
    newKey(el)?.click();
    button(el, 'Revoke fw-1')?.click();
    await settle(f);
    ctrl.expectNone({ method: 'POST' });
  });

  it('sends nothing when "Change approvers" is cancelled: Material closes a bare mat-dialog-close with an empty string', async () => {
    const { f, el } = await setup(ADMIN_PERMS, [adminSession()]);
    dialogResult = '';
    button(el, 'Change approvers of fw-1')?.click();
    await settle(f);
    ctrl.expectOne({ method: 'GET', url: '/api/v1/keys/fw-1' }).flush(detail());
    await settle(f);
    ctrl.expectNone({ method: 'PATCH' });
    expect(el.querySelector('.problem')).toBeNull();
  });

  it('revokes a key: it leaves the active list, and stays as REVOKED without actions when revoked keys are shown', async () => {
    const { f, el } = await setup(ADMIN_PERMS, [adminSession()]);
    dialogResult = 'keyCompromise';
    button(el, 'Revoke fw-1')?.click();
    await settle(f);
    const rev = ctrl.expectOne({ method: 'POST', url: '/api/v1/keys/fw-1/revocation' });
    expect(rev.request.body).toEqual({ reason: 'keyCompromise' });
    expect(rev.request.headers.get(ADMIN_SESSION_HEADER)).toBe(adminSession().id);
    rev.flush({ ...detail({ state: 'REVOKED' }), revokedBelow: [] });
    await settle(f);
    ctrl.expectOne(ACTIVE_KEYS).flush({ items: [ROOT] });
    await settle(f);
    expect(cells(el, 'fw-1')).toBeNull();
    expect(document.activeElement?.tagName).toBe('H1');

    showRevoked(el).click();
    await settle(f);
    ctrl.expectOne(EVERY_KEY).flush({ items: [ROOT, { ...FW, state: 'REVOKED', revokedAt: '2026-06-01T00:00:00.000Z', revocationReason: 'keyCompromise' }] });
    await settle(f);
    expect(cells(el, 'fw-1')?.[4]).toBe('REVOKED');
    expect(button(el, 'Revoke fw-1')).toBeNull();
  });

  it('warns that revoking a CA revokes every key below it, names the active ones, and says which ones the answer revoked (ADR 0041)', async () => {
    const ca = summary({ keyid: 'ca-1', type: 'CA', product: null, parentKeyid: 'trust-anchor' });
    const sub = summary({ keyid: 'sub-1', type: 'CA', product: null, parentKeyid: 'ca-1' });
    const fw = summary({ keyid: 'fw-9', parentKeyid: 'sub-1' });
    const other = summary({ keyid: 'fw-other', parentKeyid: 'trust-anchor' });
    const { f } = await setup(ADMIN_PERMS, [adminSession()], [ROOT, ca, sub, fw, other]);
    const messages: string[] = [];
    jest.spyOn(TestBed.inject(MatSnackBar), 'open').mockImplementation((m: string) => (messages.push(m), undefined as never));
    dialogResult = 'keyCompromise';
    button(f.nativeElement as HTMLElement, 'Revoke ca-1')?.click();
    await settle(f);
    const detailText = (opened[0] as [unknown, { data: { detail: string } }])[1].data.detail;
    expect(detailText).toContain('Every key below it is revoked with it (active now: sub-1, fw-9)');
    expect(detailText).not.toContain('fw-other');
    ctrl.expectOne({ method: 'POST', url: '/api/v1/keys/ca-1/revocation' }).flush({
      ...detail({ keyid: 'ca-1', type: 'CA', state: 'REVOKED' }),
      revokedBelow: [
        { keyid: 'sub-1', type: 'CA', issuer: 'ca-1', previousState: 'ACTIVE', versions: [1], reason: 'cACompromise' },
        { keyid: 'fw-9', type: 'FW', issuer: 'sub-1', previousState: 'ACTIVE', versions: [1, 2], reason: 'cACompromise' },
      ],
    });
    await settle(f);
    ctrl.expectOne(ACTIVE_KEYS).flush({ items: [ROOT, other] });
    await settle(f);
    expect(messages).toEqual(['Key ca-1 revoked, and with it 2 key(s) below it: sub-1, fw-9.']);
  });

  it('says nothing about keys below when revoking a FW key', async () => {
    const { f, el } = await setup(ADMIN_PERMS, [adminSession()]);
    dialogResult = undefined;
    button(el, 'Revoke fw-1')?.click();
    await settle(f);
    expect((opened[0] as [unknown, { data: { detail: string } }])[1].data.detail).not.toContain('below');
  });

  it('shows the problem of a refused revocation with its code and keeps the list', async () => {
    const { f, el } = await setup(ADMIN_PERMS, [adminSession()]);
    dialogResult = 'superseded';
    button(el, 'Revoke fw-1')?.click();
    await settle(f);
    const rev = ctrl.expectOne({ method: 'POST', url: '/api/v1/keys/fw-1/revocation' });
    expect(rev.request.body).toEqual({ reason: 'superseded' });
    rev.flush(
      { type: 'about:blank', title: 'Conflict', status: 409, code: 'key_already_revoked', detail: 'key fw-1 is already revoked' },
      { status: 409, statusText: 'Conflict', headers: { 'content-type': 'application/problem+json' } },
    );
    await settle(f);
    const problem = el.querySelector('.problem[role="alert"]');
    expect(problem?.getAttribute('data-code')).toBe('key_already_revoked');
    expect(problem?.textContent).toContain('This key is already revoked.');
    ctrl.expectNone(ACTIVE_KEYS);
    expect(button(el, 'Revoke fw-1')).not.toBeNull();
  });
  describe('the external chain of an imported ROOT', () => {
    beforeAll(provideWebCrypto);
    const EXT = summary({ keyid: 'ext-root', type: 'ROOT', requiredApprovers: 0, product: null, parentKeyid: null, certificate: CERT_A });
    const extDetail = (over: Partial<KeyDetailView> = {}) => detail({ keyid: 'ext-root', type: 'ROOT', requiredApprovers: 0, certificate: CERT_A, chain: [CERT_A, CERT_B, CERT_C], ...over });
    const section = (el: HTMLElement) => el.querySelector('app-external-chain');
    const textButton = (el: HTMLElement, text: string) => [...el.querySelectorAll('button')].find((b) => b.textContent?.trim() === text) ?? null;
    const versions = (keyid: string, currentVersion = 1) => ({ keyid, state: 'ACTIVE', currentVersion, pendingVersion: null, destroyedAt: null, items: [] });

    async function open(permissions: string[], d: KeyDetailView) {
      const r = await setup(permissions, [adminSession()], [EXT, FW]);
      button(r.el, `Details of ${d.keyid}`)?.click();
      await settle(r.f);
      ctrl.expectOne(`/api/v1/keys/${d.keyid}`).flush(d);
      await settle(r.f);
      ctrl.expectOne(`/api/v1/keys/${d.keyid}/versions`).flush(versions(d.keyid));
      await settle(r.f);
      return r;
    }

    it.each([
      ['ok an ACTIVE ROOT with an external chain, to a key administrator', ADMIN_PERMS, extDetail(), true],
      ['fail a self-signed ROOT (no chain above it)', ADMIN_PERMS, extDetail({ chain: [CERT_A] }), false],
      ['fail a retired ROOT', ADMIN_PERMS, extDetail({ state: 'RETIRED' }), false],
      ['fail a CA key below the ROOT', ADMIN_PERMS, extDetail({ keyid: 'fw-1', type: 'CA' }), false],
      ['fail a reader', ['keys:read'], extDetail(), false],
    ] as const)('%s: the replacement is offered accordingly', async (_n, permissions, d, shown) => {
      const { el } = await open([...permissions], d);
      expect(section(el) !== null).toBe(shown);
    });

    it('ok replaces the chain in the active session, then shows the new detail and reloads the versions and the list', async () => {
      const { f, el } = await open(ADMIN_PERMS, extDetail());
      const chain = el.querySelector('textarea[formcontrolname="chain"]') as HTMLTextAreaElement;
      chain.value = CERT_B + CERT_C;
      chain.dispatchEvent(new Event('input'));
      const cert = el.querySelector('textarea[formcontrolname="certificate"]') as HTMLTextAreaElement;
      cert.value = CERT_D;
      cert.dispatchEvent(new Event('input'));
      textButton(el, 'Review the change')?.click();
      for (let i = 0; i < 50 && !textButton(el, 'Replace the chain'); i++) await settle(f);
      textButton(el, 'Replace the chain')?.click();
      await settle(f);
      const req = ctrl.expectOne({ method: 'POST', url: '/api/v1/keys/ext-root/external-chain' });
      expect(req.request.headers.get(ADMIN_SESSION_HEADER)).toBe(adminSession().id);
      expect(req.request.headers.get('X-Keyserver-CSRF')).toBe('1');
      const after = extDetail({ certificate: CERT_D, chain: [CERT_D, CERT_B, CERT_C], notAfter: '2029-01-01T00:00:00.000Z' });
      req.flush(after);
      await settle(f);
      ctrl.expectOne('/api/v1/keys/ext-root').flush(after);
      await settle(f);
      ctrl.expectOne(ACTIVE_KEYS).flush({ items: [EXT, FW] });
      await settle(f);
      // A re-issued certificate is the ROOT's next version: the versions table reloads.
      ctrl.expectOne('/api/v1/keys/ext-root/versions').flush(versions('ext-root', 2));
      await settle(f);
      expect(el.querySelector('[role="status"]')?.textContent).toContain('External chain of ext-root replaced');
    });
  });
});
