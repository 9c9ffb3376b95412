import { checkPrimeSync, createPublicKey, generatePrimeSync, verify as nodeVerify, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import {
  algorithmDer,
  buildCsr,
  certificationRequestInfo,
  generateTestKey,
  nameDer,
  rsaKeyFromPrimes,
  signerFor,
  SIGNATURE_ALGORITHMS,
  type TestKeyType,
} from '../testing/csr-builder';
import { createTestCa, tryIssue, type TestCa } from '../testing/test-ca';
import { OID, derTlv, rsaSpki } from './der';
import { ed25519AddPoints, ed25519PointChecks, isFermatFactorable } from './public-key';

const SUBJECT = nameDer([[OID.commonName, 'device-1']]);
const hex = (h: string) => new Uint8Array(Buffer.from(h, 'hex'));
const le = (n: bigint) => {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
};
const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const ed25519Spki = (point: Uint8Array) => derTlv(0x30, algorithmDer(OID.ed25519), derTlv(0x03, new Uint8Array([0]), point));
const ecSpkiOf = (curveOid: string, point: Uint8Array) => derTlv(0x30, algorithmDer(OID.ecPublicKey, new Uint8Array(new asn1js.ObjectIdentifier({ value: curveOid }).toBER(false))), derTlv(0x03, new Uint8Array([0]), point));
const rsaSpkiRaw = (rsaPublicKey: Uint8Array, params: Uint8Array | null = new Uint8Array([5, 0])) =>
  derTlv(0x30, algorithmDer(OID.rsaEncryption, params ?? undefined), derTlv(0x03, new Uint8Array([0]), rsaPublicKey));
const intDer = (bytes: Uint8Array) => derTlv(0x02, bytes);

/** The small-order points of edwards25519 (libsodium's blocklist), canonical and non-canonical encodings. */
const SMALL_ORDER = {
  'identity (order 1)': '0100000000000000000000000000000000000000000000000000000000000000',
  'y=0 (order 4)': '0000000000000000000000000000000000000000000000000000000000000000',
  'y=0, x negative (order 4)': '0000000000000000000000000000000000000000000000000000000000000080',
  'order 8, first y': '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  'order 8, second y': 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'y=p-1 (order 2)': 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'y=p, non-canonical zero (order 4)': 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'y=p+1, non-canonical identity': 'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
};
const IDENTITY = hex(SMALL_ORDER['identity (order 1)']);
const FORGED = new Uint8Array([...IDENTITY, ...new Uint8Array(32)]);

describe('device certificate keys (canonical, strict, not weak)', () => {
  let t: TestCa;
  beforeAll(async () => {
    t = await createTestCa();
  });

  describe('Ed25519', () => {
    it('fail an identity-point key with the forged signature R=identity, S=0 (it verified for every message)', async () => {
      const csr = buildCsr({ subject: SUBJECT, spki: ed25519Spki(IDENTITY), signatureAlgorithm: SIGNATURE_ALGORITHMS.ed25519, sign: () => FORGED });
      // Whether the crypto library underneath accepts the forgery depends on its version (Node 20's OpenSSL did,
      // Node 24's does not): the refusal must be ours either way.
      expect(await tryIssue(t, csr)).toEqual({ code: 'csr_public_key_invalid' });
    });

    it.each(Object.entries(SMALL_ORDER))('fail small-order key %s, even with a signature OpenSSL accepts under it', async (_name, point) => {
      // Look for a subject where R=identity, S=0 verifies under this key ([k]A = O), so PoP alone would pass.
      const spki = ed25519Spki(hex(point));
      let csr = buildCsr({ subject: SUBJECT, spki, signatureAlgorithm: SIGNATURE_ALGORITHMS.ed25519, sign: () => FORGED });
      for (let i = 0; i < 64; i++) {
        const subject = nameDer([[OID.commonName, `device-${i}`]]);
        let ok = false;
        try {
          ok = nodeVerify(null, certificationRequestInfo({ subject, spki }), createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }), FORGED);
        } catch {
          break;
        }
        if (ok) {
          csr = buildCsr({ subject, spki, signatureAlgorithm: SIGNATURE_ALGORITHMS.ed25519, sign: () => FORGED });
          break;
        }
      }
      expect(await tryIssue(t, csr)).toEqual({ code: 'csr_public_key_invalid' });
    });

    it('fail a non-canonical key encoding (y >= p) of an otherwise valid point', async () => {
      // y = 1 + p encodes the identity non-canonically; y = 2 + p is off the curve; both must be refused before any math.
      expect(ed25519PointChecks(le(P + 1n))).toBe('non_canonical');
      const good = generateTestKey('Ed25519');
      const y = BigInt(`0x${Buffer.from(good.spki.subarray(12)).reverse().toString('hex')}`) & ((1n << 255n) - 1n);
      if (y + P < 1n << 255n) expect(ed25519PointChecks(le(y + P))).toBe('non_canonical');
    });

    it('fail a signature with S >= L (malleated: S + L verifies in lax implementations)', async () => {
      const k = generateTestKey('Ed25519');
      const csr = buildCsr({
        subject: SUBJECT,
        spki: k.spki,
        signatureAlgorithm: k.signatureAlgorithm,
        sign: (m) => {
          const sig = k.sign(m);
          const s = BigInt(`0x${Buffer.from(sig.subarray(32)).reverse().toString('hex')}`) + L;
          return new Uint8Array([...sig.subarray(0, 32), ...le(s)]);
        },
      });
      expect(await tryIssue(t, csr)).toEqual({ code: 'csr_signature_invalid' });
    });

    it('fail a signature whose R is a small-order point', async () => {
      const k = generateTestKey('Ed25519');
      const csr = buildCsr({ subject: SUBJECT, spki: k.spki, signatureAlgorithm: k.signatureAlgorithm, sign: () => FORGED });
      expect(await tryIssue(t, csr)).toEqual({ code: 'csr_signature_invalid' });
    });

    it.each(['order 8, first y', 'order 8, second y', 'y=p-1 (order 2)', 'y=0 (order 4)'] as const)(
      'fail a key with a torsion component (A + the %s point): not small-order, but not in the prime-order subgroup',
      async (torsion) => {
        const k = generateTestKey('Ed25519');
        const a = k.spki.subarray(12);
        expect(ed25519PointChecks(a)).toBeUndefined();
        expect(Buffer.from(ed25519AddPoints(a, IDENTITY)).equals(Buffer.from(a))).toBe(true);
        const mixed = ed25519AddPoints(a, hex(SMALL_ORDER[torsion]));
        expect(ed25519PointChecks(mixed)).toBe('mixed_order');
        // Node loads it as a valid key: the refusal is ours.
        expect(createPublicKey({ key: Buffer.from(ed25519Spki(mixed)), format: 'der', type: 'spki' }).asymmetricKeyType).toBe('ed25519');
        expect(await tryIssue(t, buildCsr({ subject: SUBJECT, spki: ed25519Spki(mixed), signatureAlgorithm: k.signatureAlgorithm, sign: k.sign }))).toEqual({ code: 'csr_public_key_invalid' });
      },
    );

    it('ok an honest Ed25519 key: the certificate carries the same 32 bytes', async () => {
      const k = generateTestKey('Ed25519');
      const out = await tryIssue(t, buildCsr({ subject: SUBJECT, spki: k.spki, ...signerFor('Ed25519', k.privateKey) }));
      expect('certificatePem' in out && Buffer.from(new X509Certificate(out.certificatePem).publicKey.export({ type: 'spki', format: 'der' })).equals(Buffer.from(k.spki))).toBe(true);
    });
  });

  describe('RSA', () => {
    const k = generateTestKey('RSA-2048');
    const jwk = k.privateKey.export({ format: 'jwk' });
    const n = Buffer.from(jwk.n as string, 'base64url');
    const e = Buffer.from(jwk.e as string, 'base64url');
    const withSpki = (spki: Uint8Array) => buildCsr({ subject: SUBJECT, spki, signatureAlgorithm: k.signatureAlgorithm, sign: k.sign });

    it.each([
      ['fail a negative modulus (no leading zero byte)', () => rsaSpkiRaw(derTlv(0x30, intDer(new Uint8Array(n)), intDer(new Uint8Array(e))))],
      ['fail a modulus padded with extra zero bytes', () => rsaSpkiRaw(derTlv(0x30, intDer(new Uint8Array([0, 0, ...n])), intDer(new Uint8Array(e))))],
      ['fail extra bytes after the RSAPublicKey', () => rsaSpkiRaw(new Uint8Array([...derTlv(0x30, intDer(new Uint8Array([0, ...n])), intDer(new Uint8Array(e))), 0, 0]))],
      ['fail extra INTEGER inside the RSAPublicKey', () => rsaSpkiRaw(derTlv(0x30, intDer(new Uint8Array([0, ...n])), intDer(new Uint8Array(e)), intDer(new Uint8Array([1]))))],
      ['fail rsaEncryption without NULL parameters', () => rsaSpkiRaw(derTlv(0x30, intDer(new Uint8Array([0, ...n])), intDer(new Uint8Array(e))), null)],
      ['fail BIT STRING with unused bits', () => derTlv(0x30, algorithmDer(OID.rsaEncryption, new Uint8Array([5, 0])), derTlv(0x03, new Uint8Array([1]), derTlv(0x30, intDer(new Uint8Array([0, ...n])), intDer(new Uint8Array(e)))))],
    ])('%s', async (_n, spki) => {
      expect(await tryIssue(t, withSpki(spki()))).toEqual({ code: 'csr_public_key_invalid' });
    });

    it('ok the canonical encoding, copied as our own re-encoding', async () => {
      expect(Buffer.from(rsaSpki(new Uint8Array(n), new Uint8Array(e))).equals(Buffer.from(k.spki))).toBe(true);
      const out = await tryIssue(t, withSpki(k.spki));
      expect(out).toHaveProperty('certificatePem');
    });

    const primes = (bits: number) => [generatePrimeSync(bits, { bigint: true }), generatePrimeSync(bits, { bigint: true })] as const;
    it.each([
      ['fail e = 3', 3n, 'csr_weak_key'],
      ['fail e = 17', 17n, 'csr_weak_key'],
      ['fail e >= 2^256', 2n ** 256n + 1n, 'csr_weak_key'],
      ['ok e = 65537', 65537n, undefined],
    ])('%s', async (_n, exp, code) => {
      let p: bigint, q: bigint;
      do [p, q] = primes(1024);
      while ((p - 1n) % exp === 0n || (q - 1n) % exp === 0n || exp % (p - 1n) === 0n);
      const priv = rsaKeyFromPrimes(p, q, exp);
      const spki = new Uint8Array(createPublicKey(priv).export({ type: 'spki', format: 'der' }));
      const out = await tryIssue(t, buildCsr({ subject: SUBJECT, spki, ...signerFor('RSA-2048', priv) }));
      expect(code ? out : 'certificatePem' in out).toEqual(code ? { code } : true);
    });

    it('fail a Fermat-factorable modulus (primes too close together)', async () => {
      const p = generatePrimeSync(1024, { bigint: true });
      let q = p + 2n;
      while (!checkPrimeSync(q)) q += 2n;
      expect(isFermatFactorable(p * q, 100)).toBe(true);
      const priv = rsaKeyFromPrimes(p, q);
      const spki = new Uint8Array(createPublicKey(priv).export({ type: 'spki', format: 'der' }));
      expect(await tryIssue(t, buildCsr({ subject: SUBJECT, spki, ...signerFor('RSA-2048', priv) }))).toEqual({ code: 'csr_weak_key' });
    });

    it('fail a 1024-bit modulus (below the policy)', async () => {
      const [p, q] = primes(512);
      const priv = rsaKeyFromPrimes(p, q);
      const spki = new Uint8Array(createPublicKey(priv).export({ type: 'spki', format: 'der' }));
      expect(await tryIssue(t, buildCsr({ subject: SUBJECT, spki, ...signerFor('RSA-2048', priv) }))).toEqual({ code: 'csr_key_not_allowed' });
    });

    it('fail a huge modulus before any arithmetic (refused by size, not by its bogus signature)', async () => {
      const huge = new Uint8Array(2000).fill(0xab);
      huge[0] = 0x01;
      const csr = buildCsr({ subject: SUBJECT, spki: rsaSpkiRaw(derTlv(0x30, intDer(huge), intDer(new Uint8Array([1, 0, 1])))), signatureAlgorithm: k.signatureAlgorithm, sign: () => new Uint8Array(2000) });
      expect(await tryIssue(t, csr)).toEqual({ code: 'csr_key_not_allowed' });
    });

    it('ok random 2048-bit moduli are not Fermat-factorable', () => {
      for (let i = 0; i < 3; i++) {
        const [p, q] = primes(1024);
        expect(isFermatFactorable(p * q, 100)).toBe(false);
      }
    });
  });

  describe('EC', () => {
    const cases: [TestKeyType, string, number][] = [
      ['EC-P256', OID.p256, 32],
      ['EC-P384', OID.p384, 48],
      ['EC-P521', OID.p521, 66],
    ];
    it.each(cases)('fail %s hybrid point encodings (06/07, RFC 5480 2.2 MUST reject)', async (type, curve, size) => {
      const k = generateTestKey(type);
      const point = k.spki.subarray(k.spki.length - (1 + 2 * size));
      const yOdd = point[2 * size] & 1;
      const hybrid = new Uint8Array([6 + yOdd, ...point.subarray(1)]);
      expect(await tryIssue(t, buildCsr({ subject: SUBJECT, spki: ecSpkiOf(curve, hybrid), signatureAlgorithm: k.signatureAlgorithm, sign: k.sign }))).toEqual({ code: 'csr_public_key_invalid' });
    });

    it.each(cases)('ok %s compressed point: expanded, the certificate carries the uncompressed point', async (type, curve, size) => {
      const k = generateTestKey(type);
      const point = k.spki.subarray(k.spki.length - (1 + 2 * size));
      const compressed = new Uint8Array([2 + (point[2 * size] & 1), ...point.subarray(1, 1 + size)]);
      const out = await tryIssue(t, buildCsr({ subject: SUBJECT, spki: ecSpkiOf(curve, compressed), signatureAlgorithm: k.signatureAlgorithm, sign: k.sign }));
      expect('certificatePem' in out && Buffer.from(new X509Certificate(out.certificatePem).publicKey.export({ type: 'spki', format: 'der' })).equals(Buffer.from(k.spki))).toBe(true);
    });

    it('fail a point on the curve written with x + p (fits 32 bytes for a small x): not the canonical encoding', async () => {
      // P-256: p = 3 (mod 4), so a square root is a^((p+1)/4). The smallest x with a point gives (x + p, y).
      const p = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;
      const b = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
      const pow = (a: bigint, e: bigint): bigint => {
        let r = 1n;
        for (a %= p; e > 0n; e >>= 1n, a = (a * a) % p) if (e & 1n) r = (r * a) % p;
        return r;
      };
      let x = 1n;
      let y = 0n;
      for (; ; x++) {
        const rhs = (((x * x * x - 3n * x + b) % p) + p) % p;
        y = pow(rhs, (p + 1n) / 4n);
        if ((y * y) % p === rhs) break;
      }
      const bytes = (v: bigint) => Uint8Array.from(Buffer.from(v.toString(16).padStart(64, '0'), 'hex'));
      const k = generateTestKey('EC-P256');
      const csrWith = (px: bigint) => buildCsr({ subject: SUBJECT, spki: ecSpkiOf(OID.p256, new Uint8Array([4, ...bytes(px), ...bytes(y)])), signatureAlgorithm: k.signatureAlgorithm, sign: k.sign });
      // (x, y) itself is a key (refused later: the CSR was signed by another key), (x + p, y) is not.
      expect(await tryIssue(t, csrWith(x))).toEqual({ code: 'csr_signature_invalid' });
      expect(await tryIssue(t, csrWith(x + p))).toEqual({ code: 'csr_public_key_invalid' });
    });

    it.each([
      ['fail the point at infinity', new Uint8Array([0])],
      ['fail a point off the curve', new Uint8Array([4, ...new Uint8Array(31), 1, ...new Uint8Array(31), 1])],
      ['fail coordinates >= p', new Uint8Array([4, ...new Uint8Array(32).fill(0xff), ...new Uint8Array(32).fill(0xff)])],
      ['fail a truncated point', new Uint8Array([4, 1, 2, 3])],
      ['fail an unknown point form', new Uint8Array([5, ...new Uint8Array(64)])],
    ])('%s', async (_n, point) => {
      const k = generateTestKey('EC-P256');
      expect(await tryIssue(t, buildCsr({ subject: SUBJECT, spki: ecSpkiOf(OID.p256, point), signatureAlgorithm: k.signatureAlgorithm, sign: k.sign }))).toEqual({ code: 'csr_public_key_invalid' });
    });
  });
});
