import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { MatDialog } from '@angular/material/dialog';
import { of } from 'rxjs';
import type { CertificateView } from '../../core/api-types';
import { CertificatesComponent } from './certificates.component';

const CERT: CertificateView = {
  id: '55555555-5555-4555-8555-555555555555',
  issuer: 'ca-devices',
  serial: '0a1b2c',
  subject: 'CN=device-0001',
  sans: [],
  notBefore: '2026-01-01T00:00:00Z',
  notAfter: '2027-01-01T00:00:00Z',
  certificate: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----',
  operationId: null,
  revokedAt: null,
  revocationReason: null,
  createdAt: '2026-01-01T00:00:00Z',
};

describe(CertificatesComponent.name, () => {
  let ctrl: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({
      providers: [provideHttpClient(), provideHttpClientTesting(), { provide: MatDialog, useValue: { open: () => ({ afterClosed: () => of('keyCompromise') }) } }],
    });
    ctrl = TestBed.inject(HttpTestingController);
  });

  afterEach(() => ctrl.verify());

  it('revokes with the reason chosen in the dialog and shows the new status', async () => {
    const f = TestBed.createComponent(CertificatesComponent);
    ctrl.expectOne((r) => r.url === '/api/v1/certificates').flush({ items: [CERT], nextCursor: null });
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    const el = f.nativeElement as HTMLElement;
    (el.querySelector('button[aria-label="Revoke certificate 0a1b2c"]') as HTMLButtonElement).click();
    await new Promise((r) => setTimeout(r));
    const req = ctrl.expectOne({ method: 'POST', url: `/api/v1/certificates/${CERT.id}/revocation` });
    expect(req.request.body).toEqual({ reason: 'keyCompromise' });
    req.flush({ ...CERT, revokedAt: '2026-11-29T01:00:00Z', revocationReason: 'keyCompromise' });
    await new Promise((r) => setTimeout(r));
    await f.whenStable();
    expect(el.textContent).toContain('(keyCompromise)');
    expect(el.querySelector('button[aria-label="Revoke certificate 0a1b2c"]')).toBeNull();
  });

  it('searches by serial from the first page again', async () => {
    const f = TestBed.createComponent(CertificatesComponent);
    ctrl.expectOne((r) => r.url === '/api/v1/certificates').flush({ items: [], nextCursor: null });
    await f.whenStable();
    const el = f.nativeElement as HTMLElement;
    const input = el.querySelector('input[formcontrolname="serial"]') as HTMLInputElement;
    input.value = '0A1B';
    input.dispatchEvent(new Event('input'));
    (el.querySelector('form button[type="submit"]') as HTMLButtonElement).click();
    const req = ctrl.expectOne((r) => r.url === '/api/v1/certificates');
    expect(req.request.params.get('serial')).toBe('0A1B');
    expect(req.request.params.has('cursor')).toBe(false);
    req.flush({ items: [], nextCursor: null });
  });
});
