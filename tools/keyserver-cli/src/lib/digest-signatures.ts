import { constants, createHash, publicDecrypt, type KeyObject } from 'node:crypto';

// Node verifies signatures over messages only (it hashes them itself). A Keyserver sign order signs a digest,
// and `ksctl verify --digest` has nothing else, so these check RSA PKCS#1 v1.5, RSA-PSS and ECDSA
// signatures over a given digest. Only public data is involved: constant time does not matter here.

export type DigestHash = 'sha256' | 'sha384' | 'sha512';

/** DER prefix of a DigestInfo for each hash (RFC 8017 §9.2 note 1). */
export const DIGEST_INFO_PREFIX: Record<DigestHash, string> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

export const HASH_LENGTH: Record<DigestHash, number> = { sha256: 32, sha384: 48, sha512: 64 };

/** RSA PKCS#1 v1.5 over a digest: the recovered block must be exactly the DigestInfo of `digest`. */
export function verifyRsaPkcs1Digest(key: KeyObject, hash: DigestHash, digest: Buffer, signature: Buffer): boolean {
  let recovered: Buffer;
  try {
    recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
  return recovered.equals(Buffer.concat([Buffer.from(DIGEST_INFO_PREFIX[hash], 'hex'), digest]));
}

function mgf1(hash: DigestHash, seed: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  for (let counter = 0; out.length * HASH_LENGTH[hash] < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    out.push(createHash(hash).update(seed).update(c).digest());
  }
  return Buffer.concat(out).subarray(0, length);
}

/** RSASSA-PSS over a digest (RFC 8017 §9.1.2, MGF1 with the same hash, any salt length). */
export function verifyRsaPssDigest(key: KeyObject, hash: DigestHash, digest: Buffer, signature: Buffer): boolean {
  const modBits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  let em: Buffer;
  try {
    em = publicDecrypt({ key, padding: constants.RSA_NO_PADDING }, signature);
  } catch {
    return false;
  }
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  if (em.length > emLen) {
    if (em[0] !== 0) return false;
    em = em.subarray(em.length - emLen);
  }
  const hLen = HASH_LENGTH[hash];
  if (digest.length !== hLen || emLen < hLen + 2 || em[emLen - 1] !== 0xbc) return false;
  const maskedDb = em.subarray(0, emLen - hLen - 1);
  const h = em.subarray(emLen - hLen - 1, emLen - 1);
  const topBits = 8 * emLen - emBits;
  const topMask = 0xff >> topBits;
  if ((maskedDb[0] & ~topMask & 0xff) !== 0) return false;
  const db = Buffer.from(mgf1(hash, h, maskedDb.length).map((m, i) => m ^ maskedDb[i]));
  db[0] &= topMask;
  const one = db.findIndex((b) => b !== 0);
  if (one < 0 || db[one] !== 0x01) return false;
  const salt = db.subarray(one + 1);
  const expected = createHash(hash).update(Buffer.alloc(8)).update(digest).update(salt).digest();
  return expected.equals(h);
}

interface Curve {
  p: bigint;
  b: bigint;
  n: bigint;
  gx: bigint;
  gy: bigint;
  /** Byte length of a coordinate (and of r and s in IEEE P1363 form). */
  size: number;
}

const big = (hex: string): bigint => BigInt(`0x${hex}`);

/** NIST curves (all with a = -3), FIPS 186-4 D.1.2. */
const CURVES: Record<string, Curve> = {
  'P-256': {
    p: big('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff'),
    b: big('5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b'),
    n: big('ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551'),
    gx: big('6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296'),
    gy: big('4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5'),
    size: 32,
  },
  'P-384': {
    p: big('fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff'),
    b: big('b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef'),
    n: big('ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973'),
    gx: big('aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7'),
    gy: big('3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f'),
    size: 48,
  },
  'P-521': {
    p: (1n << 521n) - 1n,
    b: big('0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00'),
    n: big('01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409'),
    gx: big('00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66'),
    gy: big('011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650'),
    size: 66,
  },
};

/** Jacobian point (X/Z², Y/Z³); Z = 0 is the point at infinity. */
type Point = [bigint, bigint, bigint];

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

function invert(a: bigint, m: bigint): bigint {
  let [r0, r1] = [mod(a, m), m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return mod(s0, m);
}

function double(c: Curve, [x, y, z]: Point): Point {
  const p = c.p;
  if (z === 0n || y === 0n) return [0n, 1n, 0n];
  const delta = mod(z * z, p);
  const gamma = mod(y * y, p);
  const beta = mod(x * gamma, p);
  const alpha = mod(3n * (x - delta) * (x + delta), p);
  const x3 = mod(alpha * alpha - 8n * beta, p);
  const z3 = mod((y + z) * (y + z) - gamma - delta, p);
  const y3 = mod(alpha * (4n * beta - x3) - 8n * gamma * gamma, p);
  return [x3, y3, z3];
}

function add(c: Curve, a: Point, b: Point): Point {
  const p = c.p;
  if (a[2] === 0n) return b;
  if (b[2] === 0n) return a;
  const [x1, y1, z1] = a;
  const [x2, y2, z2] = b;
  const z1z1 = mod(z1 * z1, p);
  const z2z2 = mod(z2 * z2, p);
  const u1 = mod(x1 * z2z2, p);
  const u2 = mod(x2 * z1z1, p);
  const s1 = mod(y1 * z2 * z2z2, p);
  const s2 = mod(y2 * z1 * z1z1, p);
  if (u1 === u2) return s1 === s2 ? double(c, a) : [0n, 1n, 0n];
  const h = mod(u2 - u1, p);
  const i = mod(4n * h * h, p);
  const j = mod(h * i, p);
  const r = mod(2n * (s2 - s1), p);
  const v = mod(u1 * i, p);
  const x3 = mod(r * r - j - 2n * v, p);
  const y3 = mod(r * (v - x3) - 2n * s1 * j, p);
  const z3 = mod(((z1 + z2) * (z1 + z2) - z1z1 - z2z2) * h, p);
  return [x3, y3, z3];
}

/** u1·G + u2·Q in one pass (Shamir's trick). */
function twoMultiply(c: Curve, u1: bigint, g: Point, u2: bigint, q: Point): Point {
  const gq = add(c, g, q);
  let acc: Point = [0n, 1n, 0n];
  const bits = Math.max(u1.toString(2).length, u2.toString(2).length);
  for (let i = bits - 1; i >= 0; i--) {
    acc = double(c, acc);
    const a = (u1 >> BigInt(i)) & 1n;
    const b = (u2 >> BigInt(i)) & 1n;
    if (a && b) acc = add(c, acc, gq);
    else if (a) acc = add(c, acc, g);
    else if (b) acc = add(c, acc, q);
  }
  return acc;
}

/** Reads a DER ECDSA-Sig-Value (SEQUENCE of two positive INTEGERs), strictly; undefined when malformed. */
export function parseDerEcdsaSignature(der: Buffer): { r: bigint; s: bigint } | undefined {
  let at = 0;
  const length = (): number | undefined => {
    const first = der[at++];
    if (first === undefined) return undefined;
    if (first < 0x80) return first;
    if (first !== 0x81 || der[at] === undefined || der[at] < 0x80) return undefined;
    return der[at++];
  };
  if (der[at++] !== 0x30) return undefined;
  const seqLen = length();
  if (seqLen === undefined || at + seqLen !== der.length) return undefined;
  const ints: bigint[] = [];
  for (let k = 0; k < 2; k++) {
    if (der[at++] !== 0x02) return undefined;
    const len = length();
    if (!len || at + len > der.length) return undefined;
    const bytes = der.subarray(at, at + len);
    if (bytes[0] & 0x80) return undefined; // negative
    if (len > 1 && bytes[0] === 0 && !(bytes[1] & 0x80)) return undefined; // not minimal
    ints.push(big(bytes.toString('hex')));
    at += len;
  }
  return at === der.length ? { r: ints[0], s: ints[1] } : undefined;
}

/** The curve name of an EC public key (P-256, P-384 or P-521), or undefined for anything else. */
export function ecCurveOf(key: KeyObject): string | undefined {
  const crv = (key.export({ format: 'jwk' }) as { crv?: string }).crv;
  return crv && CURVES[crv] ? crv : undefined;
}

/** ECDSA over a digest (FIPS 186-4 §6.4.2): `der` (ASN.1) or `p1363` (r‖s) signatures. */
export function verifyEcdsaDigest(key: KeyObject, digest: Buffer, signature: Buffer, format: 'asn1' | 'p1363'): boolean {
  const jwk = key.export({ format: 'jwk' }) as { crv?: string; x?: string; y?: string };
  const c = jwk.crv ? CURVES[jwk.crv] : undefined;
  if (!c || !jwk.x || !jwk.y) return false;
  let rs: { r: bigint; s: bigint } | undefined;
  if (format === 'p1363') {
    rs = signature.length === 2 * c.size ? { r: big(signature.subarray(0, c.size).toString('hex')), s: big(signature.subarray(c.size).toString('hex')) } : undefined;
  } else {
    rs = parseDerEcdsaSignature(signature);
  }
  if (!rs || rs.r <= 0n || rs.r >= c.n || rs.s <= 0n || rs.s >= c.n) return false;
  const qx = big(Buffer.from(jwk.x, 'base64url').toString('hex'));
  const qy = big(Buffer.from(jwk.y, 'base64url').toString('hex'));
  if (mod(qy * qy - (qx * qx * qx - 3n * qx + c.b), c.p) !== 0n) return false;
  // e: the leftmost bits of the digest, as many as the order has.
  const nBits = c.n.toString(2).length;
  let e = digest.length ? big(digest.toString('hex')) : 0n;
  if (digest.length * 8 > nBits) e >>= BigInt(digest.length * 8 - nBits);
  const w = invert(rs.s, c.n);
  const x = twoMultiply(c, mod(e * w, c.n), [c.gx, c.gy, 1n], mod(rs.r * w, c.n), [qx, qy, 1n]);
  if (x[2] === 0n) return false;
  const zi = invert(x[2], c.p);
  const affineX = mod(x[0] * zi * zi, c.p);
  return mod(affineX, c.n) === rs.r;
}
