import { hex, outcome, seedKey, seedAdmin, twoReplicas } from '../../spec/fixtures';
import { AdminSessionRepository } from './admin-session.repository';
import { CertificateRepository } from './certificate.repository';

// Two handles = two independent pools, like two API replicas.
const { a, b } = twoReplicas('certadm');

describe(CertificateRepository.name, () => {
  const cert = (issuerKeyid: string, serialHex: string, subjectDn = 'CN=device-1,O=Demo') => ({
    issuerKeyid,
    serialHex,
    subjectDn,
    sans: ['device-1.example.test'],
    notBefore: new Date(),
    notAfter: new Date(Date.now() + 86_400_000),
    pem: '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n',
  });

  it('stores certificates with a unique serial per issuer and audits the insert', async () => {
    const ca = await seedKey(a);
    const other = await seedKey(a);
    const c = await a.certificates.insert(cert(ca.keyid, '0x0A1B'), { action: 'cert.issue', outcome: 'SUCCESS' });
    expect(c).toMatchObject({ issuerKeyid: ca.keyid, serialHex: '0a1b', sans: ['device-1.example.test'] });
    expect(await outcome(a.certificates.insert(cert(ca.keyid, '0A1B')))).toBe('serial_in_use');
    expect(await outcome(a.certificates.insert(cert(other.keyid, '0a1b')))).toBe('ok');
    expect(await outcome(a.certificates.insert(cert('missing', '01')))).toBe('not_found');
    expect((await a.audit.list({ action: 'cert.issue' })).items[0]).toMatchObject({ keyid: ca.keyid, details: { serialHex: '0a1b' } });
  });

  it('searches, revokes once and lists revoked serials for the CRL', async () => {
    const ca = await seedKey(a);
    for (let i = 0; i < 5; i++) await a.certificates.insert(cert(ca.keyid, hex(4), `CN=Sensor-${i},O=Demo`));
    const page1 = await a.certificates.list({ issuerKeyid: ca.keyid, limit: 3 });
    const page2 = await a.certificates.list({ issuerKeyid: ca.keyid, limit: 3, cursor: page1.nextCursor ?? undefined });
    expect(page1.items).toHaveLength(3);
    expect(page2).toMatchObject({ nextCursor: null });
    expect(page2.items).toHaveLength(2);
    const found = await a.certificates.list({ subjectContains: 'sensor-3' });
    expect(found.items.map((c) => c.subjectDn)).toEqual(['CN=Sensor-3,O=Demo']);
    const serial = found.items[0].serialHex;
    const at = new Date('2026-01-01T00:00:00Z');
    expect(await a.certificates.revoke(ca.keyid, serial, 'keyCompromise', at)).toMatchObject({ revokedAt: at, revocationReason: 'keyCompromise' });
    expect(await outcome(a.certificates.revoke(ca.keyid, serial, 'again'))).toBe('invalid_state');
    expect(await outcome(a.certificates.revoke(ca.keyid, 'ffff', 'x'))).toBe('not_found');
    expect((await a.certificates.list({ issuerKeyid: ca.keyid, revoked: true })).items.map((c) => [c.serialHex, c.revokedAt, c.revocationReason])).toEqual([[serial, at, 'keyCompromise']]);
    expect((await a.certificates.list({ issuerKeyid: ca.keyid, revoked: false })).items).toHaveLength(4);
    expect((await a.certificates.get(ca.keyid, serial.toUpperCase())).serialHex).toBe(serial);
  });
});

describe(AdminSessionRepository.name, () => {
  it('activates exactly once when admins authorize concurrently, counting each admin once', async () => {
    const creator = await seedAdmin(a);
    const admins = await Promise.all([1, 2, 3, 4].map(() => seedAdmin(a)));
    const s = await a.adminSessions.open({ description: 'rotate', creatorId: creator.id, requiredApprovals: 2, expiresAt: new Date(Date.now() + 600_000) });
    expect(s.state).toBe('PENDING');
    expect(await a.adminSessions.getActive(s.id)).toBeNull();
    const results = await Promise.all(
      [admins[0], admins[0], admins[1], admins[2], admins[3]].map((ad, i) =>
        (i % 2 ? a : b).adminSessions.authorize(s.id, ad.id).then(
          (r) => (r.activated ? 'activated' : 'counted'),
          (e: { code: string }) => e.code,
        ),
      ),
    );
    expect(results.filter((x) => x === 'activated')).toHaveLength(1);
    expect(results.filter((x) => x === 'counted')).toHaveLength(1);
    expect(results.filter((x) => x !== 'activated' && x !== 'counted').every((x) => x === 'already_approved' || x === 'session_not_active')).toBe(true);
    const active = await a.adminSessions.getActive(s.id);
    expect(active?.approverIds).toHaveLength(2);
    expect((await a.adminSessions.listActive()).map((x) => x.id)).toContain(s.id);
    expect((await a.adminSessions.close(s.id)).state).toBe('CLOSED');
    expect(await outcome(a.adminSessions.close(s.id))).toBe('invalid_state');
    expect(await a.adminSessions.getActive(s.id)).toBeNull();
  });

  it('expires sessions and refuses authorizations after expiry', async () => {
    const creator = await seedAdmin(a);
    const admin = await seedAdmin(a);
    const s = await a.adminSessions.open({ description: 'x', creatorId: creator.id, requiredApprovals: 1, expiresAt: new Date(Date.now() + 1000) });
    expect(await outcome(a.adminSessions.authorize(s.id, admin.id, undefined, new Date(Date.now() + 5000)))).toBe('session_not_active');
    expect((await a.adminSessions.get(s.id)).state).toBe('EXPIRED');
    const t = await a.adminSessions.open({ description: 'y', creatorId: creator.id, requiredApprovals: 0, expiresAt: new Date(Date.now() + 1000) });
    expect(t.state).toBe('ACTIVE');
    expect(await a.adminSessions.expire(new Date(Date.now() + 5000))).toBeGreaterThanOrEqual(1);
    expect((await a.adminSessions.get(t.id)).state).toBe('EXPIRED');
    expect(await outcome(a.adminSessions.open({ description: 'z', creatorId: creator.id, requiredApprovals: -1, expiresAt: new Date() }))).toBe('invalid_input');
    expect(await outcome(a.adminSessions.get('nope'))).toBe('not_found');
  });
});
