import * as asn1js from 'asn1js';
import { ECDH, createPublicKey, type KeyObject } from 'node:crypto';
import { OID, derTlv, rsaSpki } from './der';
import { children, contentsOf, isReadableDer, oidString, readTlv } from './der-reader';
import { PkiError } from './pki-error';

export type CsrKeyType = 'RSA' | 'EC-P256' | 'EC-P384' | 'EC-P521' | 'Ed25519';

/** A subject public key parsed into its components and re-encoded by us (the only bytes a certificate carries). */
export interface CanonicalPublicKey {
  keyType: CsrKeyType;
  /** Our DER re-encoding: RSA n,e minimal positive INTEGERs with NULL parameters; EC uncompressed point, named curve; Ed25519 32 bytes. */
  spki: Uint8Array;
  key: KeyObject;
  /** RSA modulus and exponent. */
  rsa?: { n: bigint; e: bigint };
}

/** Policy for RSA keys: at least the minimum size, e odd and 65537 <= e < 2^256, no small or close factors. */
export const RSA_MIN_BITS = 2048;
export const RSA_MAX_BITS = 8192;
/** Rounds of Fermat's method (Let's Encrypt's goodkey uses 110; 100 finds |p-q| < ~2^(bits/4) for 2048-bit keys). */
export const FERMAT_ROUNDS = 100;

/** `p`: the field prime, big-endian in `size` bytes (a coordinate's canonical encoding is below it). */
interface NamedCurve { type: CsrKeyType; oid: string; size: number; node: string; jwk: string; p: Buffer }
const NAMED_CURVES: Record<string, NamedCurve> = {
  [OID.p256]: { type: 'EC-P256', oid: OID.p256, size: 32, node: 'prime256v1', jwk: 'P-256', p: Buffer.from('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff', 'hex') },
  [OID.p384]: { type: 'EC-P384', oid: OID.p384, size: 48, node: 'secp384r1', jwk: 'P-384', p: Buffer.from(`${'ff'.repeat(31)}feffffffff0000000000000000ffffffff`, 'hex') },
  [OID.p521]: { type: 'EC-P521', oid: OID.p521, size: 66, node: 'secp521r1', jwk: 'P-521', p: Buffer.from(`01${'ff'.repeat(65)}`, 'hex') },
};

const invalid = (detail: string): PkiError => new PkiError('csr_public_key_invalid', detail);

const OID_DER = new Map<string, Uint8Array>();
/** An OID's DER (a handful of constants, encoded once). */
const oidDer = (oid: string): Uint8Array => {
  let der = OID_DER.get(oid);
  if (!der) OID_DER.set(oid, (der = new Uint8Array(new asn1js.ObjectIdentifier({ value: oid }).toBER(false))));
  return der;
};
/** SPKI DER from an algorithm OID, optional parameters DER and the key bytes (BIT STRING, no unused bits). */
function spkiDer(algorithm: string, params: Uint8Array | undefined, key: Uint8Array): Uint8Array {
  return derTlv(0x30, derTlv(0x30, oidDer(algorithm), ...(params ? [params] : [])), derTlv(0x03, new Uint8Array([0]), key));
}

/**
 * Parses a SubjectPublicKeyInfo strictly into its components and re-encodes it. Refused: anything but
 * rsaEncryption (with NULL parameters), id-ecPublicKey on P-256/384/521 (named curve) and Ed25519 (no
 * parameters); BIT STRINGs with unused bits; RSA keys that are not exactly SEQUENCE { INTEGER n, INTEGER e }
 * in DER with positive values; EC points at infinity, in hybrid form (RFC 5480 2.2), off the curve or with
 * coordinates >= p; Ed25519 keys that are non-canonical, small-order or outside the prime-order subgroup.
 * Compressed EC points are expanded: the certificate always carries the uncompressed point.
 */
export function canonicalPublicKey(spki: Uint8Array): CanonicalPublicKey {
  // Read in place by the DER reader: the same acceptance as asn1js' strict parse (isReadableDer), no object tree.
  if (!isReadableDer(spki)) throw invalid('not a SubjectPublicKeyInfo');
  const top = readTlv(spki, 0);
  const parts = top.tag === 0x30 ? children(spki, top) : [];
  if (parts.length !== 2) throw invalid('not a SubjectPublicKeyInfo');
  const [alg, bits] = parts;
  if (alg.tag !== 0x30 || bits.tag !== 0x03) throw invalid('not a SubjectPublicKeyInfo');
  const bitString = contentsOf(spki, bits);
  if (bitString[0] !== 0) throw invalid('key BIT STRING has unused bits');
  const [oid, params, ...more] = children(spki, alg);
  if (oid?.tag !== 0x06 || more.length) throw invalid('bad AlgorithmIdentifier');
  const keyBytes = bitString.subarray(1);
  const algorithm = oidString(spki, oid);
  if (algorithm === OID.rsaEncryption) {
    if (params?.tag !== 0x05) throw invalid('rsaEncryption needs NULL parameters');
    return canonicalRsa(keyBytes);
  }
  if (algorithm === OID.ed25519) {
    if (params !== undefined) throw invalid('Ed25519 takes no parameters');
    return canonicalEd25519(keyBytes);
  }
  if (algorithm === OID.ecPublicKey) {
    if (params?.tag !== 0x06) throw new PkiError('csr_explicit_ec_parameters');
    const curveOid = oidString(spki, params);
    const curve = NAMED_CURVES[curveOid];
    if (!curve) throw new PkiError('csr_key_not_allowed', `curve ${curveOid}`);
    return canonicalEc(curve, keyBytes);
  }
  throw new PkiError('csr_key_not_allowed', `key algorithm ${algorithm}`);
}

const toBig = (b: Uint8Array): bigint => (b.length ? BigInt(`0x${Buffer.from(b).toString('hex')}`) : 0n);

function canonicalRsa(der: Uint8Array): CanonicalPublicKey {
  // The key sits in a BIT STRING, opaque to the CSR's DER check: it gets its own strict read (no trailing bytes).
  if (!isReadableDer(der)) throw invalid('RSAPublicKey is not SEQUENCE { n, e }');
  const seq = readTlv(der, 0);
  const items = seq.tag === 0x30 ? children(der, seq) : [];
  if (items.length !== 2) throw invalid('RSAPublicKey is not SEQUENCE { n, e }');
  const ints = items.map((v) => {
    if (v.tag !== 0x02) throw invalid('RSAPublicKey is not SEQUENCE { n, e }');
    const b = contentsOf(der, v);
    if (b[0] & 0x80) throw invalid('negative RSA integer');
    return b;
  });
  const [nBytes, eBytes] = ints;
  // Size before any arithmetic: a 64 KiB request could carry a modulus of half a million bits.
  const bits = toBig(nBytes).toString(2).length;
  if (bits > RSA_MAX_BITS) throw new PkiError('csr_key_not_allowed', `RSA-${bits}`);
  if (eBytes.length > 33) throw new PkiError('csr_weak_key', 'RSA exponent must be below 2^256');
  const spki = rsaSpki(nBytes, eBytes);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new PkiError('csr_public_key_invalid', 'RSA key does not load', { cause: e });
  }
  return { keyType: 'RSA', spki, key, rsa: { n: toBig(nBytes), e: toBig(eBytes) } };
}

function canonicalEc(curve: NamedCurve, point: Uint8Array): CanonicalPublicKey {
  const { size } = curve;
  let uncompressed: Uint8Array;
  if (point.length === 1 + 2 * size && point[0] === 0x04) uncompressed = point;
  else if (point.length === 1 + size && (point[0] === 0x02 || point[0] === 0x03)) {
    try {
      // Decompression by OpenSSL: it refuses x >= p and x without a square root on the curve.
      uncompressed = new Uint8Array(ECDH.convertKey(Buffer.from(point), curve.node, undefined, undefined, 'uncompressed') as Buffer);
    } catch (e) {
      throw new PkiError('csr_public_key_invalid', 'compressed point is not on the curve', { cause: e });
    }
  } else if (point[0] === 0x06 || point[0] === 0x07) throw invalid('hybrid point form');
  else throw invalid('bad EC point encoding');
  // Coordinates >= p are not the point's encoding (OpenSSL would read x + p as x): refused before OpenSSL sees them,
  // so the point in the certificate is the request's, already canonical.
  const coordinate = (from: number) => Buffer.from(uncompressed.buffer, uncompressed.byteOffset + from, size);
  if (Buffer.compare(coordinate(1), curve.p) >= 0 || Buffer.compare(coordinate(1 + size), curve.p) >= 0) throw invalid('EC coordinate >= p');
  let key: KeyObject;
  try {
    // OpenSSL checks the curve equation (the curves have cofactor 1).
    // Loaded from x and y as a JWK: OpenSSL 3 decodes a DER SPKI at ~1.5x the cost (110 vs 72 us here, issue 20).
    key = createPublicKey({ key: { kty: 'EC', crv: curve.jwk, x: coordinate(1).toString('base64url'), y: coordinate(1 + size).toString('base64url') }, format: 'jwk' });
  } catch (e) {
    throw new PkiError('csr_public_key_invalid', 'EC point is not on the curve', { cause: e });
  }
  return { keyType: curve.type, spki: spkiDer(OID.ecPublicKey, oidDer(curve.oid), uncompressed), key };
}

function canonicalEd25519(point: Uint8Array): CanonicalPublicKey {
  if (point.length !== 32) throw invalid('Ed25519 key is not 32 bytes');
  const problem = ed25519PointChecks(point);
  if (problem) throw invalid(`Ed25519 key: ${problem.replace('_', ' ')}`);
  const spki = spkiDer(OID.ed25519, undefined, point);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch (e) {
    throw new PkiError('csr_public_key_invalid', 'Ed25519 key does not load', { cause: e });
  }
  return { keyType: 'Ed25519', spki, key };
}

// ---- edwards25519 arithmetic (BigInt, vartime: it only ever sees public values) ----

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const mod = (a: bigint) => ((a % P) + P) % P;
function pow(b: bigint, e: bigint): bigint {
  let r = 1n;
  b = mod(b);
  for (; e > 0n; e >>= 1n, b = (b * b) % P) if (e & 1n) r = (r * b) % P;
  return r;
}
const D = mod(-121665n * pow(121666n, P - 2n));
const SQRT_M1 = pow(2n, (P - 1n) / 4n);

type Ext = [bigint, bigint, bigint, bigint];
const IDENTITY: Ext = [0n, 1n, 1n, 0n];

function add([x1, y1, z1, t1]: Ext, [x2, y2, z2, t2]: Ext): Ext {
  // RFC 8032 5.1.4 (complete formulas for a = -1).
  const a = mod((y1 - x1) * (y2 - x2));
  const b = mod((y1 + x1) * (y2 + x2));
  const c = mod(2n * D * t1 * t2);
  const d = mod(2n * z1 * z2);
  const [e, f, g, h] = [b - a, d - c, d + c, b + a];
  return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
}

function dbl([x1, y1, z1]: Ext): Ext {
  // RFC 8032 5.1.4 doubling (4 squarings, 4 multiplications).
  const a = (x1 * x1) % P;
  const b = (y1 * y1) % P;
  const c = (2n * z1 * z1) % P;
  const h = a + b;
  const e = mod(h - (x1 + y1) * (x1 + y1));
  const g = a - b;
  const f = c + g;
  return [mod(e * f), mod(g * h), mod(f * g), mod(e * h)];
}

function mul(k: bigint, p: Ext): Ext {
  let r = IDENTITY;
  for (let q = p; k > 0n; k >>= 1n, q = dbl(q)) if (k & 1n) r = add(r, q);
  return r;
}

const isIdentity = ([x, y, z]: Ext) => mod(x) === 0n && mod(y - z) === 0n;

/** Decodes a point per RFC 8032 5.1.3, refusing y >= p and the encoding of x = 0 with the sign bit set. */
function decode(b: Uint8Array): Ext | 'non_canonical' | 'not_on_curve' {
  const n = BigInt(`0x${Buffer.from(b).reverse().toString('hex')}`);
  const sign = n >> 255n;
  const y = n & ((1n << 255n) - 1n);
  if (y >= P) return 'non_canonical';
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  let x = mod(u * pow(v, 3n) * pow(u * pow(v, 7n), (P - 5n) / 8n));
  if (mod(v * x * x) !== u) {
    if (mod(v * x * x) !== mod(-u)) return 'not_on_curve';
    x = mod(x * SQRT_M1);
  }
  if (x === 0n && sign === 1n) return 'non_canonical';
  if ((x & 1n) !== sign) x = P - x;
  return [x, y, 1n, mod(x * y)];
}

function encode([x, y, z]: Ext): Uint8Array {
  const zi = pow(z, P - 2n);
  const ax = mod(x * zi);
  const ay = mod(y * zi);
  const n = ay | ((ax & 1n) << 255n);
  return new Uint8Array(Buffer.from(n.toString(16).padStart(64, '0'), 'hex').reverse());
}

/** The encoding of A + B for two valid point encodings (for tests that build mixed-order keys). */
export function ed25519AddPoints(a: Uint8Array, b: Uint8Array): Uint8Array {
  const pa = decode(a);
  const pb = decode(b);
  if (typeof pa === 'string' || typeof pb === 'string') throw new Error('not a point');
  return encode(add(pa, pb));
}

/**
 * The strict checks of an Ed25519 public key or signature R (32 bytes): canonical encoding (RFC 8032 5.1.3),
 * on the curve, not of small order ([8]A != O), and for keys in the prime-order subgroup ([L]A = O). Returns the
 * first problem, or undefined.
 */
export function ed25519PointChecks(b: Uint8Array, opts: { primeOrder?: boolean } = { primeOrder: true }): 'non_canonical' | 'not_on_curve' | 'small_order' | 'mixed_order' | undefined {
  if (b.length !== 32) return 'non_canonical';
  const p = decode(b);
  if (typeof p === 'string') return p;
  if (isIdentity(mul(8n, p))) return 'small_order';
  if (opts.primeOrder && !isIdentity(mul(L, p))) return 'mixed_order';
  return undefined;
}

/** RFC 8032 5.1.7 strictness for a signature R || S: R canonical and not of small order, S < L. */
export function ed25519SignatureProblem(sig: Uint8Array): string | undefined {
  if (sig.length !== 64) return 'Ed25519 signature is not 64 bytes';
  const s = BigInt(`0x${Buffer.from(sig.subarray(32)).reverse().toString('hex')}`);
  if (s >= L) return 'Ed25519 S is not below L';
  const r = ed25519PointChecks(sig.subarray(0, 32), { primeOrder: false });
  return r ? `Ed25519 R: ${r.replace('_', ' ')}` : undefined;
}

// ---- weak RSA ----

function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  let x = 1n << BigInt(Math.ceil(n.toString(2).length / 2));
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** Fermat's method for `rounds` steps from ceil(sqrt(n)): true when n = a^2 - b^2 is found (p and q too close). */
export function isFermatFactorable(n: bigint, rounds = FERMAT_ROUNDS): boolean {
  let a = isqrt(n);
  if (a * a < n) a += 1n;
  let b2 = a * a - n;
  for (let i = 0; i < rounds; i++) {
    const b = isqrt(b2);
    if (b * b === b2) return true;
    b2 += 2n * a + 1n;
    a += 1n;
  }
  return false;
}

const SMALL_PRIMES: bigint[] = (() => {
  const out: bigint[] = [];
  const sieve = new Uint8Array(1000);
  for (let i = 2; i < 1000; i++) {
    if (sieve[i]) continue;
    out.push(BigInt(i));
    for (let j = i * i; j < 1000; j += i) sieve[j] = 1;
  }
  return out;
})();

/** Refuses RSA keys outside the policy: size (csr_key_not_allowed), exponent and factors (csr_weak_key). */
export function checkRsaStrength({ n, e }: { n: bigint; e: bigint }, minBits = RSA_MIN_BITS): void {
  const bits = n.toString(2).length;
  if (bits < minBits || bits > RSA_MAX_BITS) throw new PkiError('csr_key_not_allowed', `RSA-${bits}`);
  if (e % 2n === 0n || e < 65537n || e >= 2n ** 256n) throw new PkiError('csr_weak_key', 'RSA exponent must be odd and 65537 <= e < 2^256');
  if (SMALL_PRIMES.some((p) => n % p === 0n)) throw new PkiError('csr_weak_key', 'RSA modulus has a small prime factor');
  if (isFermatFactorable(n)) throw new PkiError('csr_weak_key', 'RSA modulus factors by Fermat\'s method');
}

