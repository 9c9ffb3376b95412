import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import fc from 'fast-check';
import { directoryName, essAttribute, issuerAndSerialOf, issuerSerial, type OpensslPki, testTsas, type TokenSpec, timestampToken, uriName } from '../testing';
import { checkTsaCertificateProfile, oidText, readTimeStampToken, type TokenExpectations, verifyTimeStampToken } from './timestamp-token';
import { TimestampTokenError, TimestampTokenErrorCode as Code } from './timestamp-token-error';

// The one verifier of RFC 3161 tokens (the API's external TSA replies, ksctl's signature timestamps), tested on
// tokens of TSAs that are not the Keyserver: good ones (openssl ts -verify agrees) and each kind of bad one.

let dir: string;
let pki: OpensslPki;
const f = (name: string) => join(dir, name);
const opensslVerifies = (token: Uint8Array, data: Uint8Array): boolean => {
  writeFileSync(f('t.der'), token);
  writeFileSync(f('data.bin'), data);
  try {
    return execFileSync('openssl', ['ts', '-verify', '-token_in', '-in', 't.der', '-data', 'data.bin', '-CAfile', 'root.pem'], { cwd: dir, stdio: 'pipe' }).toString().includes('Verification: OK');
  } catch {
    return false;
  }
};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'timestamp-token-'));
  pki = testTsas(dir);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const signature = new Uint8Array(Buffer.from('the signature value of a SignerInfo'));
const by = (name: string) => ({ cert: pki.pem(name), key: pki.key(name) });
/** A token over `signature` by the TSA `name`, changed by `more`. */
const tokenOf = (name: string, more: Partial<TokenSpec> = {}) => timestampToken({ signer: by(name), over: signature, ...more });
const codeOf = (run: () => unknown): Code | undefined => {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(TimestampTokenError);
    return (e as TimestampTokenError).code;
  }
  return undefined;
};

/** The same Name with its CN's string type switched (UTF8String <-> PrintableString): equal as text, not as DER. */
const reencoded = (name: Uint8Array) => {
  const b = Buffer.from(name);
  const at = b.indexOf(Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03])) + 5;
  b[at] = b[at] === 0x0c ? 0x13 : 0x0c;
  return new Uint8Array(b);
};
const integer = (n: bigint) => new Uint8Array(asn1js.Integer.fromBigInt(n).toBER(false));
const serialOf = (c: X509Certificate) => BigInt(`0x${c.serialNumber}`);
/** The signer's issuerSerial as `twist` changes it. */
const issuerSerialOf = (twist: 'own' | 'other-serial' | 'other-issuer' | 'reencoded-issuer' | 'two-names' | 'uri-name' | 'no-serial') => {
  const own = issuerAndSerialOf(pki.pem('tsa'));
  const uri = uriName('https://tsa.example/');
  switch (twist) {
    case 'own':
      return issuerSerial([directoryName(own.issuer)], own.serial);
    case 'other-serial':
      return issuerSerial([directoryName(own.issuer)], integer(serialOf(pki.pem('tsa')) + 1n));
    case 'other-issuer':
      return issuerSerial([directoryName(issuerAndSerialOf(pki.pem('foreign-tsa')).issuer)], own.serial);
    case 'reencoded-issuer':
      return issuerSerial([directoryName(reencoded(own.issuer))], own.serial);
    case 'two-names':
      return issuerSerial([directoryName(own.issuer), uri], own.serial);
    case 'uri-name':
      return issuerSerial([uri], own.serial);
    case 'no-serial':
      return issuerSerial([directoryName(own.issuer)], new Uint8Array());
  }
};

describe(verifyTimeStampToken.name, () => {
  it('ok a token of another TSA (openssl ts -verify agrees): what it states, its signer and the certificates it carries', () => {
    const genTime = new Date('2026-12-07T12:00:00Z');
    const token = tokenOf('tsa', { genTime, nonce: 77 });
    expect(opensslVerifies(token, signature)).toBe(true);
    const v = verifyTimeStampToken(token, { imprintOver: signature });
    expect(v.info).toMatchObject({ serialHex: '1092', policy: '1.2.3.4', accuracyMs: 1000, genTime, nonceDer: integer(77n) });
    expect(v.signer.subject).toBe('CN=tsa');
    expect(v.carried.map((c) => c.subject)).toEqual(['CN=tsa']);
  });

  it('ok the signer found among the given certificates when the token carries none; signer_not_found without them', () => {
    const token = tokenOf('tsa', { certificates: [] });
    expect(codeOf(() => verifyTimeStampToken(token))).toBe(Code.SignerNotFound);
    expect(codeOf(() => verifyTimeStampToken(token, { pool: [pki.pem('tsa2')] }))).toBe(Code.SignerNotFound);
    expect(verifyTimeStampToken(token, { pool: [pki.pem('tsa2'), pki.pem('tsa')] }).signer.subject).toBe('CN=tsa');
  });

  it.each<[string, () => TokenSpec, (token: Uint8Array) => TokenExpectations]>([
    ['ok the MessageImprint of the query byte for byte and its nonce', () => ({ signer: by('tsa'), over: signature, nonce: 5 }), (t) => ({ imprintDer: readTimeStampToken(t).messageImprintDer, nonceDer: integer(5n) })],
    ['ok ESSCertID (v1, SHA-1)', () => ({ signer: by('tsa'), over: signature, ess: [essAttribute(pki.pem('tsa'), { v1: true })] }), () => ({ imprintOver: signature })],
    ['ok ESSCertIDv2 with its hash named (SHA-384)', () => ({ signer: by('tsa'), over: signature, ess: [essAttribute(pki.pem('tsa'), { hashOid: '2.16.840.1.101.3.4.2.2', hash: 'sha384' })] }), () => ({})],
    ['ok ESSCertIDv2 and ESSCertID both naming the signer', () => ({ signer: by('tsa'), over: signature, ess: [essAttribute(pki.pem('tsa')), essAttribute(pki.pem('tsa'), { v1: true })] }), () => ({})],
    ['ok ESSCertIDv2 with the issuerSerial of the signer', () => ({ signer: by('tsa'), over: signature, ess: [essAttribute(pki.pem('tsa'), { issuerSerial: issuerSerialOf('own') })] }), () => ({})],
    ['ok ESSCertID (v1) with the issuerSerial of the signer', () => ({ signer: by('tsa'), over: signature, ess: [essAttribute(pki.pem('tsa'), { v1: true, issuerSerial: issuerSerialOf('own') })] }), () => ({})],
  ])('%s', (_n, spec, want) => {
    const token = timestampToken(spec());
    expect(verifyTimeStampToken(token, want(token)).signer.subject).toBe('CN=tsa');
  });

  it.each<[string, () => Uint8Array, TokenExpectations, Code]>([
    ['fail bytes that are not a CMS', () => new Uint8Array(Buffer.from('not a token')), {}, Code.Malformed],
    ['fail a TSTInfo of version 2', () => tokenOf('tsa', { version: 2 }), {}, Code.Malformed],
    ['fail a token over another signature', () => tokenOf('tsa', { over: new Uint8Array(Buffer.from('another signature')) }), { imprintOver: signature }, Code.ImprintMismatch],
    ['fail a token for another query', () => tokenOf('tsa'), { imprintDer: new Uint8Array([0x30, 0x00]) }, Code.ImprintMismatch],
    ['fail a token without the nonce sent', () => tokenOf('tsa'), { nonceDer: integer(5n) }, Code.NonceMismatch],
    ['fail a token echoing another nonce', () => tokenOf('tsa', { nonce: 6 }), { nonceDer: integer(5n) }, Code.NonceMismatch],
    [
      'fail a TSTInfo changed after signing',
      () => {
        const t = Buffer.from(tokenOf('tsa'));
        t[t.indexOf(Buffer.from([0x02, 0x02, 0x10, 0x92])) + 3] ^= 1; // serialNumber 4242
        return new Uint8Array(t);
      },
      {},
      Code.SignatureInvalid,
    ],
    ['fail a signature by another key than the certificate named', () => timestampToken({ signer: { cert: pki.pem('tsa'), key: pki.key('tsa2') }, over: signature }), {}, Code.SignatureInvalid],
    ['fail no ESS signing-certificate attribute', () => tokenOf('tsa', { ess: [] }), {}, Code.SigningCertificateMismatch],
    ['fail an ESSCertIDv2 naming another TSA certificate', () => tokenOf('tsa', { ess: [essAttribute(pki.pem('tsa2'))] }), {}, Code.SigningCertificateMismatch],
    ['fail an ESSCertID (v1) naming another TSA certificate', () => tokenOf('tsa', { ess: [essAttribute(pki.pem('tsa2'), { v1: true })] }), {}, Code.SigningCertificateMismatch],
    ['fail an ESSCertIDv2 naming the signer beside an ESSCertID naming another (every one must name it)', () => tokenOf('tsa', { ess: [essAttribute(pki.pem('tsa')), essAttribute(pki.pem('tsa2'), { v1: true })] }), {}, Code.SigningCertificateMismatch],
    ['fail an ESSCertIDv2 hashed with SHA-1', () => tokenOf('tsa', { ess: [essAttribute(pki.pem('tsa'), { hashOid: '1.3.14.3.2.26', hash: 'sha1' })] }), {}, Code.UnsupportedAlgorithm],
    ['fail an ESS attribute that is no SigningCertificate', () => tokenOf('tsa', { ess: [{ type: '1.2.840.113549.1.9.16.2.47', value: new Uint8Array([0x04, 0x01, 0x00]) }] }), {}, Code.Malformed],
    ['fail a timeStamping usage that is not critical', () => tokenOf('tsa-noncritical'), {}, Code.NotTimestamping],
    ['fail a TSA certificate with codeSigning too', () => tokenOf('tsa-and-code'), {}, Code.NotTimestamping],
    ['fail a code-signing certificate as TSA', () => tokenOf('fw'), {}, Code.NotTimestamping],
  ])('%s', (_n, token, want, code) => {
    expect(codeOf(() => verifyTimeStampToken(token(), want))).toBe(code);
  });

  it.each<[string, string, string | undefined]>([
    ['ok whole seconds', '20260101120000Z', '2026-01-01T12:00:00.000Z'],
    ['ok a fraction', '20260101120000.5Z', '2026-01-01T12:00:00.500Z'],
    ['ok milliseconds', '20260101120000.123Z', '2026-01-01T12:00:00.123Z'],
    ['fail no Z (a local time: read in the reader\'s time zone)', '20260101120000', undefined],
    ['fail an offset instead of Z', '20260101120000+0100', undefined],
    ['fail no seconds', '202601011200Z', undefined],
    ['fail a comma before the fraction', '20260101120000,5Z', undefined],
    ['fail a fraction with a trailing zero', '20260101120000.50Z', undefined],
    ['fail an empty fraction', '20260101120000.Z', undefined],
    ['fail a month 13', '20261301120000Z', undefined],
    ['fail a second 60', '20260101235960Z', undefined],
  ])('%s in genTime (RFC 3161 2.4.2: YYYYMMDDhhmmss[.s…]Z, DER)', (_n, text, iso) => {
    const token = tokenOf('tsa', { genTimeText: text });
    if (iso === undefined) {
      expect(codeOf(() => readTimeStampToken(token))).toBe(Code.Malformed);
      expect(codeOf(() => verifyTimeStampToken(token))).toBe(Code.Malformed);
    } else {
      expect(readTimeStampToken(token).genTime.toISOString()).toBe(iso);
      expect(verifyTimeStampToken(token).info.genTime.toISOString()).toBe(iso);
    }
  });

  it.each<[string, Parameters<typeof issuerSerialOf>[0], boolean]>([
    ['fail an issuerSerial with another serial number (openssl ts -verify refuses it too)', 'other-serial', true],
    ['fail an issuerSerial naming another issuer (openssl ts -verify refuses it too)', 'other-issuer', true],
    ['fail an issuerSerial whose issuer is the same name encoded differently (DER compared)', 'reencoded-issuer', false],
    ['fail an issuerSerial with a second GeneralName (openssl ts -verify refuses it too)', 'two-names', true],
    ['fail an issuerSerial whose issuer is not a directoryName (openssl ts -verify refuses it too)', 'uri-name', true],
    ['fail an issuerSerial without a serial number', 'no-serial', false],
  ])('%s', (_n, twist, opensslRefuses) => {
    for (const v1 of [false, true]) {
      const token = tokenOf('tsa', { ess: [essAttribute(pki.pem('tsa'), { v1, issuerSerial: issuerSerialOf(twist) })] });
      if (opensslRefuses && !v1) expect(opensslVerifies(token, signature)).toBe(false);
      expect(codeOf(() => verifyTimeStampToken(token))).toBe(Code.SigningCertificateMismatch);
    }
  });

  it('ok an issuerSerial naming the signer (openssl ts -verify agrees)', () => {
    expect(opensslVerifies(tokenOf('tsa', { ess: [essAttribute(pki.pem('tsa'), { issuerSerial: issuerSerialOf('own') })] }), signature)).toBe(true);
  });

  it("ok exactly when the issuerSerial states the signer's serial as an integer, whatever serial a TSA writes (property)", () => {
    const own = serialOf(pki.pem('tsa'));
    const issuer = issuerAndSerialOf(pki.pem('tsa')).issuer;
    fc.assert(
      fc.property(fc.oneof(fc.bigInt({ min: -(1n << 159n), max: 1n << 159n }), fc.constant(own), fc.constant(own + 1n), fc.constant(-own)), (serial) => {
        const token = tokenOf('tsa', { ess: [essAttribute(pki.pem('tsa'), { issuerSerial: issuerSerial([directoryName(issuer)], integer(serial)) })] });
        expect(codeOf(() => verifyTimeStampToken(token))).toBe(serial === own ? undefined : Code.SigningCertificateMismatch);
      }),
      { numRuns: 25 },
    );
  });
});

describe(readTimeStampToken.name, () => {
  it('ok what a token states, without checking its signature', () => {
    const genTime = new Date('2030-01-02T03:04:05Z');
    const token = timestampToken({ signer: { cert: pki.pem('tsa'), key: pki.key('tsa2') }, over: signature, genTime });
    expect(readTimeStampToken(token)).toMatchObject({ genTime, serialHex: '1092', policy: '1.2.3.4', accuracyMs: 1000 });
    expect(readTimeStampToken(token)).not.toHaveProperty('nonceDer');
  });

  it('ok a policy with arcs beyond 2^53 (an X.667 UUID OID) reads as its dotted decimal form (asn1js writes {hex})', () => {
    for (const policy of ['2.25.71464660586911067804008473257468327654', '2.25.340282366920938463463374607431768211455', '1.3.6.1.4.1.9007199254740993.1']) {
      const token = timestampToken({ signer: { cert: pki.pem('tsa'), key: pki.key('tsa') }, over: signature, policy });
      expect(readTimeStampToken(token).policy).toBe(policy);
    }
  });

  it('fail bytes that are not a token: token_malformed', () => {
    expect(codeOf(() => readTimeStampToken(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])))).toBe(Code.Malformed);
  });
});

describe(oidText.name, () => {
  // The one OID decoder (libs/pki's DER reader calls it): openssl's encoder is the reference, arcs of any size.
  const opensslContents = (dotted: string): Uint8Array => {
    execFileSync('openssl', ['asn1parse', '-genstr', `OID:${dotted}`, '-noout', '-out', f('oid.der')], { stdio: 'pipe' });
    const der = readFileSync(f('oid.der'));
    return new Uint8Array(der.subarray(der[1] & 0x80 ? 2 + (der[1] & 0x7f) : 2));
  };
  const arc = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 20n }), fc.bigInt({ min: 2n ** 44n, max: 2n ** 54n }), fc.bigInt({ min: 0n, max: 2n ** 128n - 1n }));
  const oid = fc.oneof(
    fc.tuple(fc.constantFrom(0n, 1n), fc.bigInt({ min: 0n, max: 39n }), fc.array(arc, { maxLength: 6 })),
    fc.tuple(fc.constant(2n), arc, fc.array(arc, { maxLength: 6 })),
  );

  it.each([
    ['ok a short OID', '1.2.840.10045.4.3.2'],
    ['ok an X.667 UUID arc', '2.25.340282366920938463463374607431768211455'],
    ['ok the audit checkpoint policy', '2.25.71213305904928989567330069075920600616'],
    ['ok an arc just past 2^53', '1.3.6.1.4.1.9007199254740993.1'],
    ['ok an arc at the 2^45 switch', '1.3.35184372088832.35184372088831.35184372088833'],
    ['ok a huge second arc under 2', '2.999999999999999999999.3'],
  ])('%s', (_, dotted) => {
    expect(oidText(opensslContents(dotted))).toBe(dotted);
  });

  it('ok reads back what openssl encodes, for any arcs', () => {
    fc.assert(
      fc.property(oid, ([a, b, rest]) => {
        const dotted = [a, b, ...rest].join('.');
        expect(oidText(opensslContents(dotted))).toBe(dotted);
      }),
      { numRuns: 60 },
    );
  });

  it('ok agrees with asn1js on every OID asn1js can write exactly', () => {
    fc.assert(
      fc.property(oid, ([a, b, rest]) => {
        const small = [a, b, ...rest].map((x) => x % 2n ** 40n).join('.');
        const node = new asn1js.ObjectIdentifier({ value: small });
        expect(oidText(new Uint8Array(node.valueBlock.toBER(false)))).toBe(node.valueBlock.toString());
      }),
    );
  });
});

describe(checkTsaCertificateProfile.name, () => {
  it.each([
    ['ok extendedKeyUsage timeStamping only, critical', 'tsa', undefined],
    ['fail timeStamping not critical', 'tsa-noncritical', Code.NotTimestamping],
    ['fail timeStamping and codeSigning', 'tsa-and-code', Code.NotTimestamping],
    ['fail a CA certificate without extendedKeyUsage', 'root', Code.NotTimestamping],
  ])('%s', (_n, name, code) => {
    expect(codeOf(() => checkTsaCertificateProfile(pki.pem(name)))).toBe(code);
  });
});
