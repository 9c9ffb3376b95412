import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditRepository, createDb, type Db } from '@keyserver/data-access';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { call, ciToken, operationBody, run, userToken } from './operations-support';

interface Issued {
  id: string;
  certificate: string;
  chain: string[];
  serial: string;
}
interface CertView {
  id: string;
  serial: string;
  subject: string;
  issuer: string;
  revokedAt: string | null;
}
interface Page {
  items: CertView[];
  nextCursor: string | null;
}

describe('device certificates and CRLs', () => {
  let p: RunningPlatform;
  let db: Db;
  let work: string;
  let ci: string;
  let otto: string;
  let ada: string;
  const issued: Issued[] = [];
  let operationid = '';

  const f = (name: string) => join(work, name);
  const api = <T = Record<string, unknown>>(token: string, method: string, path: string, body?: unknown) => call<T>(p.env.urls.api, token, method, path, body);

  /** A CSR made by openssl req (the device side we did not write). */
  function csr(name: string, keyArgs: string[], subject: string, extra: string[] = []): string {
    run('openssl', ['req', '-new', ...keyArgs, '-nodes', '-keyout', f(`${name}.key`), '-subj', subject, ...extra, '-out', f(`${name}.csr`)]);
    return readFileSync(f(`${name}.csr`), 'utf8');
  }

  beforeAll(async () => {
    p = await startPlatform();
    db = createDb(p.databaseUrl, { poolSize: 2 });
    work = mkdtempSync(join(tmpdir(), 'ks-certs-'));
    ci = await ciToken(p);
    otto = await userToken(p, 'otto.orderer@demo.test');
    ada = await userToken(p, 'ada.admin@demo.test');
    const op = await api<{ id: string }>(ci, 'POST', '/api/v1/operations', operationBody('demo-ca-dev', 2));
    expect(op.status).toBe(201);
    operationid = op.body.id;
  });

  afterAll(async () => {
    await db?.close();
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it.each([
    ['P-256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'device-ec-0001'],
    ['RSA-2048', ['-newkey', 'rsa:2048'], 'device-rsa-0002'],
  ])('issues a %s device certificate from an openssl CSR that openssl and certtool verify up to the root', async (_alg, keyArgs, cn) => {
    const pem = csr(cn, keyArgs, `/CN=${cn}/O=Demo Devices Ltd`, ['-addext', `subjectAltName=DNS:${cn}.demo.test`]);
    const r = await api<Issued>(ci, 'POST', '/api/v1/certificates', { operationid, keyid: 'demo-ca-dev', csr: pem });
    expect(r.status).toBe(201);
    issued.push(r.body);
    const { certificate, chain, serial } = r.body;
    expect(chain).toHaveLength(2);
    writeFileSync(f(`${cn}.pem`), certificate);
    writeFileSync(f('trust.pem'), chain[1] + chain[0]);
    writeFileSync(f(`${cn}-chain.pem`), certificate + chain[0] + chain[1]);

    expect(run('openssl', ['verify', '-x509_strict', '-CAfile', f('trust.pem'), f(`${cn}.pem`)])).toContain(': OK');
    expect(run('certtool', ['--verify-chain', '--infile', f(`${cn}-chain.pem`)])).toMatch(/Chain verification output: Verified/);
    // The certificate carries the CSR's key, its subject and SAN, and names this server's CRL.
    expect(run('openssl', ['x509', '-in', f(`${cn}.pem`), '-noout', '-pubkey'])).toBe(run('openssl', ['pkey', '-in', f(`${cn}.key`), '-pubout']));
    const x = new X509Certificate(certificate);
    expect(x.subject).toContain(`CN=${cn}`);
    expect(x.subjectAltName).toBe(`DNS:${cn}.demo.test`);
    expect(BigInt(`0x${x.serialNumber}`)).toBe(BigInt(`0x${serial}`));
    expect(x.ca).toBe(false);
    expect(run('openssl', ['x509', '-in', f(`${cn}.pem`), '-noout', '-ext', 'crlDistributionPoints'])).toContain(`${p.env.urls.api}/api/v1/crl/demo-ca-dev/versions/1`);
  });

  it('counts each certificate as one usage of the operation and refuses the next with 409 usage_exhausted', async () => {
    const op = await api<{ state: string; keys: { usagesUsed: number }[] }>(ci, 'GET', `/api/v1/operations/${operationid}`);
    expect(op.body).toMatchObject({ state: 'EXHAUSTED', keys: [{ usagesUsed: 2 }] });
    const pem = csr('third', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '/CN=device-0003');
    const r = await api(ci, 'POST', '/api/v1/certificates', { operationid, keyid: 'demo-ca-dev', csr: pem });
    expect(r.status).toBe(409);
    expect(r.body).toMatchObject({ code: 'usage_exhausted' });
  });

  it('finds certificates by serial, subject and issuer with cursor pagination', async () => {
    const [ec, rsa] = issued;
    const bySerial = await api<Page>(ci, 'GET', `/api/v1/certificates?serial=${ec.serial}`);
    expect(bySerial.status).toBe(200);
    expect(bySerial.body.items.map((c) => c.id)).toEqual([ec.id]);
    const bySubject = await api<Page>(ci, 'GET', '/api/v1/certificates?subject=DEVICE-RSA');
    expect(bySubject.body.items.map((c) => c.id)).toEqual([rsa.id]);
    const first = await api<Page>(ci, 'GET', '/api/v1/certificates?issuer=demo-ca-dev&limit=1');
    expect(first.body.items).toHaveLength(1);
    expect(first.body.nextCursor).toBe(first.body.items[0].id);
    const second = await api<Page>(ci, 'GET', `/api/v1/certificates?issuer=demo-ca-dev&limit=1&cursor=${first.body.nextCursor}`);
    expect(second.body.items).toHaveLength(1);
    expect(new Set([first.body.items[0].id, second.body.items[0].id])).toEqual(new Set([ec.id, rsa.id]));
    const none = await api<Page>(ci, 'GET', '/api/v1/certificates?issuer=demo-ca-prod');
    expect(none.body.items).toEqual([]);
    const bad = await api(ci, 'GET', '/api/v1/certificates?serial=xyz');
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ code: 'validation_failed' });
  });

  it('revokes a certificate once; the public CRL, signed by the CA in the HSM, lists its serial', async () => {
    const [ec, rsa] = issued;
    const before = await fetch(`${p.env.urls.api}/api/v1/crl/demo-ca-dev`);
    expect(before.status).toBe(200);
    writeFileSync(f('before.crl'), Buffer.from(await before.arrayBuffer()));
    expect(run('openssl', ['crl', '-inform', 'DER', '-in', f('before.crl'), '-noout', '-text'])).toContain('No Revoked Certificates');

    const r = await api<CertView>(ci, 'POST', `/api/v1/certificates/${ec.id}/revocation`, { reason: 'keyCompromise' });
    expect(r.status).toBe(200);
    expect(r.body.revokedAt).not.toBeNull();
    const again = await api(ci, 'POST', `/api/v1/certificates/${ec.id}/revocation`, { reason: 'superseded' });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'invalid_state' });

    const res = await fetch(`${p.env.urls.api}/api/v1/crl/demo-ca-dev`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/pkix-crl');
    writeFileSync(f('ca.crl'), Buffer.from(await res.arrayBuffer()));
    writeFileSync(f('chain.pem'), ec.chain[0] + ec.chain[1]);
    const text = run('openssl', ['crl', '-inform', 'DER', '-in', f('ca.crl'), '-CAfile', f('chain.pem'), '-verify', '-noout', '-text']);
    expect(text.toUpperCase()).toContain(`SERIAL NUMBER: ${BigInt(`0x${ec.serial}`).toString(16).toUpperCase().padStart(ec.serial.length, '0')}`);
    expect(text.toUpperCase()).not.toContain(rsa.serial.toUpperCase());
    expect(text).toContain('Key Compromise');
    // openssl's own revocation check now refuses the revoked certificate and still accepts the other one.
    run('openssl', ['crl', '-inform', 'DER', '-in', f('ca.crl'), '-out', f('ca-crl.pem')]);
    const rootCrl = await fetch(`${p.env.urls.api}/api/v1/crl/demo-root`);
    expect(rootCrl.status).toBe(200);
    writeFileSync(f('root.crl'), Buffer.from(await rootCrl.arrayBuffer()));
    run('openssl', ['crl', '-inform', 'DER', '-in', f('root.crl'), '-out', f('root-crl.pem')]);
    writeFileSync(f('crls.pem'), readFileSync(f('ca-crl.pem'), 'utf8') + readFileSync(f('root-crl.pem'), 'utf8'));
    writeFileSync(f('ec.pem'), ec.certificate);
    writeFileSync(f('rsa.pem'), rsa.certificate);
    expect(() => run('openssl', ['verify', '-crl_check_all', '-CRLfile', f('crls.pem'), '-CAfile', f('trust.pem'), f('ec.pem')])).toThrow(/certificate revoked/);
    expect(run('openssl', ['verify', '-crl_check_all', '-CRLfile', f('crls.pem'), '-CAfile', f('trust.pem'), f('rsa.pem')])).toContain(': OK');

    const listed = await api<Page>(ci, 'GET', `/api/v1/certificates?serial=${ec.serial}`);
    expect(listed.body.items[0].revokedAt).not.toBeNull();
  });

  it('lets an administrator revoke but not a caller without a grant on the issuing CA', async () => {
    const [, rsa] = issued;
    const aude = await userToken(p, 'aude.auditor@demo.test');
    const auditor = await api(aude, 'POST', `/api/v1/certificates/${rsa.id}/revocation`, { reason: 'superseded' });
    expect(auditor.status).toBe(403);
    const admin = await api<CertView>(ada, 'POST', `/api/v1/certificates/${rsa.id}/revocation`, { reason: 'superseded' });
    expect(admin.status).toBe(200);
    expect(admin.body.revokedAt).not.toBeNull();
  });

  it.each([
    ['fail unknown CRL key', '/api/v1/crl/no-such-ca', 404, 'key_not_found'],
    ['fail firmware key has no CRL', '/api/v1/crl/demo-fw-dev', 404, 'key_not_found'],
  ])('%s: answers %s with a coded 4xx', async (_n, path, status, code) => {
    const r = await fetch(`${p.env.urls.api}${path}`);
    expect(r.status).toBe(status);
    expect(((await r.json()) as { code: string }).code).toBe(code);
  });

  describe('refusals write nothing but the audit entry', () => {
    let badOp = '';
    let pem = '';
    beforeAll(async () => {
      const op = await api<{ id: string }>(ci, 'POST', '/api/v1/operations', operationBody('demo-ca-dev', 5));
      badOp = op.body.id;
      pem = csr('good', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '/CN=device-ok');
    });

    const tamper = (text: string): string => {
      const lines = text.trim().split('\n');
      const body = Buffer.from(lines.slice(1, -1).join(''), 'base64');
      body[body.length - 5] ^= 0x01; // inside the signature value
      return `${lines[0]}\n${body.toString('base64').replace(/(.{64})/g, '$1\n').trim()}\n${lines[lines.length - 1]}\n`;
    };

    it.each([
      ['fail extra field', 400, 'validation_failed', () => ({ operationid: badOp, keyid: 'demo-ca-dev', csr: pem, profile: 'ca' })],
      ['fail missing csr', 400, 'validation_failed', () => ({ operationid: badOp, keyid: 'demo-ca-dev' })],
      ['fail non-uuid operation', 400, 'validation_failed', () => ({ operationid: 'op-1', keyid: 'demo-ca-dev', csr: pem })],
      ['fail not PEM', 400, 'csr_pem_invalid', () => ({ operationid: badOp, keyid: 'demo-ca-dev', csr: 'hello' })],
      ['fail broken signature', 400, 'csr_signature_invalid', () => ({ operationid: badOp, keyid: 'demo-ca-dev', csr: tamper(pem) })],
      ['fail CA requested', 400, 'csr_ca_requested', () => ({ operationid: badOp, keyid: 'demo-ca-dev', csr: csr('ca', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '/CN=evil', ['-addext', 'basicConstraints=critical,CA:TRUE']) })],
      // Names that read as another (ADR 0010 addendum "whole-script look-alikes, mixed numbers, percent-encoded text").
      ['fail a CN written only in Cyrillic look-alikes of Latin letters (СА)', 400, 'csr_subject_invalid', () => ({ operationid: badOp, keyid: 'demo-ca-dev', csr: csr('wsc', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '/CN=\u0421\u0410', ['-utf8']) })],
      ['fail a CN with digits of two systems (ASCII 0, Arabic-Indic ٣)', 400, 'csr_subject_invalid', () => ({ operationid: badOp, keyid: 'demo-ca-dev', csr: csr('mixnum', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '/CN=\u062c\u0647\u0627\u0632 0\u0663', ['-utf8']) })],
      ['fail a URI SAN whose path hides a Cyrillic е as %D0%B5', 400, 'csr_san_invalid', () => ({ operationid: badOp, keyid: 'demo-ca-dev', csr: csr('pct', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], '/CN=device-pct', ['-addext', 'subjectAltName=URI:https://devices.demo.test/t%D0%B5st']) })],
      ['fail firmware key', 409, 'key_not_usable', () => ({ operationid: badOp, keyid: 'demo-fw-dev', csr: pem })],
      ['fail key without ISSUE grant', 403, 'key_not_permitted', () => ({ operationid: badOp, keyid: 'demo-ca-prod', csr: pem })],
    ])('%s: refuses with %i %s', async (_n, status, code, body) => {
      const r = await api(ci, 'POST', '/api/v1/certificates', body());
      expect(r.status).toBe(status);
      expect(r.body).toMatchObject({ code });
      const op = await api<{ keys: { usagesUsed: number }[] }>(ci, 'GET', `/api/v1/operations/${badOp}`);
      expect(op.body.keys[0].usagesUsed).toBe(0);
    });

    it('refuses prototype-pollution keys with 400 validation_failed', async () => {
      const raw = `{"operationid":"${badOp}","keyid":"demo-ca-dev","csr":${JSON.stringify(pem)},"__proto__":{"isAdmin":true}}`;
      const r = await api(ci, 'POST', '/api/v1/certificates', raw);
      expect(r.status).toBe(400);
      expect(r.body).toMatchObject({ code: 'validation_failed' });
    });

    it('audits a refused issuance and stores no certificate', async () => {
      const r = await api(ci, 'POST', '/api/v1/certificates', { operationid: badOp, keyid: 'demo-ca-dev', csr: tamper(pem) });
      expect(r.status).toBe(400);
      const events = await new AuditRepository(db).list({ limit: 20 });
      const mine = events.items.filter((e) => e.action === 'certificate.issue' && e.operationId === badOp);
      expect(mine.length).toBeGreaterThan(0);
      expect(mine.every((e) => e.outcome === 'DENIED')).toBe(true);
      const list = await api<Page>(ci, 'GET', '/api/v1/certificates?issuer=demo-ca-dev&limit=500');
      expect(list.body.items).toHaveLength(2);
    });

    it('answers a non-UUID or unknown certificate id with 404 certificate_not_found', async () => {
      for (const id of ['abc', '00000000-0000-4000-8000-000000000000']) {
        const r = await api(otto, 'POST', `/api/v1/certificates/${id}/revocation`, { reason: 'superseded' });
        expect(r.status).toBe(404);
        expect(r.body).toMatchObject({ code: 'certificate_not_found' });
      }
    });
  });
});
