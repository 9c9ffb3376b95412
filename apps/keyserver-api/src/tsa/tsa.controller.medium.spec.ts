// Medium tier: the public RFC 3161 route on a real HTTP server (the API's Fastify adapter, its one body parser, the
// problem+json filter, the edge services), TsaService on a real PostgreSQL with a TSA key under a CA on a throwaway
// SoftHSM token. Replies are checked with openssl ts and with pkijs, a second implementation.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Module, type INestApplication } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import * as asn1js from 'asn1js';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import * as pkijs from 'pkijs';
import pino from 'pino';
import { AuditRepository, createDb, KeyLifecycleRepository, KeyRepository, TimestampRepository, type Db } from '@keyserver/data-access';
import { createTestDatabase, type TempDatabase } from '@keyserver/data-access/testing';
import { ProblemDetailsFilter, REFUSAL_OBSERVER } from '@keyserver/http-problems';
import { createTimestampingCertificate, isStrictDer, MAX_TIMESTAMP_QUERY_BYTES, type HsmSigner } from '@keyserver/pki';
import { API_CONFIG, HSM_SIGNER } from '../app/tokens';
import { installBodyParser } from '../common/body-limits';
import type { ApiConfig } from '../config/api-config';
import { EDGE, EdgeRefusalObserver, EdgeServices } from '../edge/edge';
import { ApiHttpAdapter } from '../edge/http-server';
import { mediumConfig, mediumOpenssl, mediumSigner, seedCaChain, seedKey } from '../testing/medium';
import { TsaController } from './tsa.controller';
import { TsaService } from './tsa.service';

const ab = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/** PKIStatus and the failure text of a TimeStampResp (DER checked first). */
function statusOf(reply: Buffer): { status: number; text: string } {
  expect(isStrictDer(reply)).toBe(true);
  const resp = pkijs.TimeStampResp.fromBER(ab(reply));
  return { status: resp.status.status, text: (resp.status.statusStrings ?? []).map((s) => s.valueBlock.value).join(' ') };
}

describe(`${TsaController.name} (medium: real HTTP, PostgreSQL, SoftHSM)`, () => {
  const hsm = mediumSigner('medium-tsa');
  const openssl = mediumOpenssl('medium-tsa');
  let tmp: TempDatabase;
  let db: Db;
  let replicaDb: Db;
  let config: ApiConfig;
  let app: INestApplication;
  let base: string;
  let port: number;
  let rootFile: string;
  let caFile: string;
  let rootPem: string;
  let caPem: string;
  let work: string;

  const service = (on: Db, signer: HsmSigner, edge: EdgeServices) =>
    new TsaService(new KeyRepository(on), new TimestampRepository(on), signer, config, edge, new KeyLifecycleRepository(on));

  beforeAll(async () => {
    tmp = await createTestDatabase('ks_api_medium_tsa');
    db = createDb(tmp.url);
    replicaDb = createDb(tmp.url);
    config = mediumConfig();
    const chain = await seedCaChain(db, hsm.signer);
    [rootPem, caPem] = [chain.rootCertificatePem, chain.caCertificatePem];
    rootFile = openssl.write('root.pem', rootPem);
    work = dirname(rootFile);
    caFile = openssl.write('ca.pem', caPem);
    const tsaKey = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: `medium-tsa-${randomBytes(4).toString('hex')}` });
    const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000);
    const notAfter = new Date(notBefore.getTime() + 30 * 86_400_000);
    const cert = await createTimestampingCertificate(hsm.signer, { key: chain.caKey, certificate: caPem }, tsaKey, { subject: { commonName: 'Medium TSA' }, notBefore, notAfter });
    await seedKey(db, { type: 'TSA', prefix: 'tsa', hsmKeyId: tsaKey.hsmKeyId, parentKeyid: chain.caKeyid, certificate: { pem: cert.certificatePem, serialHex: cert.serialHex, notBefore, notAfter } });
    const edge = new EdgeServices(config, new AuditRepository(db), pino({ level: 'silent' }));
    @Module({
      controllers: [TsaController],
      providers: [
        { provide: TsaService, useValue: service(db, hsm.signer, edge) },
        { provide: EDGE, useValue: edge },
        { provide: API_CONFIG, useValue: config },
        { provide: HSM_SIGNER, useValue: hsm.signer },
        { provide: REFUSAL_OBSERVER, useClass: EdgeRefusalObserver },
        { provide: APP_FILTER, useClass: ProblemDetailsFilter },
      ],
    })
    class TsaRouteTestModule {}
    const moduleRef = await Test.createTestingModule({ imports: [TsaRouteTestModule] }).compile();
    app = moduleRef.createNestApplication<NestFastifyApplication>(new ApiHttpAdapter({ logger: pino({ level: 'silent' }) }), { logger: false, bodyParser: false });
    installBodyParser(app.getHttpAdapter().getInstance() as unknown as FastifyInstance, config);
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await app?.close();
    await replicaDb?.close();
    await db?.close();
    await tmp?.drop();
  });

  /** POSTs `body` as `type` (null: no Content-Type header). */
  const post = (body: Uint8Array, type: string | null = 'application/timestamp-query') =>
    fetch(`${base}/api/v1/tsa`, { method: 'POST', body: Buffer.from(body), headers: type === null ? {} : { 'content-type': type } });
  const opensslQuery = (args: string[] = ['-sha256', '-cert']) => {
    const data = openssl.write('data.bin', randomBytes(200));
    expect(openssl.run('ts', '-query', '-data', data, ...args, '-out', 'q.tsq').status).toBe(0);
    return readFileSync(join(work, 'q.tsq'));
  };

  it('ok an openssl query: a granted DER reply that openssl ts -verify and pkijs verify with the root', async () => {
    const query = opensslQuery();
    const res = await post(query);
    const reply = Buffer.from(await res.arrayBuffer());
    expect([res.status, res.headers.get('content-type'), res.headers.get('cache-control')]).toEqual([200, 'application/timestamp-reply', 'no-store']);
    expect(statusOf(reply).status).toBe(0);
    openssl.write('r.tsr', reply);
    expect(openssl.run('ts', '-verify', '-in', 'r.tsr', '-queryfile', 'q.tsq', '-CAfile', rootFile, '-untrusted', caFile).out).toContain('Verification: OK');
    const resp = pkijs.TimeStampResp.fromBER(ab(reply));
    const trusted = [rootPem, caPem].map((p) => pkijs.Certificate.fromBER(ab(Buffer.from(p.replace(/-----[^-]+-----|\s/g, ''), 'base64'))));
    const data = readFileSync(join(work, 'data.bin'));
    expect(await resp.verify({ signer: 0, data: ab(data), trustedCerts: trusted })).toBe(true);
  });

  it.each<[string, string | null, number]>([
    ['ok the media type in another case (RFC 9110 8.3.1: case-insensitive)', 'Application/TimeStamp-Query', 200],
    ['ok the media type with a parameter', 'application/timestamp-query; charset=binary', 200],
    ['fail no content type', null, 415],
    ['fail a longer media type that starts like ours', 'application/timestamp-query-x', 415],
    ['fail the reply type', 'application/timestamp-reply', 415],
    ['fail JSON', 'application/json', 415],
    ['fail octet-stream', 'application/octet-stream', 415],
  ])('%s', async (_n, type, status) => {
    const res = await post(opensslQuery(), type);
    const body = Buffer.from(await res.arrayBuffer());
    expect(res.status).toBe(status);
    if (status === 200) expect(statusOf(body).status).toBe(0);
    else expect([res.headers.get('content-type'), (JSON.parse(body.toString()) as { code: string }).code]).toEqual(['application/problem+json; charset=utf-8', 'unsupported_media_type']);
  });

  it.each<[string, () => Uint8Array, string]>([
    ['fail an empty body', () => new Uint8Array(0), 'query_not_der'],
    [`fail ${MAX_TIMESTAMP_QUERY_BYTES} bytes that are no query`, () => new Uint8Array(MAX_TIMESTAMP_QUERY_BYTES).fill(0x30), 'query_not_der'],
    [`fail ${MAX_TIMESTAMP_QUERY_BYTES + 1} bytes`, () => new Uint8Array(MAX_TIMESTAMP_QUERY_BYTES + 1).fill(0x30), 'query_too_large'],
    ['fail 2 MiB', () => new Uint8Array(2 * 1024 * 1024).fill(0x30), 'query_too_large'],
    ['fail an openssl query with a trailing byte', () => Buffer.concat([opensslQuery(), Buffer.from([0])]), 'query_not_der'],
    ['fail an openssl query cut short', () => opensslQuery().subarray(0, 20), 'query_not_der'],
    ['fail a SHA-1 query', () => opensslQuery(['-sha1']), 'hash_not_accepted'],
    ['fail another policy', () => opensslQuery(['-sha256', '-tspolicy', '1.2.3.4']), 'policy_not_accepted'],
  ])('%s: 200 with a DER TimeStampResp, PKIStatus rejection and its code', async (_n, body, code) => {
    const res = await post(body());
    const reply = Buffer.from(await res.arrayBuffer());
    expect([res.status, res.headers.get('content-type')]).toEqual([200, 'application/timestamp-reply']);
    const { status, text } = statusOf(reply);
    expect(status).toBe(2);
    expect(text.startsWith(code)).toBe(true);
  });

  /** A raw request: `head` then `body` written as given; resolves with the status line and the body of the answer. */
  function raw(head: string, body: Buffer | null, end = true): Promise<{ status: number; type: string; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const [first, ...lines] = head.split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]));
      const req = httpRequest({ host: '127.0.0.1', port, method: first.split(' ')[0], path: first.split(' ')[1], headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      if (body) req.write(body);
      if (end) req.end();
    });
  }

  it('fail a declared Content-Length over the cap: answered before the body (PKIStatus rejection query_too_large), the connection closed', async () => {
    const r = await raw(`POST /api/v1/tsa\r\ncontent-type: application/timestamp-query\r\ncontent-length: 1000000000`, Buffer.alloc(10, 0x30), false);
    expect([r.status, r.type]).toEqual([200, 'application/timestamp-reply']);
    expect(statusOf(r.body)).toMatchObject({ status: 2, text: expect.stringMatching(/^query_too_large/) });
  });

  it('fail a chunked body that grows past the cap: PKIStatus rejection query_too_large, no hang', async () => {
    const r = await raw(`POST /api/v1/tsa\r\ncontent-type: application/timestamp-query\r\ntransfer-encoding: chunked`, Buffer.alloc(64 * 1024, 0x30));
    expect([r.status, r.type]).toEqual([200, 'application/timestamp-reply']);
    expect(statusOf(r.body)).toMatchObject({ status: 2, text: expect.stringMatching(/^query_too_large/) });
  });

  it('ok or refused, never a 5xx: arbitrary bodies up to the cap and a little past it (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: MAX_TIMESTAMP_QUERY_BYTES + 8 }), async (body) => {
        const res = await post(body);
        const reply = Buffer.from(await res.arrayBuffer());
        expect([res.status, res.headers.get('content-type')]).toEqual([200, 'application/timestamp-reply']);
        expect([0, 2]).toContain(statusOf(reply).status);
      }),
      { numRuns: 60 },
    );
  });

  it('fail a query whose client left before the route read it (its stream already closed): request_aborted at once, audited, never waits', async () => {
    const req = Object.assign(new PassThrough(), { headers: { 'content-type': 'application/timestamp-query' } });
    req.on('error', () => undefined);
    req.write(Buffer.alloc(10));
    req.destroy(new Error('aborted'));
    await new Promise((r) => setImmediate(r));
    const settled = await Promise.race([service(db, hsm.signer, new EdgeServices(config, new AuditRepository(db), pino({ level: 'silent' }))).answer(req as never, 'req-gone-before').then(() => 'answered', (e: unknown) => e), new Promise((r) => setTimeout(() => r('pending'), 1_000))]);
    expect(settled).toMatchObject({ code: 'request_aborted' });
  });

  it('ok two replicas (two services, two connection pools) stamping at once: every token has its own serial, each in the register once, genTime within the stated accuracy of the request', async () => {
    const edge = new EdgeServices(config, new AuditRepository(replicaDb), pino({ level: 'silent' }));
    const replicas = [service(db, hsm.signer, edge), service(replicaDb, hsm.signer, edge)];
    const query = opensslQuery(['-sha256', '-no_nonce']);
    const started = Date.now();
    const stamp = async (i: number) => {
      const req = Object.assign(new PassThrough(), { headers: { 'content-type': 'application/timestamp-query' } });
      req.end(query);
      const answer = await replicas[i % 2].answer(req as never, `req-replica-${i}`);
      expect(answer.granted).toBe(true);
      return answer.der;
    };
    const replies = await Promise.all(Array.from({ length: 24 }, (_x, i) => stamp(i)));
    const ended = Date.now();
    const infos = replies.map((r) => {
      const sd = new pkijs.SignedData({ schema: pkijs.TimeStampResp.fromBER(ab(r)).timeStampToken?.content });
      return new pkijs.TSTInfo({ schema: asn1js.fromBER(sd.encapContentInfo.eContent?.valueBlock.valueHexView ?? new ArrayBuffer(0)).result });
    });
    const serials = infos.map((t) => Buffer.from(t.serialNumber.valueBlock.valueHexView).toString('hex'));
    expect(new Set(serials).size).toBe(replies.length);
    for (const t of infos) {
      // Whole seconds with an accuracy of 1 s (TSA_ACCURACY_MS default): never later than the signing, at most 1 s before.
      expect(t.genTime.getTime()).toBeGreaterThanOrEqual(Math.floor(started / 1000) * 1000);
      expect(t.genTime.getTime()).toBeLessThanOrEqual(ended);
    }
    const register = new TimestampRepository(db);
    for (const s of serials) expect((await register.find(s))?.source).toBe('public');
  });
});
