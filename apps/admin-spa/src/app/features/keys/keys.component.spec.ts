import { provideHttpClient, withInterceptors } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed, type ComponentFixture } from '@angular/core/testing';
import { MatDialog } from '@angular/material/dialog';
import { provideRouter } from '@angular/router';
import { of } from 'rxjs';
import { ADMIN_SESSION_HEADER, AdminSessionsService, adminSessionInterceptor } from '../../core/admin-sessions.service';
import type { KeyDetailView, LegacyKeyView } from '../../core/api-types';
import { AuthService } from '../../core/auth.service';
import { csrfInterceptor } from '../../core/csrf.interceptor';
import { ME, adminSession, keyclientMe } from '../../../testing/fixtures';
import { KeysComponent, keyTypeOf } from './keys.component';

const ADMIN_PERMS = ['keys:read', 'keys:admin', 'admin-sessions:manage'];
const ROOT: LegacyKeyView = { keyid: 'demo-root', keyinfo: 'ROOT EC-P384 SHA-384, 0 approver(s)', certificate: 'root-pem' };
const FW: LegacyKeyView = { keyid: 'fw-1', keyinfo: 'FW EC-P256 SHA-256, 2 approver(s)', certificate: 'fw-pem' };

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
    ...over,
  };
}

describe(keyTypeOf.name, () => {
  it('reads the key type from the legacy summary', () => {
    expect([keyTypeOf(ROOT), keyTypeOf(FW), keyTypeOf({ ...FW, keyinfo: 'CA RSA-2048 SHA-256' }), keyTypeOf({ ...FW, keyinfo: 'something else' })]).toEqual(['ROOT', 'FW', 'CA', null]);
  });
});

describe(KeysComponent.name, () => {
  let ctrl: HttpTestingController;
  /** What the next dialog closes with (the dialogs themselves are tested in key-dialogs.spec.ts). */
  let dialogResult: unknown;
  let opened: unknown[];

  async function setup(permissions: string[], sessions: unknown[]): Promise<{ f: ComponentFixture<KeysComponent>; el: HTMLElement }> {
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
      ctrl.expectOne('/api/v1/admin-sessions').flush({ items: sessions });
      await refreshed;
    }
    const f = TestBed.createComponent(KeysComponent);
    ctrl.expectOne('/api/keys').flush([ROOT, FW]);
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
    expect(button(el, 'Change approvers of demo-root')?.disabled).toBe(false);
    expect(button(el, 'Revoke demo-root')).toBeNull();
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
    ctrl.expectOne('/api/keys').flush([ROOT, FW, { keyid: 'fw-2', keyinfo: 'FW EC-P256 SHA-256, 1 approver(s)', certificate: 'x' }]);
    await settle(f);
    expect(button(el, 'Revoke fw-2')).not.toBeNull();
    expect(el.querySelector('#key-detail-title')?.textContent).toContain('fw-2');
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
    ctrl.expectOne('/api/keys').flush([ROOT, FW]);
    await settle(f);
  });

  it('sends nothing when a dialog is cancelled', async () => {
    const { f, el } = await setup(ADMIN_PERMS, [adminSession()]);
    dialogResult = undefined;
    newKey(el)?.click();
    button(el, 'Revoke fw-1')?.click();
    await settle(f);
    ctrl.expectNone({ method: 'POST' });
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
    ctrl.expectNone('/api/keys');
    expect(button(el, 'Revoke fw-1')).not.toBeNull();
  });
});
