import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { firstValueFrom } from 'rxjs';
import { AuditService } from './audit.service';
import { CertificatesService } from './certificates.service';
import { KeysService } from './keys.service';
import { OperationsService } from './operations.service';
import { SubjectsService } from './subjects.service';
import { operation } from '../../testing/fixtures';

describe('API services', () => {
  let ctrl: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({ providers: [provideHttpClient(), provideHttpClientTesting()] });
    ctrl = TestBed.inject(HttpTestingController);
  });

  afterEach(() => ctrl.verify());

  describe(OperationsService.name, () => {
    it('lists operations waiting for me with a cursor and a bounded page', async () => {
      const page = firstValueFrom(TestBed.inject(OperationsService).list({ awaitingMe: true, key: ' ' }, 'c-1'));
      const req = ctrl.expectOne((r) => r.url === '/api/v1/operations');
      expect(req.request.method).toBe('GET');
      expect(req.request.params.keys().sort()).toEqual(['awaiting', 'cursor', 'limit']);
      expect(req.request.params.get('awaiting')).toBe('me');
      expect(req.request.params.get('cursor')).toBe('c-1');
      expect(Number(req.request.params.get('limit'))).toBeLessThanOrEqual(500);
      req.flush({ items: [operation()], nextCursor: null });
      expect((await page).items).toHaveLength(1);
    });

    it('sends the state, key and mine filters', () => {
      TestBed.inject(OperationsService).list({ state: 'APPROVED', key: 'fw-1', mine: true }).subscribe();
      const req = ctrl.expectOne((r) => r.url === '/api/v1/operations');
      expect(req.request.params.get('state')).toBe('APPROVED');
      expect(req.request.params.get('key')).toBe('fw-1');
      expect(req.request.params.get('mine')).toBe('true');
      expect(req.request.params.has('awaiting')).toBe(false);
      req.flush({ items: [], nextCursor: null });
    });

    it('approves, rejects with a reason, cancels and creates', () => {
      const svc = TestBed.inject(OperationsService);
      svc.approve('o/1').subscribe();
      ctrl.expectOne({ method: 'POST', url: '/api/v1/operations/o%2F1/approvals' }).flush(operation());
      svc.reject('o1', 'wrong digest').subscribe();
      const rej = ctrl.expectOne({ method: 'POST', url: '/api/v1/operations/o1/rejection' });
      expect(rej.request.body).toEqual({ reason: 'wrong digest' });
      rej.flush(operation({ state: 'REJECTED' }));
      svc.cancel('o1').subscribe();
      ctrl.expectOne({ method: 'POST', url: '/api/v1/operations/o1/cancellation' }).flush(operation({ state: 'CANCELLED' }));
      const body = { description: 'Sign the release', validFrom: '2026-01-01T00:00:00.000Z', validTo: '2026-01-02T00:00:00.000Z', keys: [{ keyid: 'k', usages: 1 }] };
      svc.create(body).subscribe();
      const create = ctrl.expectOne({ method: 'POST', url: '/api/v1/operations' });
      expect(create.request.body).toEqual(body);
      create.flush(operation());
    });
  });

  describe(KeysService.name, () => {
    it('reads the key list and one key with its chain', () => {
      const svc = TestBed.inject(KeysService);
      svc.list().subscribe();
      ctrl.expectOne({ method: 'GET', url: '/api/keys' }).flush([]);
      svc.get('fw-2026').subscribe();
      ctrl.expectOne({ method: 'GET', url: '/api/v1/keys/fw-2026' }).flush({});
    });

    it('lists the keys of every state, or filtered by state and type, and answers their items', async () => {
      const svc = TestBed.inject(KeysService);
      const all = firstValueFrom(svc.summaries());
      const every = ctrl.expectOne((r) => r.url === '/api/v1/keys');
      expect([every.request.method, every.request.params.keys()]).toEqual(['GET', []]);
      every.flush({ items: [{ keyid: 'demo-root' }, { keyid: 'fw-old' }] });
      expect((await all).map((k) => k.keyid)).toEqual(['demo-root', 'fw-old']);
      svc.summaries({ state: 'REVOKED', type: 'CA' }).subscribe();
      const filtered = ctrl.expectOne((r) => r.url === '/api/v1/keys');
      expect(filtered.request.urlWithParams).toBe('/api/v1/keys?state=REVOKED&type=CA');
      filtered.flush({ items: [] });
    });

    it('creates a key, changes its approvers and revokes it with the documented routes and bodies', async () => {
      const svc = TestBed.inject(KeysService);
      const body = { keyid: 'fw-2026', type: 'FW', algorithm: 'EC_P256', requiredApprovers: 1, validityDays: 365, product: 'gadget', commonName: 'Firmware 2026' } as const;
      const created = firstValueFrom(svc.create(body));
      const create = ctrl.expectOne({ method: 'POST', url: '/api/v1/keys' });
      expect(create.request.body).toEqual(body);
      create.flush({ keyid: 'fw-2026', state: 'ACTIVE' }, { status: 201, statusText: 'Created' });
      expect(await created).toEqual({ keyid: 'fw-2026', state: 'ACTIVE' });
      svc.setRequiredApprovers('fw/2026', 3).subscribe();
      const patch = ctrl.expectOne({ method: 'PATCH', url: '/api/v1/keys/fw%2F2026' });
      expect(patch.request.body).toEqual({ requiredApprovers: 3 });
      patch.flush({});
      svc.revoke('fw-2026', 'superseded').subscribe();
      const rev = ctrl.expectOne({ method: 'POST', url: '/api/v1/keys/fw-2026/revocation' });
      expect(rev.request.body).toEqual({ reason: 'superseded' });
      rev.flush({ keyid: 'fw-2026', state: 'REVOKED' });
    });
  });

  describe(CertificatesService.name, () => {
    it('searches with trimmed non-empty filters and revokes with a reason', () => {
      const svc = TestBed.inject(CertificatesService);
      svc.search({ serial: ' 0a1b ', subject: '', issuer: 'ca-1' }, null).subscribe();
      const req = ctrl.expectOne((r) => r.url === '/api/v1/certificates');
      expect(req.request.params.get('serial')).toBe('0a1b');
      expect(req.request.params.has('subject')).toBe(false);
      expect(req.request.params.get('issuer')).toBe('ca-1');
      expect(req.request.params.has('cursor')).toBe(false);
      req.flush({ items: [], nextCursor: null });
      svc.revoke('c1', 'keyCompromise').subscribe();
      const rev = ctrl.expectOne({ method: 'POST', url: '/api/v1/certificates/c1/revocation' });
      expect(rev.request.body).toEqual({ reason: 'keyCompromise' });
      rev.flush({});
    });
  });

  describe(AuditService.name, () => {
    it('sends the filters and reads the verification', () => {
      const svc = TestBed.inject(AuditService);
      svc.list({ action: 'operation.approve', outcome: 'DENIED', from: '2026-01-01T00:00:00.000Z' }, '123').subscribe();
      const req = ctrl.expectOne((r) => r.url === '/api/v1/audit');
      expect(req.request.params.get('action')).toBe('operation.approve');
      expect(req.request.params.get('outcome')).toBe('DENIED');
      expect(req.request.params.get('from')).toBe('2026-01-01T00:00:00.000Z');
      expect(req.request.params.get('cursor')).toBe('123');
      req.flush({ items: [], nextCursor: null });
      svc.verify().subscribe();
      ctrl.expectOne({ method: 'GET', url: '/api/v1/audit/verify' }).flush({ ok: true, checked: 3 });
    });
  });

  describe(SubjectsService.name, () => {
    it('reads subjects, roles and unknown principals and changes them', async () => {
      const svc = TestBed.inject(SubjectsService);
      const subjects = firstValueFrom(svc.subjects());
      ctrl.expectOne({ method: 'GET', url: '/api/v1/subjects' }).flush({ items: [{ id: 's' }] });
      expect(await subjects).toEqual([{ id: 's' }]);
      svc.roles().subscribe();
      ctrl.expectOne({ method: 'GET', url: '/api/v1/roles' }).flush({ items: [] });
      svc.unknownPrincipals().subscribe();
      ctrl.expectOne({ method: 'GET', url: '/api/v1/unknown-principals' }).flush({ items: [] });
      svc.updateSubject('s', { roles: ['approvers'] }).subscribe();
      expect(ctrl.expectOne({ method: 'PATCH', url: '/api/v1/subjects/s' }).request.body).toEqual({ roles: ['approvers'] });
      svc.updateRole('approvers', { natures: ['APPROVER'] }).subscribe();
      ctrl.expectOne({ method: 'PATCH', url: '/api/v1/roles/approvers' }).flush({});
      svc.createRole({ name: 'r', natures: [] }).subscribe();
      ctrl.expectOne({ method: 'POST', url: '/api/v1/roles' }).flush({});
      svc.createSubject({ kind: 'USER', tid: 't', oid: 'o', displayName: 'D' }).subscribe();
      ctrl.expectOne({ method: 'POST', url: '/api/v1/subjects' }).flush({});
    });
  });
});
