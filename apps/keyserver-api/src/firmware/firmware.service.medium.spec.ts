// Medium tier: firmware signatures with their real repositories on a real PostgreSQL and a real PKCS#11 signer on a
// throwaway SoftHSM token (ROOT -> CA -> FW generated in it), wired by constructor exactly as the composition root
// wires it; the image is a stream, as the controller hands the request over. No HTTP, no processes.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { Permission } from '@keyserver/api-contract';
import { AuditRepository, KeyLifecycleRepository, KeyRepository, OperationRepository, SignOrderRepository, TimestampRepository, type Db } from '@keyserver/data-access';
import { HsmError } from '@keyserver/pkcs11-signer';
import pino from 'pino';
import type { Actor } from '../common/actor';
import { ApiErrorCode, markTransportRefusal } from '../common/api-error';
import { Audited } from '../common/audited';
import { deferContinue, EdgeServices } from '../edge/edge';
import { SignatureTimestamps } from '../tsa/signature-timestamps';
import { TsaService } from '../tsa/tsa.service';
import { codeOf, mediumActor, mediumConfig, mediumDatabase, mediumOpenssl, mediumSigner, seedCaChain, seedFirmwareKey, seedKey } from '../testing/medium';
import { FirmwareService, type StreamedRequest } from './firmware.service';

describe(`${FirmwareService.name} (medium: real PostgreSQL, SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_firmware');
  const hsm = mediumSigner('medium-firmware');
  const openssl = mediumOpenssl('medium-firmware');
  let db: Db;
  let operations: OperationRepository;
  let audit: AuditRepository;
  let service: FirmwareService;
  let keyid: string;
  let edKeyid: string;
  let chainFile: string;

  beforeAll(async () => {
    db = pg.db;
    operations = new OperationRepository(db);
    audit = new AuditRepository(db);
    const config = mediumConfig();
    const keys = new KeyRepository(db);
    const audited = new Audited(audit);
    // No TSA key exists: the signature goes without a timestamp, as production does then (ADR 0024).
    const tsa = new TsaService(keys, new TimestampRepository(db), hsm.signer, config, new EdgeServices(config, audit, pino({ level: 'silent' })), new KeyLifecycleRepository(db));
    service = new FirmwareService(keys, new SignOrderRepository(db, { leaseMs: config.usageLeaseMs }), hsm.signer, config, audited, new SignatureTimestamps(config, tsa), new KeyLifecycleRepository(db));
    const chain = await seedCaChain(db, hsm.signer);
    ({ keyid } = await seedFirmwareKey(db, hsm.signer, chain.caKeyid));
    ({ keyid: edKeyid } = await seedFirmwareKey(db, hsm.signer, chain.caKeyid, { ed25519: true }));
    chainFile = openssl.write('chain.pem', `${chain.caCertificatePem}${chain.rootCertificatePem}`);
  });

  /** A signer holding SIGN on the FW key (`granted` false: on another key only) and an operation with one usage of it. */
  async function signingSetup(granted = true) {
    const signOn = granted ? keyid : await seedKey(db);
    const signer = await mediumActor(db, { natures: ['ORDERER'], grants: ['SIGN'], keyids: [signOn] }, Permission.SignOrdersCreate);
    const op = await operations.create({
      description: 'medium firmware',
      ordererId: signer.subjectId,
      validFrom: new Date(Date.now() - 60_000),
      validTo: new Date(Date.now() + 3_600_000),
      keys: [{ keyid, usagesAllowed: 1 }],
    });
    return { signer, operationId: op.id };
  }

  /** The request as the controller hands it over: the body streamed in 64 KiB chunks, never one buffer. */
  function upload(image: Buffer): StreamedRequest {
    const chunks = Array.from({ length: Math.ceil(image.length / 65_536) }, (_, i) => image.subarray(i * 65_536, (i + 1) * 65_536));
    return Object.assign(Readable.from(chunks), { headers: { 'content-type': 'application/octet-stream', 'content-length': String(image.length) } });
  }

  const usagesUsed = async (operationId: string) => (await operations.get(operationId)).keys.map((k) => k.usagesUsed);
  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  const query = (operationid: string) => ({ operationid, keyid, description: 'medium firmware image' });

  it('digests with SHA-512 for an Ed25519 key that declares SHA256 (created before the rule): RFC 8419, and GnuTLS certtool verifies it', async () => {
    const signer = await mediumActor(db, { natures: ['ORDERER'], grants: ['SIGN'], keyids: [edKeyid] }, Permission.SignOrdersCreate);
    const op = await operations.create({ description: 'medium ed25519 firmware', ordererId: signer.subjectId, validFrom: new Date(Date.now() - 60_000), validTo: new Date(Date.now() + 3_600_000), keys: [{ keyid: edKeyid, usagesAllowed: 1 }] });
    const image = randomBytes(4096);
    const cms = await service.sign(signer, { operationid: op.id, keyid: edKeyid, description: 'ed25519 image' }, upload(image), requestId());
    const p7s = openssl.write('ed.p7s', cms);
    const printed = openssl.run('cms', '-cmsout', '-print', '-inform', 'DER', '-in', p7s);
    expect(printed.out).toMatch(/digestAlgorithm:\s+algorithm: sha512/);
    expect(printed.out).not.toMatch(/algorithm: sha256/);
    // OpenSSL 3.0's CMS cannot verify Ed25519 with signed attributes (eddsa_digest_signverify_init: invalid digest).
    const verified = spawnSync('certtool', ['--p7-verify', '--inder', '--infile', p7s, '--load-data', openssl.write('ed.bin', image), '--load-ca-certificate', chainFile], { encoding: 'utf8' });
    expect({ status: verified.status, out: `${verified.stdout}${verified.stderr}` }).toMatchObject({ status: 0, out: expect.stringContaining('Signature status: ok') });
  });

  it('signs a streamed 384 KiB image: openssl cms -verify accepts the detached CMS over it (and not over another image), one usage is spent', async () => {
    const { signer, operationId } = await signingSetup();
    const image = randomBytes(384 * 1024);
    const rid = requestId();
    const cms = await service.sign(signer, query(operationId), upload(image), rid);
    const p7s = openssl.write('fw.p7s', cms);
    const verify = (content: Buffer, name: string) =>
      openssl.run('cms', '-verify', '-binary', '-content', openssl.write(name, content), '-inform', 'DER', '-in', p7s, '-CAfile', chainFile, '-purpose', 'any', '-out', '/dev/null');
    expect(verify(image, 'fw.bin')).toMatchObject({ status: 0, out: expect.stringContaining('Verification successful') });
    // The PKCS#7 view of the same bytes (what older factory tools call): openssl smime accepts it too.
    const smime = openssl.run('smime', '-verify', '-binary', '-inform', 'DER', '-in', p7s, '-content', openssl.write('fw-smime.bin', image), '-CAfile', chainFile, '-purpose', 'any', '-out', '/dev/null');
    expect(smime).toMatchObject({ status: 0, out: expect.stringContaining('Verification successful') });
    const other = Buffer.from(image);
    other[other.length - 1] ^= 1;
    expect(verify(other, 'other.bin').status).not.toBe(0);
    expect(await usagesUsed(operationId)).toEqual([1]);
    const events = (await audit.list({ action: 'firmware.sign', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.keyid, e.operationId])).toEqual([['SUCCESS', keyid, operationId]]);
  });

  it.each([
    ['fail an image for a CA key (a CA signs certificates, never firmware)', 'CA'],
    ['fail an image for a ROOT key', 'ROOT'],
  ] as const)('%s: key_not_usable, no usage spent, one DENIED event', async (_n, type) => {
    const chain = await seedCaChain(db, hsm.signer);
    const wrong = type === 'CA' ? chain.caKeyid : ((await new KeyRepository(db).findByKeyid(chain.caKeyid))?.parentKeyid as string);
    const signer = await mediumActor(db, { natures: ['ORDERER'], grants: ['SIGN'], keyids: [wrong] }, Permission.SignOrdersCreate);
    const op = await operations.create({ description: 'medium wrong key type', ordererId: signer.subjectId, validFrom: new Date(Date.now() - 60_000), validTo: new Date(Date.now() + 3_600_000), keys: [{ keyid: wrong, usagesAllowed: 1 }] });
    const rid = requestId();
    expect(await codeOf(service.sign(signer, { operationid: op.id, keyid: wrong, description: 'not firmware' }, upload(randomBytes(1024)), rid))).toBe('key_not_usable');
    expect(await usagesUsed(op.id)).toEqual([0]);
    const events = (await audit.list({ action: 'firmware.sign', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode, e.keyid])).toEqual([['DENIED', 'key_not_usable', wrong]]);
  });

  it.each([
    ['fail an image for an FW key whose certificate expired a second ago', -2 * 86_400_000, -1_000],
    ['fail an image for an FW key whose certificate is valid only from tomorrow', 86_400_000, 365 * 86_400_000],
  ] as const)('%s: key_not_usable before the image is read, no usage spent, one DENIED event', async (_n, from, to) => {
    const chain = await seedCaChain(db, hsm.signer);
    const { keyid: outside } = await seedFirmwareKey(db, hsm.signer, chain.caKeyid);
    const signer = await mediumActor(db, { natures: ['ORDERER'], grants: ['SIGN'], keyids: [outside] }, Permission.SignOrdersCreate);
    const op = await operations.create({ description: 'medium expired fw', ordererId: signer.subjectId, validFrom: new Date(Date.now() - 60_000), validTo: new Date(Date.now() + 3_600_000), keys: [{ keyid: outside, usagesAllowed: 1 }] });
    // The certificate changes after the order (operation creation refuses a window it does not cover: ADR 0017
    // addendum session 25); the sign path judges the instant of use.
    await db.prisma.key.update({ where: { keyid: outside }, data: { notBefore: new Date(Date.now() + from), notAfter: new Date(Date.now() + to) } });
    const rid = requestId();
    expect(await codeOf(service.sign(signer, { operationid: op.id, keyid: outside, description: 'late image' }, upload(randomBytes(1024)), rid))).toBe('key_not_usable');
    expect(await usagesUsed(op.id)).toEqual([0]);
    const events = (await audit.list({ action: 'firmware.sign', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode, e.keyid])).toEqual([['DENIED', 'key_not_usable', outside]]);
  });

  it.each([
    ['fail an image when the operation has no usage left', 'exhausted', 'usage_exhausted'],
    ['fail an image from a caller holding SIGN on another key only', 'no-grant', 'key_not_permitted'],
  ] as const)('%s: refused with its code, no usage spent, one DENIED event', async (_n, kind, code) => {
    const { signer, operationId } = await signingSetup(kind !== 'no-grant');
    if (kind === 'exhausted') await service.sign(signer, query(operationId), upload(randomBytes(1024)), requestId());
    const before = await usagesUsed(operationId);
    const rid = requestId();
    expect(await codeOf(service.sign(signer, query(operationId), upload(randomBytes(256 * 1024)), rid))).toBe(code);
    expect(await usagesUsed(operationId)).toEqual(before);
    const events = (await audit.list({ action: 'firmware.sign', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode, e.keyid])).toEqual([['DENIED', code, keyid]]);
  });

  /**
   * An upload may stream for up to HTTP_REQUEST_TIMEOUT_MS (300 s): the key is chosen before the first byte, but
   * what happens to it meanwhile must count at the instant of signing, as for a sign order decided in milliseconds.
   */
  describe('a key that changes while the image streams', () => {
    const life = () => new KeyLifecycleRepository(db);
    const byAdmin = (action: string) => ({ action, outcome: 'SUCCESS' as const, actorName: 'medium admin', requestId: null });

    /** A stream that yields half the image, runs `meanwhile` (the key changes), then yields the rest. */
    function uploadWith(image: Buffer, meanwhile: () => Promise<unknown>): StreamedRequest {
      const half = image.length >> 1;
      async function* body() {
        yield image.subarray(0, half);
        await meanwhile();
        yield image.subarray(half);
      }
      return Object.assign(Readable.from(body()), { headers: { 'content-type': 'application/octet-stream', 'content-length': String(image.length) } });
    }

    async function fwSetup() {
      const chain = await seedCaChain(db, hsm.signer);
      const { keyid: fw } = await seedFirmwareKey(db, hsm.signer, chain.caKeyid);
      const signer = await mediumActor(db, { natures: ['ORDERER'], grants: ['SIGN'], keyids: [fw] }, Permission.SignOrdersCreate);
      const op = await operations.create({ description: 'medium changing key', ordererId: signer.subjectId, validFrom: new Date(Date.now() - 60_000), validTo: new Date(Date.now() + 3_600_000), keys: [{ keyid: fw, usagesAllowed: 1 }] });
      return { fw, signer, operationId: op.id };
    }

    it.each([
      [
        'fail an image whose FW certificate expires while it streams',
        async (fw: string) => {
          // The certificate ends 1.5 s from now; the stream pauses past that instant.
          const notAfter = new Date(Date.now() + 1_500);
          await db.prisma.key.update({ where: { keyid: fw }, data: { notAfter } });
          return async () => new Promise((r) => setTimeout(r, notAfter.getTime() - Date.now() + 100));
        },
      ],
      ['fail an image whose key is retired while it streams', async (fw: string) => async () => life().retire(fw, byAdmin('key.retire'))],
      ['fail an image whose key is revoked while it streams', async (fw: string) => async () => new KeyRepository(db).revoke(fw, 'keyCompromise', new Date(), byAdmin('key.revoke'))],
    ] as const)('%s: key_not_usable, no signature, no usage spent, one DENIED event', async (_n, arrange) => {
      const { fw, signer, operationId } = await fwSetup();
      const meanwhile = await arrange(fw);
      const rid = requestId();
      expect(await codeOf(service.sign(signer, { operationid: operationId, keyid: fw, description: 'changing key image' }, uploadWith(randomBytes(128 * 1024), meanwhile), rid))).toBe('key_not_usable');
      expect(await usagesUsed(operationId)).toEqual([0]);
      expect(await db.prisma.signOrder.count({ where: { operationId } })).toBe(0);
      const events = (await audit.list({ action: 'firmware.sign', requestId: rid })).items;
      expect(events.map((e) => [e.outcome, e.errorCode, e.keyid])).toEqual([['DENIED', 'key_not_usable', fw]]);
    });
  });

  it.each([
    ['fail a client that left after the last byte, before the signature was made', 'request_aborted', undefined],
    ['fail an upload whose connection the transport refused after the last byte (bytes after the body did not parse)', 'malformed_request', 'malformed_request'],
  ] as const)('%s: %s, no usage spent for a signature nobody receives, one DENIED event', async (_n, code, mark) => {
    const { signer, operationId } = await signingSetup();
    const req = Object.assign(upload(randomBytes(64 * 1024)), { socket: { destroyed: false, writable: true } });
    req.once('end', () => {
      if (mark) markTransportRefusal(req, mark as ApiErrorCode);
      else req.socket.writable = false;
    });
    const rid = requestId();
    expect(await codeOf(service.sign(signer, query(operationId), req, rid))).toBe(code);
    expect(await usagesUsed(operationId)).toEqual([0]);
    expect(await db.prisma.signOrder.count({ where: { operationId } })).toBe(0);
    const events = (await audit.list({ action: 'firmware.sign', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', code]]);
  });

  it('fail an image when the HSM fails while signing it: an HSM code, the usage given back, no order, one FAILED event', async () => {
    const { signer, operationId } = await signingSetup();
    const keys = new KeyRepository(db);
    const config = mediumConfig();
    const broken = Object.assign(Object.create(hsm.signer) as typeof hsm.signer, {
      sign: async () => {
        throw new HsmError('hsm_unavailable', 'token removed');
      },
    });
    const tsa = new TsaService(keys, new TimestampRepository(db), broken, config, new EdgeServices(config, audit, pino({ level: 'silent' })), new KeyLifecycleRepository(db));
    const failing = new FirmwareService(keys, new SignOrderRepository(db, { leaseMs: config.usageLeaseMs }), broken, config, new Audited(audit), new SignatureTimestamps(config, tsa), new KeyLifecycleRepository(db));
    const rid = requestId();
    expect(await codeOf(failing.sign(signer, query(operationId), upload(randomBytes(64 * 1024)), rid))).toBe('hsm_unavailable');
    expect(await usagesUsed(operationId)).toEqual([0]);
    expect(await db.prisma.usageReservation.count({ where: { operationId } })).toBe(0);
    expect(await db.prisma.signOrder.count({ where: { operationId } })).toBe(0);
    const events = (await audit.list({ action: 'firmware.sign', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['FAILED', 'hsm_unavailable']]);
  });

  describe('decided before the image (ADR 0011 addendum "refused before the image")', () => {
    /** A response as Node's: what the service and the edge do to it before the body. */
    const response = () => {
      const r = { headersSent: false, writableEnded: false, headers: new Map<string, string>(), continued: 0, setHeader: (k: string, v: string) => r.headers.set(k, v), removeHeader: (k: string) => r.headers.delete(k), writeContinue: () => void r.continued++ };
      return r;
    };
    /** A request with `Expect: 100-continue` whose image arrives only after the 100 (as a client sends it), marked as the server marks it. */
    const expecting = (image: Buffer) => {
      const res = response();
      let sent = false;
      const req: StreamedRequest = Object.assign(
        new Readable({
          read() {
            if (res.continued > 0 && !sent) {
              sent = true;
              this.push(image);
              this.push(null);
            }
          },
        }),
        { headers: { 'content-type': 'application/octet-stream', 'content-length': String(image.length) }, res },
      );
      res.writeContinue = () => {
        res.continued++;
        req.read(0);
      };
      deferContinue({ emit: () => true })(req as unknown as IncomingMessage, res as unknown as ServerResponse);
      return { req, res };
    };

    it.each<[string, () => Promise<{ signer: Actor; query: { operationid: string; keyid: string; description: string } }>, string]>([
      ['fail an operation without a usage left', async () => {
        const { signer, operationId } = await signingSetup();
        await service.sign(signer, query(operationId), upload(randomBytes(1024)), requestId());
        return { signer, query: query(operationId) };
      }, 'usage_exhausted'],
      ['fail an operation whose window has not begun', async () => {
        const signer = await mediumActor(db, { natures: ['ORDERER'], grants: ['SIGN'], keyids: [keyid] }, Permission.SignOrdersCreate);
        const op = await operations.create({ description: 'medium later', ordererId: signer.subjectId, validFrom: new Date(Date.now() + 3_600_000), validTo: new Date(Date.now() + 7_200_000), keys: [{ keyid, usagesAllowed: 1 }] });
        return { signer, query: query(op.id) };
      }, 'outside_window'],
      ['fail an operation that does not hold the key', async () => {
        const signer = await mediumActor(db, { natures: ['ORDERER'], grants: ['SIGN'], keyids: [keyid, edKeyid] }, Permission.SignOrdersCreate);
        const op = await operations.create({ description: 'medium other key', ordererId: signer.subjectId, validFrom: new Date(Date.now() - 60_000), validTo: new Date(Date.now() + 3_600_000), keys: [{ keyid: edKeyid, usagesAllowed: 1 }] });
        return { signer, query: query(op.id) };
      }, 'key_not_in_operation'],
      ['fail an operation that does not exist', async () => ({ signer: (await signingSetup()).signer, query: query('00000000-0000-4000-8000-000000000000') }), 'not_found'],
      ['fail a caller without SIGN on the key', async () => {
        const { signer, operationId } = await signingSetup(false);
        return { signer, query: query(operationId) };
      }, 'key_not_permitted'],
    ])('%s: refused with no image byte sent, no 100, Connection: close, one DENIED event', async (_n, arrange, code) => {
      const { signer, query: q } = await arrange();
      const { req, res } = expecting(randomBytes(1024));
      const rid = requestId();
      // Before the change the service waited for an image that never comes (the client waits for the 100).
      expect(await codeOf(service.sign(signer, q, req, rid))).toBe(code);
      expect([res.continued, res.headers.get('connection')]).toEqual([0, 'close']);
      const events = (await audit.list({ action: 'firmware.sign', requestId: rid })).items;
      expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', code]]);
    });

    it('ok a usable operation: one 100, then the image is read and signed (openssl verifies it), the connection kept', async () => {
      const { signer, operationId } = await signingSetup();
      const image = randomBytes(200 * 1024);
      const { req, res } = expecting(image);
      const cms = await service.sign(signer, query(operationId), req, requestId());
      expect([res.continued, res.headers.has('connection')]).toEqual([1, false]);
      const p7s = openssl.write('continued.p7s', cms);
      expect(openssl.run('cms', '-verify', '-binary', '-content', openssl.write('continued.bin', image), '-inform', 'DER', '-in', p7s, '-CAfile', chainFile, '-purpose', 'any', '-out', '/dev/null')).toMatchObject({ status: 0 });
      expect(await usagesUsed(operationId)).toEqual([1]);
    });
  });
});
