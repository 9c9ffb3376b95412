// Medium tier: the CRLs of a CA with their real repositories on a real PostgreSQL and a real PKCS#11 signer on a
// throwaway SoftHSM token (ROOT -> CA generated in it), wired by constructor exactly as the composition root wires
// it; device certificates are issued and revoked through the real CertificatesService. The public routes are served
// by the real CrlController on a real HTTP server (the API's Fastify adapter, the problem+json filter).
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Module, type INestApplication } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import * as pkijs from 'pkijs';
import pino from 'pino';
import type { Db } from '@keyserver/data-access';
import { ProblemDetailsFilter } from '@keyserver/http-problems';
import { toPem } from '@keyserver/pki';
import type { CertificatesService } from '../certificates/certificates.service';
import { ApiHttpAdapter } from '../edge/http-server';
import { codeOf, deviceCsr, mediumCertificates, mediumDatabase, mediumIssuer, mediumOpenssl, mediumSigner, seedCaChain } from '../testing/medium';
import { CrlController } from './crl.controller';
import { CrlService } from './crl.service';

describe(`${CrlService.name} (medium: real PostgreSQL, SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_crl');
  const hsm = mediumSigner('medium-crl');
  const openssl = mediumOpenssl('medium-crl');
  let db: Db;
  let service: CrlService;
  let certificates: CertificatesService;
  let caKeyid: string;
  let caFile: string;
  let app: INestApplication;
  let base: string;

  beforeAll(async () => {
    db = pg.db;
    ({ crls: service, certificates } = mediumCertificates(db, hsm.signer));
    const chain = await seedCaChain(db, hsm.signer);
    caKeyid = chain.caKeyid;
    caFile = openssl.write('ca.pem', chain.caCertificatePem);
    @Module({ controllers: [CrlController], providers: [{ provide: CrlService, useValue: service }, { provide: APP_FILTER, useClass: ProblemDetailsFilter }] })
    class CrlRoutesTestModule {}
    const moduleRef = await Test.createTestingModule({ imports: [CrlRoutesTestModule] }).compile();
    app = moduleRef.createNestApplication<NestFastifyApplication>(new ApiHttpAdapter({ logger: pino({ level: 'silent' }) }), { logger: false });
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await app?.close();
  });

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  /** A CRL's serials as `openssl crl -text` prints them: upper-case hex without leading zeros. */
  /** A serial as `openssl crl -text` prints it: whole bytes, no leading 00 byte (so 0C... keeps its 0). */
  const printed = (serialHex: string) => {
    const h = serialHex.toUpperCase().replace(/^(00)+(?=.)/, '');
    return `SerialNumber:${h.length % 2 ? `0${h}` : h}`;
  };

  /** openssl's verdict on a DER CRL against the CA certificate, and its text without whitespace. */
  function inspect(der: Buffer, name: string): { verify: string; text: string } {
    const file = openssl.write(name, der);
    const verify = openssl.run('crl', '-inform', 'DER', '-in', file, '-CAfile', caFile, '-noout', '-verify').out;
    const text = openssl.run('crl', '-inform', 'DER', '-in', file, '-noout', '-text').out.replace(/\s/g, '');
    return { verify, text };
  }

  it("signs the CA's CRL in the HSM: openssl crl -verify accepts it against the CA certificate, a revoked device certificate's serial is listed and a valid one's is not", async () => {
    const { provisioner, operationId } = await mediumIssuer(db, caKeyid, 2);
    const revoked = await certificates.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-revoked') }, requestId());
    const valid = await certificates.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-valid') }, requestId());
    const before = inspect(await service.current(caKeyid), 'before.crl');
    expect(before.verify).toContain('verify OK');
    expect(before.text).not.toContain(printed(revoked.serial));

    await certificates.revoke(provisioner, revoked.id, { reason: 'keyCompromise' }, requestId());
    const after = inspect(await service.current(caKeyid), 'after.crl');
    expect(after.verify).toContain('verify OK');
    expect(after.text).toContain(`${printed(revoked.serial)}RevocationDate`);
    expect(after.text).toContain('KeyCompromise');
    expect(after.text).not.toContain(printed(valid.serial));
    expect(after.text).not.toBe(before.text);
  });

  it('serves the stored CRL again while it is fresh and its revoked set is unchanged (no new signature)', async () => {
    const first = await service.current(caKeyid);
    expect((await service.current(caKeyid)).equals(first)).toBe(true);
    expect((await service.ofVersion(caKeyid, '1')).equals(first)).toBe(true);
  });

  it.each([
    ['fail a key that does not exist', 'ca-nonexistent', null, 'key_not_found'],
    ['fail a version that is not a whole number', 'ca', 'v1', 'crl_version_invalid'],
    ['fail a version the CA does not have', 'ca', '7', 'key_version_not_found'],
    ['ok the version that signed the CA certificates', 'ca', '1', 'ok'],
  ] as const)('%s', async (_n, which, version, code) => {
    const keyid = which === 'ca' ? caKeyid : which;
    // ofVersion refuses a malformed version before any await: the call itself throws.
    expect(await codeOf((async () => (version === null ? service.current(keyid) : service.ofVersion(keyid, version)))())).toBe(code);
  });

  describe('GET /api/v1/crl/{keyid}[/versions/{version}] over HTTP', () => {
    const get = (path: string, headers: Record<string, string> = {}) => fetch(`${base}${path}`, { headers });
    const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('base64url');

    it('ok serves the CRL DER with honest caching headers: a strong ETag of its bytes, Last-Modified its thisUpdate, a max-age that ends by its nextUpdate; openssl and certtool accept it', async () => {
      for (const path of [`/api/v1/crl/${caKeyid}`, `/api/v1/crl/${caKeyid}/versions/1`]) {
        const res = await get(path);
        const body = Buffer.from(await res.arrayBuffer());
        expect([res.status, res.headers.get('content-type')]).toEqual([200, 'application/pkix-crl']);
        expect(inspect(body, 'http.crl').verify).toContain('verify OK');
        const pem = openssl.write('http.crl.pem', toPem('X509 CRL', body));
        // A second implementation (GnuTLS): the CRL parses and its signature verifies with the CA certificate, dated now.
        expect(execFileSync('certtool', ['--verify-crl', '--infile', pem, '--load-ca-certificate', caFile]).toString()).toContain('Verification output: Verified.');
        const crl = pkijs.CertificateRevocationList.fromBER(new Uint8Array(body).buffer);
        expect(res.headers.get('etag')).toBe(`"${sha256(body)}"`);
        expect(res.headers.get('last-modified')).toBe(crl.thisUpdate.value.toUTCString());
        const maxAge = Number(/^public, max-age=(\d+)$/.exec(res.headers.get('cache-control') ?? '')?.[1]);
        expect(maxAge).toBeGreaterThan(0);
        expect(maxAge).toBeLessThanOrEqual(Math.min(300, ((crl.nextUpdate?.value.getTime() ?? 0) - Date.now()) / 1000));
      }
    });

    it.each<[string, (etag: string, lastModified: string) => Record<string, string>, number]>([
      ['ok If-None-Match with its ETag: 304', (etag) => ({ 'if-none-match': etag }), 304],
      ['ok If-None-Match with its ETag among others, weak (W/) as RFC 9110 13.1.2 compares: 304', (etag) => ({ 'if-none-match': `"other", W/${etag}` }), 304],
      ['ok If-None-Match *: 304', () => ({ 'if-none-match': '*' }), 304],
      ['ok If-None-Match with another ETag: 200', () => ({ 'if-none-match': '"c29tZXRoaW5nIGVsc2U"' }), 200],
      ['ok If-Modified-Since its Last-Modified: 304', (_e, lm) => ({ 'if-modified-since': lm }), 304],
      ['ok If-Modified-Since a second before: 200', (_e, lm) => ({ 'if-modified-since': new Date(Date.parse(lm) - 1000).toUTCString() }), 200],
      ['ok If-Modified-Since that is no date: ignored, 200', () => ({ 'if-modified-since': 'yesterday' }), 200],
      ['ok If-None-Match with another ETag decides over a matching If-Modified-Since (RFC 9110 13.2.2): 200', (_e, lm) => ({ 'if-none-match': '"x"', 'if-modified-since': lm }), 200],
      ['ok an If-None-Match of 8,000 characters: 200', () => ({ 'if-none-match': `"${'a'.repeat(8000)}"` }), 200],
    ])('%s', async (_n, conditional, status) => {
      const first = await get(`/api/v1/crl/${caKeyid}/versions/1`);
      await first.arrayBuffer();
      const [etag, lastModified] = [first.headers.get('etag') ?? '', first.headers.get('last-modified') ?? ''];
      const res = await get(`/api/v1/crl/${caKeyid}/versions/1`, conditional(etag, lastModified));
      const body = Buffer.from(await res.arrayBuffer());
      expect(res.status).toBe(status);
      expect(res.headers.get('etag')).toBe(etag);
      expect(res.headers.get('cache-control')).toMatch(/^public, max-age=\d+$/);
      expect(body.length === 0).toBe(status === 304);
    });

    it('ok a revocation makes a new CRL: a new ETag, and the old one no longer matches', async () => {
      const before = await get(`/api/v1/crl/${caKeyid}`);
      await before.arrayBuffer();
      const { provisioner, operationId } = await mediumIssuer(db, caKeyid, 1);
      const cert = await certificates.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-etag') }, requestId());
      await certificates.revoke(provisioner, cert.id, { reason: 'superseded' }, requestId());
      const after = await get(`/api/v1/crl/${caKeyid}`, { 'if-none-match': before.headers.get('etag') ?? '' });
      const body = Buffer.from(await after.arrayBuffer());
      expect(after.status).toBe(200);
      expect(after.headers.get('etag')).toBe(`"${sha256(body)}"`);
      expect(after.headers.get('etag')).not.toBe(before.headers.get('etag'));
      expect(inspect(body, 'revoked.crl').text).toContain(printed(cert.serial));
    });

    it.each<[string, () => string, number, string]>([
      ['fail the keyid in upper case (keyids match exactly)', () => `/api/v1/crl/${caKeyid.toUpperCase()}`, 404, 'key_not_found'],
      ['fail the keyid in another case on the versions route', () => `/api/v1/crl/${caKeyid.toUpperCase()}/versions/1`, 404, 'key_not_found'],
      ['fail a keyid with a dotless i that upper-cases to I', () => `/api/v1/crl/${encodeURIComponent(caKeyid.replace(/i/g, '\u0131'))}x`, 404, 'key_not_found'],
      ['fail a keyid with a combining mark', () => `/api/v1/crl/${encodeURIComponent(`${caKeyid}\u0301`)}`, 404, 'key_not_found'],
      ['fail an encoded traversal in the keyid', () => `/api/v1/crl/..%2F..%2F${caKeyid}`, 404, 'key_not_found'],
      ['fail a keyid of 5,000 characters', () => `/api/v1/crl/${'k'.repeat(5000)}`, 404, 'key_not_found'],
      ['fail a keyid of 5,000 characters with a version', () => `/api/v1/crl/${'k'.repeat(5000)}/versions/1`, 404, 'key_not_found'],
      ['fail a version in full-width digits', () => `/api/v1/crl/${caKeyid}/versions/${encodeURIComponent('\uff11')}`, 400, 'crl_version_invalid'],
      ['fail a version with a leading zero', () => `/api/v1/crl/${caKeyid}/versions/01`, 400, 'crl_version_invalid'],
      ['fail a version of 7 digits', () => `/api/v1/crl/${caKeyid}/versions/1000000`, 400, 'crl_version_invalid'],
      ['fail a version with a sign', () => `/api/v1/crl/${caKeyid}/versions/+1`, 400, 'crl_version_invalid'],
      ['fail a version of 5,000 digits', () => `/api/v1/crl/${caKeyid}/versions/${'9'.repeat(5000)}`, 400, 'crl_version_invalid'],
      ['fail an encoded traversal as the version', () => `/api/v1/crl/${caKeyid}/versions/..%2F1`, 400, 'crl_version_invalid'],
    ])('%s: problem+json with its status and code, no caching headers of a CRL', async (_n, path, status, code) => {
      const res = await get(path());
      expect([res.status, res.headers.get('content-type'), ((await res.json()) as { code?: string }).code]).toEqual([status, 'application/problem+json; charset=utf-8', code]);
      expect(res.headers.get('etag')).toBeNull();
      expect(res.headers.get('last-modified')).toBeNull();
    });
  });

  // Last: its CRL is dated 5 s ahead of this clock, which certtool would call issued in the future.
  it('ok a replica whose clock is behind the one that signed the stored CRL never dates its CRL earlier: the CRL number goes up, thisUpdate never goes back', async () => {
    const { provisioner, operationId } = await mediumIssuer(db, caKeyid, 2);
    const [a, b] = [
      await certificates.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-clock-a') }, requestId()),
      await certificates.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-clock-b') }, requestId()),
    ];
    const t = Date.now();
    const clock = jest.spyOn(Date, 'now');
    try {
      clock.mockReturnValue(t + 5_000); // replica A, 5 s ahead
      await certificates.revoke(provisioner, a.id, { reason: 'keyCompromise' }, requestId());
      const first = await service.currentCrl(caKeyid);
      clock.mockReturnValue(t); // replica B
      await certificates.revoke(provisioner, b.id, { reason: 'superseded' }, requestId());
      const second = await service.currentCrl(caKeyid);
      expect(second.crlNumber).toBeGreaterThan(first.crlNumber);
      expect(second.thisUpdate.getTime()).toBeGreaterThanOrEqual(first.thisUpdate.getTime());
      expect(second.nextUpdate.getTime()).toBeGreaterThan(second.thisUpdate.getTime());
      const text = inspect(second.der, 'clock.crl').text;
      expect(text).toContain(printed(a.serial));
      expect(text).toContain(printed(b.serial));
    } finally {
      clock.mockRestore();
    }
  });
});
