import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { SoftwareSigner } from '../testing/software-signer';
import { createCaCertificate, createFirmwareSigningCertificate, createRootCertificate, createSigningEndEntityCertificate } from './certificates';
import { type CmsSigner, prepareCmsSigner, signCms, signSignedData, TIMESTAMP_TOKEN_ATTRIBUTE } from './cms';
import { createCrl } from './crl';
import { derTlv, digest, isStrictDer, toAb } from './der';
import { signData } from './sign';
import fc from 'fast-check';
import {
  buildTimeStampQuery,
  buildTstInfo,
  checkGenTime,
  checkTimeStampReply,
  createTimeStampToken,
  createTimestampingCertificate,
  grantedResponse,
  messageImprintOf,
  parseTimeStampQuery,
  readTimeStampToken,
  readTsaCrls,
  rejectionResponse,
  TimeStampAuthority,
  TSA_OID,
  TsaError,
  TsaErrorCode,
  type TsaTrust,
} from './tsa';

const DAY = 86_400_000;
const POLICY = '1.3.6.1.4.1.99999.1.1';

describe('RFC 3161 time-stamping', () => {
  const signer = new SoftwareSigner();
  let work: string;
  let tsa: TimeStampAuthority;
  let rootPem: string;
  let fwCms: ReturnType<typeof prepareCmsSigner>;
  const f = (n: string) => join(work, n);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' }).toString();

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'pki-tsa-'));
    const rootKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'root' });
    const tsaKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'tsa' });
    const fwKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'fw' });
    const now = Date.now();
    const root = await createRootCertificate(signer, rootKey, { subject: { commonName: 'Root' }, notBefore: new Date(now - DAY), notAfter: new Date(now + 3650 * DAY) });
    const issuer = { key: rootKey, certificate: root.certificatePem };
    const tsaCert = await createTimestampingCertificate(signer, issuer, tsaKey, { subject: { commonName: 'Test TSA' }, notBefore: new Date(now - DAY), notAfter: new Date(now + 1000 * DAY) });
    const fwCert = await createFirmwareSigningCertificate(signer, issuer, fwKey, { subject: { commonName: 'FW' }, notBefore: new Date(now - DAY), notAfter: new Date(now + 100 * DAY) });
    rootPem = root.certificatePem;
    writeFileSync(f('root.pem'), rootPem);
    writeFileSync(f('tsa.pem'), tsaCert.certificatePem);
    tsa = { cms: prepareCmsSigner(tsaKey, [tsaCert.certificatePem, rootPem]), hash: 'SHA-256', policy: POLICY, accuracyMs: 1500 };
    fwCms = prepareCmsSigner(fwKey, [fwCert.certificatePem, rootPem]);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('issues a TSA certificate whose only extended key usage is timeStamping, critical', () => {
    const text = openssl(['x509', '-in', f('tsa.pem'), '-noout', '-ext', 'extendedKeyUsage,keyUsage,basicConstraints']);
    expect(text).toMatch(/X509v3 Extended Key Usage: critical\s+Time Stamping\s/);
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature/);
    expect(new X509Certificate(readFileSync(f('tsa.pem'))).checkIssued(new X509Certificate(rootPem))).toBe(true);
    openssl(['verify', '-CAfile', f('root.pem'), '-purpose', 'timestampsign', f('tsa.pem')]);
  });

  it.each([
    ['SHA-256 with a nonce and certReq', ['-sha256', '-cert']],
    ['SHA-512 without certReq', ['-sha512']],
    ['SHA-384 without a nonce', ['-sha384', '-no_nonce', '-cert']],
    ['our policy named in the query', ['-sha256', '-cert', '-tspolicy', POLICY]],
  ])('ok %s: openssl ts -verify accepts the reply and -reply -text shows nonce, policy and accuracy', async (_n, args) => {
    const data = randomBytes(300);
    writeFileSync(f('data.bin'), data);
    openssl(['ts', '-query', '-data', f('data.bin'), ...args, '-out', f('q.tsq')]);
    const q = parseTimeStampQuery(readFileSync(f('q.tsq')), { policy: POLICY });
    const issued = await createTimeStampToken(signer, tsa, q);
    writeFileSync(f('r.tsr'), grantedResponse(issued.token));
    const untrusted = q.certReq ? [] : ['-untrusted', f('tsa.pem')];
    const out = openssl(['ts', '-verify', '-in', f('r.tsr'), '-queryfile', f('q.tsq'), '-CAfile', f('root.pem'), ...untrusted]);
    expect(out).toMatch(/Verification: OK/);
    openssl(['ts', '-verify', '-in', f('r.tsr'), '-data', f('data.bin'), '-CAfile', f('root.pem'), ...untrusted]);
    const text = openssl(['ts', '-reply', '-in', f('r.tsr'), '-text']);
    expect(text).toContain('Status: Granted.');
    expect(text).toContain(`Policy OID: ${POLICY}`);
    expect(text).toContain('Accuracy: 0x01 seconds, 0x01F4 millis');
    expect(BigInt(`0x${/Serial number: 0x([0-9A-F]+)/.exec(text)?.[1]}`)).toBe(BigInt(`0x${issued.serialHex}`));
    expect(text).toMatch(args.includes('-no_nonce') ? /Nonce: unspecified/ : /Nonce: 0x[0-9A-F]+/);
  });

  it.each([
    ['ok an accuracy of 1 ms', 1],
    ['ok an accuracy of 250 ms', 250],
    ['ok an accuracy of 999 ms', 999],
    ['ok an accuracy of 1 s', 1000],
    ['ok an accuracy of 1.5 s', 1500],
  ])('%s: the genTime openssl reads is within the stated accuracy of the signing time, and openssl ts -verify accepts the reply', async (_n, accuracyMs) => {
    const sent = buildTimeStampQuery('SHA-256', randomBytes(32));
    writeFileSync(f('acc.tsq'), sent.der);
    for (const ms of [0, 1, 10, 120, 500, 999]) {
      const now = new Date(Date.UTC(2031, 4, 6, 7, 8, 9, ms));
      const issued = await createTimeStampToken(signer, { ...tsa, accuracyMs }, parseTimeStampQuery(sent.der, { policy: POLICY }), now);
      writeFileSync(f('acc.tsr'), grantedResponse(issued.token));
      const stamp = /Time stamp: (\w+ +\d+ \d\d:\d\d:\d\d(?:\.\d+)? \d{4}) GMT/.exec(openssl(['ts', '-reply', '-in', f('acc.tsr'), '-text']))?.[1] ?? '';
      const [, sec, frac = ''] = /:(\d\d)(?:\.(\d+))? /.exec(stamp) ?? [];
      const genTimeMs = Date.UTC(2031, 4, 6, 7, 8, Number(sec)) + Math.round(Number(`0.${frac || '0'}`) * 1000);
      expect(Math.abs(genTimeMs - now.getTime())).toBeLessThanOrEqual(accuracyMs);
      expect(Math.abs(issued.genTime.getTime() - now.getTime())).toBeLessThanOrEqual(accuracyMs);
      expect(readTimeStampToken(issued.token).genTime.getTime()).toBe(issued.genTime.getTime());
      expect(openssl(['ts', '-verify', '-in', f('acc.tsr'), '-queryfile', f('acc.tsq'), '-CAfile', f('root.pem')])).toMatch(/Verification: OK/);
    }
  });

  it('gives every token its own serial', async () => {
    const q = parseTimeStampQuery(buildTimeStampQuery('SHA-256', randomBytes(10)).der, { policy: POLICY });
    const serials = new Set<string>();
    for (let i = 0; i < 50; i++) serials.add((await createTimeStampToken(signer, tsa, q)).serialHex);
    expect(serials.size).toBe(50);
  });

  const query = (parts: Uint8Array[]) => derTlv(0x30, ...parts);
  const int = (n: number) => new Uint8Array(new asn1js.Integer({ value: n }).toBER(false));
  const oid = (o: string) => new Uint8Array(new asn1js.ObjectIdentifier({ value: o }).toBER(false));
  const imprint = (alg: string, len: number, params?: Uint8Array) => derTlv(0x30, derTlv(0x30, oid(alg), ...(params ? [params] : [])), derTlv(0x04, new Uint8Array(len)));
  const SHA256 = '2.16.840.1.101.3.4.2.1';
  it('ok a query asking for the policy when it is an X.667 UUID OID (arcs beyond 2^53)', () => {
    const policy = '2.25.71464660586911067804008473257468327654';
    expect(parseTimeStampQuery(query([int(1), imprint(SHA256, 32), oid(policy)]), { policy }).reqPolicy).toBe(policy);
  });

  it.each([
    ['fail garbage bytes', new Uint8Array([1, 2, 3, 4]), TsaErrorCode.QueryNotDer, 5],
    ['fail a BER indefinite length', new Uint8Array([0x30, 0x80, 0x02, 0x01, 0x01, 0, 0]), TsaErrorCode.QueryNotDer, 5],
    ['fail trailing bytes', new Uint8Array([...query([int(1), imprint(SHA256, 32)]), 0]), TsaErrorCode.QueryNotDer, 5],
    ['fail a huge query', new Uint8Array(2_000_000).fill(0x30), TsaErrorCode.QueryTooLarge, 5],
    ['fail version 2', query([int(2), imprint(SHA256, 32)]), TsaErrorCode.VersionNotSupported, 2],
    ['fail an unknown hash algorithm', query([int(1), imprint('1.2.3.4', 32)]), TsaErrorCode.HashNotAccepted, 0],
    ['fail SHA-1', query([int(1), imprint('1.3.14.3.2.26', 20)]), TsaErrorCode.HashNotAccepted, 0],
    ['fail hash parameters that are not NULL', query([int(1), imprint(SHA256, 32, int(5))]), TsaErrorCode.HashNotAccepted, 0],
    ['fail a SHA-256 imprint of 31 bytes', query([int(1), imprint(SHA256, 31)]), TsaErrorCode.ImprintLengthMismatch, 5],
    ['fail another policy', query([int(1), imprint(SHA256, 32), oid('1.2.3')]), TsaErrorCode.PolicyNotAccepted, 15],
    ['fail extensions', query([int(1), imprint(SHA256, 32), derTlv(0xa0, derTlv(0x30))]), TsaErrorCode.ExtensionNotAccepted, 16],
    ['fail a 65-byte nonce', query([int(1), imprint(SHA256, 32), derTlv(0x02, new Uint8Array(65).fill(0x11))]), TsaErrorCode.QueryMalformed, 5],
    ['fail a missing imprint', query([int(1)]), TsaErrorCode.QueryMalformed, 5],
    ['fail fields out of order', query([int(1), imprint(SHA256, 32), new Uint8Array([1, 1, 0xff]), int(7)]), TsaErrorCode.QueryMalformed, 5],
  ])('%s: a TsaError that answers as PKIStatus rejection with its failInfo', (_n, der, code, bit) => {
    let err: unknown;
    try {
      parseTimeStampQuery(der, { policy: POLICY });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TsaError);
    expect((err as TsaError).code).toBe(code);
    writeFileSync(f('rej.tsr'), rejectionResponse(err as TsaError));
    const text = openssl(['ts', '-reply', '-in', f('rej.tsr'), '-text']);
    expect(text).toContain('Status: Rejected.');
    expect(text).toContain(code);
    const names = ['unrecognized or unsupported algorithm', '', 'transaction not permitted or supported', '', '', 'the data submitted has the wrong format'];
    if (bit <= 5) expect(text).toContain(names[bit]);
    else expect(text).toMatch(bit === 15 ? /requested TSA policy is not supported/ : /requested extension is not supported/);
  });

  describe('hostile queries (fast-check): every one is accepted as the DER a DER encoder writes for it, or refused with a TsaError that answers as a DER rejection', () => {
    const QUERY_CODES: string[] = [
      TsaErrorCode.QueryTooLarge,
      TsaErrorCode.QueryNotDer,
      TsaErrorCode.QueryMalformed,
      TsaErrorCode.VersionNotSupported,
      TsaErrorCode.HashNotAccepted,
      TsaErrorCode.ImprintLengthMismatch,
      TsaErrorCode.PolicyNotAccepted,
      TsaErrorCode.ExtensionNotAccepted,
    ];
    const TRUE = new Uint8Array([0x01, 0x01, 0xff]);
    /** The DER INTEGER of `n` (two's complement, minimal). */
    const bigIntDer = (n: bigint): Uint8Array => {
      let k = 1;
      while (n >= 1n << BigInt(8 * k - 1) || n < -(1n << BigInt(8 * k - 1))) k++;
      const v = n < 0n ? (1n << BigInt(8 * k)) + n : n;
      return derTlv(0x02, new Uint8Array(Buffer.from(v.toString(16).padStart(2 * k, '0'), 'hex')));
    };
    /** What a DER encoder writes for a parsed query (certReq FALSE is the DEFAULT: left out, X.690 11.5). */
    const canonical = (q: ReturnType<typeof parseTimeStampQuery>) =>
      query([int(1), q.messageImprintDer, ...(q.reqPolicy ? [oid(q.reqPolicy)] : []), ...(q.nonceDer ? [q.nonceDer] : []), ...(q.certReq ? [TRUE] : [])]);
    /** The property: accepted and canonical, or a query refusal whose rejection TimeStampResp is DER and says so. */
    const judged = (der: Uint8Array): void => {
      let q: ReturnType<typeof parseTimeStampQuery> | undefined;
      try {
        q = parseTimeStampQuery(der, { policy: POLICY });
      } catch (e) {
        if (!(e instanceof TsaError)) throw e;
        expect(QUERY_CODES).toContain(e.code);
        const reply = rejectionResponse(e);
        expect(isStrictDer(reply)).toBe(true);
        expect(Buffer.from(reply).includes(Buffer.from([0x02, 0x01, 0x02]))).toBe(true);
        return;
      }
      expect(Buffer.from(canonical(q)).equals(Buffer.from(der))).toBe(true);
      expect(q.nonceDer === undefined || q.nonceDer.length <= 66).toBe(true);
    };
    const HASH_OIDS = ['2.16.840.1.101.3.4.2.1', '2.16.840.1.101.3.4.2.2', '2.16.840.1.101.3.4.2.3', '1.3.14.3.2.26', '1.2.840.113549.2.5', '2.16.840.1.101.3.4.2.8', '1.2.3.4'];
    const field = {
      version: fc.oneof(
        { weight: 6, arbitrary: fc.constant(int(1)) },
        { weight: 1, arbitrary: fc.bigInt(-(1n << 70n), 1n << 70n).map(bigIntDer) },
        { weight: 1, arbitrary: fc.constant(new Uint8Array([0x02, 0x02, 0x00, 0x01])) },
      ),
      imprint: fc
        .tuple(
          fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...HASH_OIDS.slice(0, 3)) }, { weight: 1, arbitrary: fc.constantFrom(...HASH_OIDS.slice(3)) }),
          fc.constantFrom<Uint8Array | undefined>(undefined, undefined, new Uint8Array([5, 0]), int(0)),
          fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom(0, 20, 31, 32, 33, 48, 64, 65) }),
          fc.oneof({ weight: 7, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
        )
        .map(([alg, params, odd, constructed]) => [alg, params, odd ?? ({ '2.16.840.1.101.3.4.2.2': 48, '2.16.840.1.101.3.4.2.3': 64 } as Record<string, number>)[alg] ?? 32, constructed] as const)
        .map(([alg, params, len, constructed]) =>
          derTlv(0x30, derTlv(0x30, oid(alg), ...(params ? [params] : [])), constructed ? derTlv(0x24, derTlv(0x04, new Uint8Array(len))) : derTlv(0x04, new Uint8Array(len))),
        ),
      policy: fc.constantFrom(POLICY, '1.2.3', '2.25.71464660586911067804008473257468327654').map(oid),
      nonce: fc.oneof(
        fc.bigInt(-(1n << 64n), 1n << 64n).map(bigIntDer),
        fc.bigInt(-(1n << 520n), 1n << 520n).map(bigIntDer),
        fc.constantFrom(int(0), int(-1), new Uint8Array([0x02, 0x02, 0x00, 0x05]), new Uint8Array([0x02, 0x00])),
      ),
      certReq: fc.constantFrom(TRUE, new Uint8Array([0x01, 0x01, 0x00]), new Uint8Array([0x01, 0x01, 0x01])),
      extensions: fc.constantFrom(
        derTlv(0xa0, derTlv(0x30, derTlv(0x30, oid('1.2.3.4'), derTlv(0x04)))),
        derTlv(0xa0, derTlv(0x30, derTlv(0x30, oid('1.2.3.4'), TRUE, derTlv(0x04)))),
        derTlv(0xa1, derTlv(0x30)),
        derTlv(0x80),
      ),
    };
    const structured = fc
      .record(
        {
          version: field.version,
          imprint: field.imprint,
          policy: field.policy,
          nonce: field.nonce,
          certReq: field.certReq,
          extensions: fc.option(field.extensions, { freq: 4, nil: undefined }),
        },
        { requiredKeys: ['version', 'imprint', 'extensions'] },
      )
      .chain((r) => {
        const parts = [r.version, r.imprint, r.policy, r.nonce, r.certReq, r.extensions].filter((p): p is Uint8Array => p !== undefined);
        return fc.oneof(
          { weight: 6, arbitrary: fc.constant(query(parts)) },
          { weight: 1, arbitrary: fc.shuffledSubarray(parts, { minLength: 0 }).map((p) => query(p)) },
          {
            weight: 2,
            arbitrary: fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([at, x]) => {
              const der = new Uint8Array(query(parts));
              der[at % der.length] ^= x;
              return der;
            }),
          },
          { weight: 1, arbitrary: fc.nat().map((n) => query(parts).subarray(0, n % query(parts).length)) },
        );
      });

    it('ok or refused, never anything else: structured queries, field by field hostile, shuffled, flipped and truncated', () => {
      fc.assert(fc.property(structured, judged), { numRuns: 3000 });
    });

    it('ok or refused, never anything else: arbitrary bytes, also inside a SEQUENCE', () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, wrap) => judged(wrap ? derTlv(0x30, bytes) : bytes)), { numRuns: 3000 });
    });

    it.each<[string, Uint8Array, TsaErrorCode]>([
      ['fail certReq FALSE written out (a DEFAULT value: BER, not DER)', query([int(1), imprint(SHA256, 32), new Uint8Array([0x01, 0x01, 0x00])]), TsaErrorCode.QueryNotDer],
      ['fail certReq TRUE written as 01 (BER, not DER)', query([int(1), imprint(SHA256, 32), new Uint8Array([0x01, 0x01, 0x01])]), TsaErrorCode.QueryNotDer],
      ['fail a nonce with a leading zero byte it does not need', query([int(1), imprint(SHA256, 32), new Uint8Array([0x02, 0x02, 0x00, 0x05])]), TsaErrorCode.QueryNotDer],
      ['fail an imprint as a constructed OCTET STRING (BER)', query([int(1), derTlv(0x30, derTlv(0x30, oid(SHA256)), derTlv(0x24, derTlv(0x04, new Uint8Array(32))))]), TsaErrorCode.QueryNotDer],
      ['fail nesting 80 deep', [...Array(80)].reduce<Uint8Array>((inner) => derTlv(0x30, inner), new Uint8Array([0x05, 0x00])), TsaErrorCode.QueryNotDer],
      ['fail an empty body', new Uint8Array(0), TsaErrorCode.QueryNotDer],
      ['fail version 0', query([int(0), imprint(SHA256, 32)]), TsaErrorCode.VersionNotSupported],
      ['fail version -1', query([int(-1), imprint(SHA256, 32)]), TsaErrorCode.VersionNotSupported],
      ['fail version 2^64 + 1', query([new Uint8Array([0x02, 0x09, 1, 0, 0, 0, 0, 0, 0, 0, 1]), imprint(SHA256, 32)]), TsaErrorCode.VersionNotSupported],
      ['fail a SHA-256 OID with a SHA-512-long digest', query([int(1), imprint(SHA256, 64)]), TsaErrorCode.ImprintLengthMismatch],
      ['fail a SHA-512 OID with a SHA-256-long digest', query([int(1), imprint('2.16.840.1.101.3.4.2.3', 32)]), TsaErrorCode.ImprintLengthMismatch],
      ['fail SHA-512/256 (a hash we do not accept)', query([int(1), imprint('2.16.840.1.101.3.4.2.6', 32)]), TsaErrorCode.HashNotAccepted],
      ['fail a critical extension', query([int(1), imprint(SHA256, 32), derTlv(0xa0, derTlv(0x30, derTlv(0x30, oid('1.2.3.4'), new Uint8Array([1, 1, 0xff]), derTlv(0x04))))]), TsaErrorCode.ExtensionNotAccepted],
      ['fail a non-critical extension', query([int(1), imprint(SHA256, 32), derTlv(0xa0, derTlv(0x30, derTlv(0x30, oid('1.2.3.4'), derTlv(0x04))))]), TsaErrorCode.ExtensionNotAccepted],
      ['fail another context tag after the fields', query([int(1), imprint(SHA256, 32), derTlv(0xa1, derTlv(0x30))]), TsaErrorCode.QueryMalformed],
      ['fail a nonce of 65 bytes of magnitude (and its 00 sign byte)', query([int(1), imprint(SHA256, 32), bigIntDer(1n << 519n)]), TsaErrorCode.QueryMalformed],
      ['fail a negative nonce of 65 bytes of magnitude (and its ff sign byte)', query([int(1), imprint(SHA256, 32), bigIntDer(-(1n << 519n) - 1n)]), TsaErrorCode.QueryMalformed],
    ])('%s', (_n, der, code) => {
      expect(() => parseTimeStampQuery(der, { policy: POLICY })).toThrow(expect.objectContaining({ code }));
    });

    it.each<[string, Uint8Array]>([
      ['ok a nonce of 0', int(0)],
      ['ok a negative nonce', bigIntDer(-0x1234567890n)],
      ['ok a 64-byte nonce', bigIntDer((1n << 510n) + 12345n)],
      ['ok a 512-bit nonce whose top bit is set (65 bytes with its sign byte: 64 bytes of magnitude)', bigIntDer((1n << 511n) + 12345n)],
      ['ok a negative 64-byte nonce', bigIntDer(-(1n << 511n))],
      ['ok a negative nonce of 64 bytes of magnitude whose sign takes a 65th byte (ff)', bigIntDer(-(1n << 511n) - 1n)],
    ])('%s: echoed byte for byte; openssl ts -verify -queryfile and pkijs (a second verifier) accept the reply', async (_n, nonceDer) => {
      const data = randomBytes(100);
      const der = query([int(1), messageImprintOf('SHA-256', data), nonceDer, TRUE]);
      const q = parseTimeStampQuery(der, { policy: POLICY });
      expect(Buffer.from(q.nonceDer as Uint8Array).equals(Buffer.from(nonceDer))).toBe(true);
      const issued = await createTimeStampToken(signer, tsa, q);
      const reply = grantedResponse(issued.token);
      writeFileSync(f('nonce.tsq'), der);
      writeFileSync(f('nonce.tsr'), reply);
      expect(openssl(['ts', '-verify', '-in', f('nonce.tsr'), '-queryfile', f('nonce.tsq'), '-CAfile', f('root.pem')])).toMatch(/Verification: OK/);
      const resp = pkijs.TimeStampResp.fromBER(toAb(reply));
      expect(resp.status.status).toBe(pkijs.PKIStatus.granted);
      const verified = await resp.verify({ signer: 0, data: toAb(data), trustedCerts: [pkijs.Certificate.fromBER(toAb(new Uint8Array(new X509Certificate(rootPem).raw)))] });
      expect(verified).toBe(true);
      const info = new pkijs.TSTInfo({ schema: asn1js.fromBER(new pkijs.SignedData({ schema: resp.timeStampToken?.content }).encapContentInfo.eContent?.valueBlock.valueHexView ?? new ArrayBuffer(0)).result });
      expect(Buffer.from(info.nonce?.toBER(false) ?? new ArrayBuffer(0)).equals(Buffer.from(nonceDer))).toBe(true);
    });
  });

  it('checks an external reply: imprint, nonce and signature, and refuses a reply to another query', async () => {
    const sent = buildTimeStampQuery('SHA-256', randomBytes(64));
    const q = parseTimeStampQuery(sent.der, { policy: POLICY });
    expect(q.certReq).toBe(true);
    const issued = await createTimeStampToken(signer, tsa, q);
    const trust: TsaTrust = { anchors: [new X509Certificate(rootPem)], pins: [] };
    const ok = await checkTimeStampReply(grantedResponse(issued.token), sent, trust);
    expect(ok.info.serialHex).toBe(issued.serialHex);
    const other = buildTimeStampQuery('SHA-256', randomBytes(64));
    await expect(checkTimeStampReply(grantedResponse(issued.token), other, trust)).rejects.toMatchObject({ code: TsaErrorCode.TimestampReplyInvalid });
    await expect(checkTimeStampReply(rejectionResponse(new TsaError(TsaErrorCode.HashNotAccepted)), sent, trust)).rejects.toMatchObject({ code: TsaErrorCode.TimestampReplyInvalid });
    const tampered = Buffer.from(issued.token);
    const at = tampered.indexOf(Buffer.from(issued.serialHex, 'hex'));
    tampered[at] ^= 1;
    await expect(checkTimeStampReply(grantedResponse(tampered), sent, trust)).rejects.toMatchObject({ code: TsaErrorCode.TimestampReplyInvalid });
  });

  it('embeds a signature timestamp in a CMS firmware signature; openssl cms -verify and openssl ts -verify on the extracted token accept it', async () => {
    const image = randomBytes(5000);
    writeFileSync(f('fw.bin'), image);
    let stamped: Uint8Array | undefined;
    const der = await signCms(signer, fwCms, {
      digest: new Uint8Array(createHash('sha256').update(image).digest()),
      timestamp: async (signature) => {
        writeFileSync(f('sigvalue.bin'), signature);
        const sent = buildTimeStampQuery('SHA-256', signature);
        stamped = (await createTimeStampToken(signer, tsa, parseTimeStampQuery(sent.der, { policy: POLICY }))).token;
        return stamped;
      },
    });
    writeFileSync(f('fw.p7s'), der);
    openssl(['cms', '-verify', '-binary', '-content', f('fw.bin'), '-inform', 'DER', '-in', f('fw.p7s'), '-CAfile', f('root.pem'), '-purpose', 'any', '-out', '/dev/null']);
    // The token as the SignerInfo carries it, byte for byte.
    const sd = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(toAb(der)).content });
    const attr = sd.signerInfos[0].unsignedAttrs?.attributes.find((a) => a.type === TIMESTAMP_TOKEN_ATTRIBUTE);
    const token = Buffer.from((attr?.values[0] as asn1js.Sequence).valueBeforeDecodeView);
    expect(token.equals(Buffer.from(stamped as Uint8Array))).toBe(true);
    writeFileSync(f('token.der'), token);
    expect(Buffer.from(sd.signerInfos[0].signature.valueBlock.valueHexView).equals(readFileSync(f('sigvalue.bin')))).toBe(true);
    const out = openssl(['ts', '-verify', '-token_in', '-in', f('token.der'), '-data', f('sigvalue.bin'), '-CAfile', f('root.pem')]);
    expect(out).toMatch(/Verification: OK/);
    expect(readTimeStampToken(token).policy).toBe(POLICY);
  });
});

describe(`${checkTimeStampReply.name}: trust in an external TSA (ADR 0043)`, () => {
  const signer = new SoftwareSigner();
  const pem = new Map<string, string>();
  const cms = new Map<string, CmsSigner>();
  const x509 = (name: string) => new X509Certificate(pem.get(name) as string);
  const sha256 = (name: string) => new Uint8Array(createHash('sha256').update(x509(name).raw).digest());

  beforeAll(async () => {
    const now = Date.now();
    const key = (label: string) => signer.generateKey({ algorithm: 'RSA-2048', label });
    const years = { notBefore: new Date(now - DAY), notAfter: new Date(now + 3650 * DAY) };
    const put = async (name: string, k: Awaited<ReturnType<typeof key>>, made: { certificatePem: string }, chain: string[] = []) => {
      pem.set(name, made.certificatePem);
      cms.set(name, prepareCmsSigner(k, [made.certificatePem, ...chain.map((c) => pem.get(c) as string)]));
    };
    const [rootKey, foreignKey, caKey] = [await key('root'), await key('foreign'), await key('ca')];
    await put('root', rootKey, await createRootCertificate(signer, rootKey, { subject: { commonName: 'TSA Root' }, ...years }));
    await put('foreign', foreignKey, await createRootCertificate(signer, foreignKey, { subject: { commonName: 'TSA Root' }, ...years }));
    const root = { key: rootKey, certificate: pem.get('root') as string };
    await put('ca', caKey, await createCaCertificate(signer, root, caKey, { subject: { commonName: 'TSA Issuing CA' }, ...years }), ['root']);
    const ca = { key: caKey, certificate: pem.get('ca') as string };
    const foreign = { key: foreignKey, certificate: pem.get('foreign') as string };
    const leaf = { subject: { commonName: 'External TSA' }, notBefore: new Date(now - DAY), notAfter: new Date(now + 365 * DAY) };
    for (const [name, issuer, chain] of [['tsa', root, ['root']], ['tsa-under-ca', ca, ['ca', 'root']], ['tsa-foreign', foreign, ['foreign']]] as const) {
      const k = await key(name);
      await put(name, k, await createTimestampingCertificate(signer, issuer, k, leaf), [...chain]);
    }
    const fw = await key('fw');
    await put('code-signing', fw, await createFirmwareSigningCertificate(signer, root, fw, leaf), ['root']);
    const lax = await key('lax');
    await put('eku-not-critical', lax, await createSigningEndEntityCertificate(signer, root, lax, leaf, { oid: TSA_OID.timeStamping, critical: false }), ['root']);
    const old = await key('old');
    await put('expired', old, await createTimestampingCertificate(signer, root, old, { ...leaf, notBefore: new Date(now - DAY / 2), notAfter: new Date(now - 3_600_000) }), ['root']);
  });

  /** What a hostile or broken TSA changes in its token: its genTime and accuracy, its ESS signing-certificate attribute. */
  interface Twist {
    genTime?: Date;
    accuracyMs?: number;
    /** omit: no signing-certificate attribute; other: the attribute names the root, not the signer. */
    ess?: 'omit' | 'other';
    /** The ESS signing-certificate(-v2) attribute replaced by this one (type, DER value), built from the signer's certificate. */
    essAttr?: (signer: X509Certificate) => { type: string; value: Uint8Array };
  }

  /** A granted reply to `sent` signed by `name`, carrying its certificate only (certReq) or its whole chain. */
  async function reply(name: string, sent: ReturnType<typeof buildTimeStampQuery>, certificates: 'signer' | 'chain', twist: Twist = {}): Promise<Uint8Array> {
    const own = cms.get(name) as CmsSigner;
    const authority: TimeStampAuthority = { cms: twist.ess === 'other' ? { ...own, signerCertSha256: sha256('root') } : own, hash: 'SHA-256', policy: POLICY, accuracyMs: twist.accuracyMs ?? 1000 };
    const tst = buildTstInfo(authority, parseTimeStampQuery(sent.der, { policy: POLICY }), twist.genTime ?? new Date());
    const token = await signSignedData(signer, authority.cms, { contentType: TSA_OID.tstInfo, content: tst.der, digest: digest('SHA-256', tst.der), hash: 'SHA-256', omitSigningTime: true, certificates });
    if (twist.essAttr) return grantedResponse(await withoutEss(token, own, twist.essAttr(x509(name))));
    return grantedResponse(twist.ess === 'omit' ? await withoutEss(token, own) : token);
  }

  /** The token signed again by the same key over its signed attributes less the ESS signing-certificate(-v2) one (plus `replacement`). */
  async function withoutEss(token: Uint8Array, by: CmsSigner, replacement?: { type: string; value: Uint8Array }): Promise<Uint8Array> {
    const sd = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(toAb(token)).content });
    const si = sd.signerInfos[0];
    const kept = (si.signedAttrs as pkijs.SignedAndUnsignedAttributes).attributes.filter((a) => a.type !== TSA_OID.signingCertificateV2);
    const added = replacement ? [new pkijs.Attribute({ type: replacement.type, values: [asn1js.fromBER(toAb(replacement.value)).result] })] : [];
    // DER: a SET OF in the order of its encodings.
    const attrs = [...kept, ...added].sort((x, y) => Buffer.compare(Buffer.from(x.toSchema().toBER(false)), Buffer.from(y.toSchema().toBER(false))));
    const toBeSigned = new Uint8Array(new asn1js.Set({ value: attrs.map((a) => a.toSchema()) }).toBER(false));
    si.signedAttrs = new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes: attrs });
    si.signature = new asn1js.OctetString({ valueHex: toAb(await signData(signer, by.key, toBeSigned, 'SHA-256')) });
    const der = new Uint8Array(new pkijs.ContentInfo({ contentType: '1.2.840.113549.1.7.2', content: sd.toSchema(true) }).toSchema().toBER(false));
    // Otherwise the reply would be refused as not DER, not for the missing attribute.
    expect(isStrictDer(der)).toBe(true);
    return der;
  }

  type Case = [string, string, 'signer' | 'chain', { anchors?: string[]; pins?: string[] }];
  const trustOf = (t: Case[3]): TsaTrust => ({ anchors: (t.anchors ?? []).map(x509), pins: (t.pins ?? []).map(sha256) });

  it.each<Case>([
    ['ok the TSA certificate chains to the configured root', 'tsa', 'signer', { anchors: ['root'] }],
    ['ok through an intermediate CA the token carries', 'tsa-under-ca', 'chain', { anchors: ['root'] }],
    ['ok an intermediate CA as the anchor', 'tsa-under-ca', 'signer', { anchors: ['ca'] }],
    ['ok the TSA certificate itself as the anchor', 'tsa', 'signer', { anchors: ['tsa'] }],
    ['ok a pinned TSA certificate without an anchor', 'tsa', 'signer', { pins: ['tsa'] }],
    ['ok pinned and chained to the root', 'tsa', 'chain', { anchors: ['root'], pins: ['tsa', 'tsa-under-ca'] }],
  ])('%s', async (_name, tsaName, certificates, trust) => {
    const sent = buildTimeStampQuery('SHA-256', randomBytes(64));
    const ok = await checkTimeStampReply(await reply(tsaName, sent, certificates), sent, trustOf(trust));
    expect(ok.info.messageImprintDer).toEqual(sent.messageImprintDer);
  });

  it.each<Case>([
    ['fail a TSA under another root with the same names', 'tsa-foreign', 'chain', { anchors: ['root'] }],
    ['fail a TSA that is not pinned', 'tsa-foreign', 'chain', { pins: ['tsa'] }],
    ['fail a TSA under the root that is not the pinned one', 'tsa-under-ca', 'chain', { anchors: ['root'], pins: ['tsa'] }],
    ['fail an intermediate CA neither the token nor the anchors hold', 'tsa-under-ca', 'signer', { anchors: ['root'] }],
    ['fail a code-signing certificate under the root', 'code-signing', 'chain', { anchors: ['root'] }],
    ['fail a pinned code-signing certificate', 'code-signing', 'chain', { pins: ['code-signing'] }],
    ['fail timeStamping not marked critical', 'eku-not-critical', 'chain', { anchors: ['root'] }],
    ['fail an expired TSA certificate under the root', 'expired', 'chain', { anchors: ['root'] }],
    ['fail an expired pinned TSA certificate', 'expired', 'chain', { pins: ['expired'] }],
    ['fail no anchor and no pin (deny by default)', 'tsa', 'chain', {}],
  ])('%s: timestamp_tsa_untrusted, the token is not used', async (_name, tsaName, certificates, trust) => {
    const sent = buildTimeStampQuery('SHA-256', randomBytes(64));
    const r = await reply(tsaName, sent, certificates);
    await expect(checkTimeStampReply(r, sent, trustOf(trust))).rejects.toMatchObject({ code: TsaErrorCode.TimestampTsaUntrusted, status: 502 });
  });
  const MIN = 60_000;

  it.each<[string, Twist]>([
    ['fail a token without the ESS signing-certificate attribute', { ess: 'omit' }],
    ['fail an ESS signing-certificate attribute that names another certificate', { ess: 'other' }],
  ])('%s: timestamp_reply_invalid, the token is not used', async (_name, twist) => {
    const sent = buildTimeStampQuery('SHA-256', randomBytes(64));
    const r = await reply('tsa', sent, 'signer', twist);
    await expect(checkTimeStampReply(r, sent, trustOf({ anchors: ['root'] }))).rejects.toMatchObject({ code: TsaErrorCode.TimestampReplyInvalid, status: 502 });
  });

  /** The issuer Name (DER, as the certificate encodes it) and the serial INTEGER content of a certificate. */
  const issuerAndSerial = (c: X509Certificate) => {
    const tbs = (asn1js.fromBER(toAb(new Uint8Array(c.raw))).result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence;
    const [, serial, , issuer] = tbs.valueBlock.value;
    return { issuer: new Uint8Array((issuer as asn1js.BaseBlock).valueBeforeDecodeView), serial: new Uint8Array((serial as asn1js.Integer).valueBlock.valueHexView) };
  };
  const dirName = (name: Uint8Array) => derTlv(0xa4, name);
  const integer = (content: Uint8Array) => derTlv(0x02, content);
  /** IssuerSerial ::= SEQUENCE { issuer GeneralNames, serialNumber INTEGER } */
  const issuerSerial = (names: Uint8Array[], serial: Uint8Array) => derTlv(0x30, derTlv(0x30, ...names), integer(serial));
  /** SigningCertificateV2 { certs { ESSCertIDv2 { certHash SHA-256 (hashAlgorithm DEFAULT), issuerSerial } } } */
  const essV2 = (made: (s: ReturnType<typeof issuerAndSerial>) => Uint8Array) => (c: X509Certificate) => ({
    type: TSA_OID.signingCertificateV2,
    value: derTlv(0x30, derTlv(0x30, derTlv(0x30, derTlv(0x04, new Uint8Array(createHash('sha256').update(c.raw).digest())), made(issuerAndSerial(c))))),
  });
  const plusOne = (serial: Uint8Array) => new Uint8Array(Buffer.from((BigInt(`0x${Buffer.from(serial).toString('hex')}`) + 1n).toString(16).padStart(serial.length * 2, '0'), 'hex'));
  // The ESS attribute's cases (issuerSerial, v1, hashes) are the token verifier's: libs/timestamp-token. Here its refusal is the API's code.
  it.each<[string, Twist]>([
    ['ok ESSCertIDv2 with the issuerSerial of the signer', { essAttr: essV2((s) => issuerSerial([dirName(s.issuer)], s.serial)) }],
  ])('%s', async (_name, twist) => {
    const sent = buildTimeStampQuery('SHA-256', randomBytes(64));
    const ok = await checkTimeStampReply(await reply('tsa', sent, 'signer', twist), sent, trustOf({ anchors: ['root'] }));
    expect(ok.info.messageImprintDer).toEqual(sent.messageImprintDer);
  });

  it.each<[string, Twist]>([
    ['fail an issuerSerial with another serial number', { essAttr: essV2((s) => issuerSerial([dirName(s.issuer)], plusOne(s.serial))) }],
  ])('%s: timestamp_reply_invalid, the token is not used', async (_name, twist) => {
    const sent = buildTimeStampQuery('SHA-256', randomBytes(64));
    const r = await reply('tsa', sent, 'signer', twist);
    await expect(checkTimeStampReply(r, sent, trustOf({ anchors: ['root'] }))).rejects.toMatchObject({ code: TsaErrorCode.TimestampReplyInvalid, status: 502 });
  });

  describe('revocation of the TSA certificate (CMS_TSA_CRL, ADR 0046 addendum)', () => {
    /** A CRL signed by `issuer` listing the certificates `revoked`, from thisUpdate (default an hour ago) to nextUpdate (default in a day). */
    const crl = async (issuer: string, revoked: string[], opts: { thisUpdate?: Date; nextUpdate?: Date } = {}) => {
      const entries = revoked.map((n) => ({ serialHex: Buffer.from(issuerAndSerial(x509(n)).serial).toString('hex'), revocationDate: new Date(Date.now() - 60_000), reason: 'keyCompromise' as const }));
      const own = cms.get(issuer) as CmsSigner;
      return (await createCrl(signer, own.key, pem.get(issuer) as string, entries, 1, opts.thisUpdate ?? new Date(Date.now() - 3_600_000), opts.nextUpdate ?? new Date(Date.now() + DAY))).crlPem;
    };
    const trustWith = (anchors: string[], crlFile: string, pins: string[] = []): TsaTrust => ({ anchors: anchors.map(x509), pins: pins.map(sha256), crls: readTsaCrls(Buffer.from(crlFile), anchors.map(x509)) });
    const check = async (tsaName: string, certificates: 'signer' | 'chain', trust: TsaTrust) => {
      const sent = buildTimeStampQuery('SHA-256', randomBytes(64));
      return checkTimeStampReply(await reply(tsaName, sent, certificates), sent, trust);
    };

    it.each<[string, string, 'signer' | 'chain', () => Promise<TsaTrust>]>([
      ['ok the TSA certificate is not on the CRL of its root', 'tsa', 'signer', async () => trustWith(['root'], await crl('root', ['code-signing']))],
      ['ok pinned and not on the CRL of its root', 'tsa', 'signer', async () => trustWith(['root'], await crl('root', []), ['tsa'])],
      ['ok the intermediate CA as the anchor, with its CRL', 'tsa-under-ca', 'chain', async () => trustWith(['ca'], await crl('ca', []))],
      ['ok of two CRLs of the root the later counts (the older one listed it)', 'tsa', 'signer', async () => trustWith(['root'], (await crl('root', [])) + (await crl('root', ['tsa'], { thisUpdate: new Date(Date.now() - 7_200_000) })))],
    ])('%s', async (_n, tsaName, certificates, trust) => {
      await expect(check(tsaName, certificates, await trust())).resolves.toMatchObject({ info: expect.anything() });
    });

    it.each<[string, string, 'signer' | 'chain', () => Promise<TsaTrust>, TsaErrorCode]>([
      ['fail the TSA certificate listed on the CRL of its root', 'tsa', 'signer', async () => trustWith(['root'], await crl('root', ['tsa'])), TsaErrorCode.TimestampTsaRevoked],
      ['fail a pinned TSA certificate listed on the CRL of the configured root', 'tsa', 'signer', async () => trustWith(['root'], await crl('root', ['tsa']), ['tsa']), TsaErrorCode.TimestampTsaRevoked],
      ['fail the TSA certificate listed on the CRL of its intermediate (the anchor)', 'tsa-under-ca', 'chain', async () => trustWith(['ca'], await crl('ca', ['tsa-under-ca'])), TsaErrorCode.TimestampTsaRevoked],
      ['fail of two CRLs of the root the later one lists it', 'tsa', 'signer', async () => trustWith(['root'], (await crl('root', [], { thisUpdate: new Date(Date.now() - 7_200_000) })) + (await crl('root', ['tsa']))), TsaErrorCode.TimestampTsaRevoked],
      ['fail a listed TSA certificate on a stale CRL: revoked first', 'tsa', 'signer', async () => trustWith(['root'], await crl('root', ['tsa'], { thisUpdate: new Date(Date.now() - 2 * DAY), nextUpdate: new Date(Date.now() - 60_000) })), TsaErrorCode.TimestampTsaRevoked],
      ['fail a CRL past its nextUpdate', 'tsa', 'signer', async () => trustWith(['root'], await crl('root', [], { thisUpdate: new Date(Date.now() - 2 * DAY), nextUpdate: new Date(Date.now() - 60_000) })), TsaErrorCode.TimestampTsaCrlStale],
      ['fail a TSA under an intermediate the token carries when only the root has a CRL (its status is unknown)', 'tsa-under-ca', 'chain', async () => trustWith(['root'], await crl('root', [])), TsaErrorCode.TimestampTsaUntrusted],
      ['fail a TSA under an anchor without a CRL when CRLs are configured', 'tsa-under-ca', 'chain', async () => trustWith(['root', 'ca'], await crl('root', [])), TsaErrorCode.TimestampTsaUntrusted],
    ])('%s: 502 with its code, the token is not used', async (_n, tsaName, certificates, trust, code) => {
      await expect(check(tsaName, certificates, await trust())).rejects.toMatchObject({ code, status: 502 });
    });

    it.each<[string, () => Promise<{ file: Uint8Array; anchors: string[] }>]>([
      ['fail bytes that are not a CRL', async () => ({ file: new Uint8Array(Buffer.from('not a CRL')), anchors: ['root'] })],
      ['fail a PEM file without a CRL', async () => ({ file: new Uint8Array(Buffer.from(pem.get('root') as string)), anchors: ['root'] })],
      ['fail a CRL signed by another root of the same name', async () => ({ file: new Uint8Array(Buffer.from(await crl('foreign', []))), anchors: ['root'] })],
      ['fail a CRL of a CA that is not an anchor', async () => ({ file: new Uint8Array(Buffer.from(await crl('ca', []))), anchors: ['root'] })],
      ['fail one bad CRL among good ones', async () => ({ file: new Uint8Array(Buffer.from((await crl('root', [])) + (await crl('foreign', [])))), anchors: ['root'] })],
    ])('%s: invalid_crl_input (boot fails)', async (_n, input) => {
      const { file, anchors } = await input();
      expect(() => readTsaCrls(file, anchors.map(x509))).toThrow(expect.objectContaining({ code: 'invalid_crl_input' }));
    });

    it('ok a DER CRL file; every revoked serial read as an integer', async () => {
      const der = Buffer.from((await crl('root', ['tsa', 'expired'])).replace(/-----[^-]+-----|\s/g, ''), 'base64');
      const [read] = readTsaCrls(new Uint8Array(der), [x509('root')]);
      expect(read.issuer.raw.equals(x509('root').raw)).toBe(true);
      expect([...read.revoked].sort()).toEqual([x509('tsa'), x509('expired')].map((c) => BigInt(`0x${c.serialNumber}`).toString()).sort());
    });
  });

  it.each<[string, number, Twist, number | undefined]>([
    ['fail genTime 10 minutes in the future', 10 * MIN, {}, undefined],
    ['fail genTime 10 minutes in the past', -10 * MIN, {}, undefined],
    ['fail genTime 2 minutes away with CMS_TSA_MAX_SKEW_MS at 1 minute', 2 * MIN, {}, MIN],
    ['fail genTime 10 minutes away although the TSA declares 10 minutes of accuracy (it counts up to the skew)', 10 * MIN + 1000, { accuracyMs: 10 * MIN }, undefined],
  ])('%s: timestamp_clock_skew, the token is not used', async (_name, offset, twist, maxSkewMs) => {
    const sent = buildTimeStampQuery('SHA-256', randomBytes(64));
    const r = await reply('tsa', sent, 'signer', { ...twist, genTime: new Date(Date.now() + offset) });
    await expect(checkTimeStampReply(r, sent, trustOf({ anchors: ['root'] }), { maxSkewMs })).rejects.toMatchObject({ code: TsaErrorCode.TimestampClockSkew, status: 502 });
  });

  it.each<[string, number, Twist, number | undefined]>([
    ['ok genTime 4 minutes in the future', 4 * MIN, {}, undefined],
    ['ok genTime 4 minutes in the past', -4 * MIN, {}, undefined],
    ['ok genTime 5 minutes 30 seconds away with a declared accuracy of one minute', 5.5 * MIN, { accuracyMs: MIN }, undefined],
    ['ok genTime 50 seconds away with CMS_TSA_MAX_SKEW_MS at 1 minute', -50_000, {}, MIN],
  ])('%s', async (_name, offset, twist, maxSkewMs) => {
    const sent = buildTimeStampQuery('SHA-256', randomBytes(64));
    const r = await reply('tsa', sent, 'signer', { ...twist, genTime: new Date(Date.now() + offset) });
    const ok = await checkTimeStampReply(r, sent, trustOf({ anchors: ['root'] }), { maxSkewMs });
    expect(ok.info.accuracyMs).toBe(twist.accuracyMs ?? 1000);
  });
});

describe(checkGenTime.name, () => {
  it('ok exactly when genTime is within the skew plus the declared accuracy (counted up to the skew)', () => {
    const now = new Date('2026-12-07T12:00:00Z');
    fc.assert(
      fc.property(fc.integer({ min: -7_200_000, max: 7_200_000 }), fc.option(fc.integer({ min: 0, max: 7_200_000 }), { nil: undefined }), fc.integer({ min: 1000, max: 3_600_000 }), (offset, accuracyMs, maxSkewMs) => {
        const tolerance = maxSkewMs + Math.min(accuracyMs ?? 0, maxSkewMs);
        const run = () => checkGenTime(new Date(now.getTime() + offset), accuracyMs, now, maxSkewMs);
        if (Math.abs(offset) <= tolerance) expect(run).not.toThrow();
        else expect(run).toThrow(expect.objectContaining({ code: TsaErrorCode.TimestampClockSkew }));
      }),
    );
  });
});
