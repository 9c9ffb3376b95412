import * as asn1js from 'asn1js';
import { createHash, randomFillSync } from 'node:crypto';
import { HashName, KeyAlgorithm } from './hsm-signer';
import { PkiError } from './pki-error';

export const OID = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsassaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  sha384WithRSA: '1.2.840.113549.1.1.12',
  sha512WithRSA: '1.2.840.113549.1.1.13',
  sha1WithRSA: '1.2.840.113549.1.1.5',
  md5WithRSA: '1.2.840.113549.1.1.4',
  ecPublicKey: '1.2.840.10045.2.1',
  ecdsaSha1: '1.2.840.10045.4.1',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  ecdsaSha512: '1.2.840.10045.4.3.4',
  ed25519: '1.3.101.112',
  p256: '1.2.840.10045.3.1.7',
  p384: '1.3.132.0.34',
  p521: '1.3.132.0.35',
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  crlDistributionPoints: '2.5.29.31',
  crlNumber: '2.5.29.20',
  crlReason: '2.5.29.21',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  extensionRequest: '1.2.840.113549.1.9.14',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
  signingCertificateV2: '1.2.840.113549.1.9.16.2.47',
  cmsAlgorithmProtection: '1.2.840.113549.1.9.52',
  data: '1.2.840.113549.1.7.1',
  signedData: '1.2.840.113549.1.7.2',
  commonName: '2.5.4.3',
  serialNumber: '2.5.4.5',
  country: '2.5.4.6',
  locality: '2.5.4.7',
  state: '2.5.4.8',
  organization: '2.5.4.10',
  organizationalUnit: '2.5.4.11',
} as const;

interface HashInfo {
  oid: string;
  node: string;
  length: number;
}

export const HASHES: Record<HashName, HashInfo> = {
  'SHA-256': { oid: OID.sha256, node: 'sha256', length: 32 },
  'SHA-384': { oid: OID.sha384, node: 'sha384', length: 48 },
  'SHA-512': { oid: OID.sha512, node: 'sha512', length: 64 },
};

export function hashByOid(oid: string): HashName | undefined {
  return (Object.keys(HASHES) as HashName[]).find((h) => HASHES[h].oid === oid);
}

export function digest(hash: HashName, data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash(HASHES[hash].node).update(data).digest());
}

export function toAb(u: Uint8Array): ArrayBuffer {
  return u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a).equals(Buffer.from(b));
}

/**
 * True when `der` is exactly one DER element (X.690 clause 10) and nothing else: definite lengths in their
 * shortest form, tag numbers in their shortest form, SEQUENCE/SET constructed and every other universal type
 * primitive, minimal INTEGER/ENUMERATED, BOOLEAN 00/FF, empty NULL, BIT STRING unused-bits 0-7 (0 when empty),
 * minimal OID arcs, UTCTime/GeneralizedTime in their DER forms, no end-of-contents, at most 64 levels deep.
 * Contents of primitive OCTET/BIT STRINGs and of primitive context or application tags are opaque data.
 * One pass over the bytes without allocating; it decides alone, before any parser sees the input.
 */
export function isStrictDer(der: Uint8Array): boolean {
  return der.length > 0 && derElementEnd(der, 0, der.length, 0) === der.length;
}

const MAX_DER_DEPTH = 64;

/** End offset of the DER element starting at `pos` (which must end by `end`), or -1. */
function derElementEnd(b: Uint8Array, pos: number, end: number, depth: number): number {
  if (depth > MAX_DER_DEPTH || end - pos < 2) return -1;
  const id = b[pos++];
  const universal = id >> 6 === 0;
  const constructed = (id & 0x20) !== 0;
  let tag = id & 0x1f;
  if (tag === 0x1f) {
    // High tag number: base 128 without a leading 0x80 byte, and only for numbers that do not fit in 5 bits.
    if (b[pos] === 0x80) return -1;
    tag = 0;
    for (let more = true; more; ) {
      if (pos >= end || tag > 0x3fff) return -1;
      const x = b[pos++];
      tag = tag * 128 + (x & 0x7f);
      more = (x & 0x80) !== 0;
    }
    if (tag < 0x1f) return -1;
  }
  if (pos >= end) return -1;
  let len = b[pos++];
  if (len & 0x80) {
    // Long form: 1-4 length bytes, no leading zero byte, only for lengths that do not fit the short form.
    const n = len & 0x7f;
    if (n === 0 || n > 4 || end - pos < n || b[pos] === 0) return -1;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[pos++];
    if (len < 0x80) return -1;
  }
  if (len > end - pos) return -1;
  const stop = pos + len;
  if (universal && !universalContentOk(b, tag, constructed, pos, len)) return -1;
  if (!constructed) return stop;
  while (pos < stop) {
    pos = derElementEnd(b, pos, stop, depth + 1);
    if (pos < 0) return -1;
  }
  return stop;
}

const isDigits = (b: Uint8Array, from: number, to: number) => {
  for (let i = from; i < to; i++) if (b[i] < 0x30 || b[i] > 0x39) return false;
  return true;
};

function universalContentOk(b: Uint8Array, tag: number, constructed: boolean, at: number, len: number): boolean {
  if (tag === 16 || tag === 17) return constructed;
  if (constructed) return false;
  switch (tag) {
    case 0: // end-of-contents exists only in indefinite-length BER
      return false;
    case 1:
      return len === 1 && (b[at] === 0 || b[at] === 0xff);
    case 2:
    case 10:
      return len > 0 && !(len > 1 && ((b[at] === 0 && !(b[at + 1] & 0x80)) || (b[at] === 0xff && b[at + 1] & 0x80)));
    case 3:
      return len > 0 && b[at] <= 7 && (len > 1 || b[at] === 0);
    case 5:
      return len === 0;
    case 6:
    case 13: {
      if (len === 0 || b[at + len - 1] & 0x80) return false;
      for (let i = at; i < at + len; i++) if (b[i] === 0x80 && (i === at || !(b[i - 1] & 0x80))) return false;
      return true;
    }
    case 23: // UTCTime: YYMMDDHHMMSSZ
      return len === 13 && isDigits(b, at, at + 12) && b[at + 12] === 0x5a;
    case 24: {
      // GeneralizedTime: YYYYMMDDHHMMSS[.fraction without trailing zeros]Z
      if (len < 15 || !isDigits(b, at, at + 14) || b[at + len - 1] !== 0x5a) return false;
      if (len === 15) return true;
      return len >= 17 && b[at + 14] === 0x2e && isDigits(b, at + 15, at + len - 1) && b[at + len - 2] !== 0x30;
    }
    default:
      return true;
  }
}

/** Parses exactly one DER element; trailing bytes or BER-only encodings are refused ({@link isStrictDer}). */
export function parseStrictDer(der: Uint8Array): asn1js.AsnType | null {
  if (!isStrictDer(der)) return null;
  let parsed: ReturnType<typeof asn1js.fromBER>;
  try {
    // asn1js throws (rather than reporting) on some malformed contents, e.g. a GeneralizedTime it cannot read.
    parsed = asn1js.fromBER(toAb(der));
  } catch {
    return null;
  }
  if (parsed.offset === -1 || parsed.offset !== der.length || parsed.result.error) return null;
  return parsed.result;
}

/** One DER TLV: `tag` (a single identifier byte) and the concatenated `contents`, with a minimal length. */
export function derTlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  const len = contents.reduce((n, c) => n + c.length, 0);
  if (len >= 0x1000000) throw new RangeError('DER element too large');
  const head = len < 0x80 ? [tag, len] : len < 0x100 ? [tag, 0x81, len] : len < 0x10000 ? [tag, 0x82, len >> 8, len & 0xff] : [tag, 0x83, len >> 16, (len >> 8) & 0xff, len & 0xff];
  const out = new Uint8Array(head.length + len);
  out.set(head, 0);
  let at = head.length;
  for (const c of contents) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** DigestInfo ::= SEQUENCE { AlgorithmIdentifier { hash OID, NULL }, OCTET STRING digest }. */
export function encodeDigestInfo(hash: HashName, d: Uint8Array): Uint8Array {
  return new Uint8Array(
    new asn1js.Sequence({
      value: [
        new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: HASHES[hash].oid }), new asn1js.Null()] }),
        new asn1js.OctetString({ valueHex: toAb(d) }),
      ],
    }).toBER(false),
  );
}

/** Parses a DigestInfo strictly (DER, NULL or absent parameters, known hash, right digest length). */
export function decodeDigestInfo(der: Uint8Array): { hash: HashName; digest: Uint8Array } {
  const node = parseStrictDer(der);
  if (!(node instanceof asn1js.Sequence) || node.valueBlock.value.length !== 2) {
    throw new PkiError('malformed_digestinfo');
  }
  const [alg, oct] = node.valueBlock.value;
  if (!(alg instanceof asn1js.Sequence) || !(oct instanceof asn1js.OctetString) || oct.idBlock.isConstructed) {
    throw new PkiError('malformed_digestinfo');
  }
  const [oid, params, ...rest] = alg.valueBlock.value;
  if (!(oid instanceof asn1js.ObjectIdentifier) || rest.length > 0 || (params && !(params instanceof asn1js.Null))) {
    throw new PkiError('malformed_digestinfo');
  }
  const hash = hashByOid(oid.valueBlock.toString());
  if (!hash) throw new PkiError('malformed_digestinfo', 'unknown or unsupported digest algorithm');
  const d = new Uint8Array(oct.valueBlock.valueHexView);
  if (d.length !== HASHES[hash].length) throw new PkiError('malformed_digestinfo', 'digest length does not match its algorithm');
  return { hash, digest: d };
}

/** Converts an ECDSA signature r||s (P1363) to DER `SEQUENCE { INTEGER r, INTEGER s }`. */
export function p1363ToDer(sig: Uint8Array): Uint8Array {
  // Written out (on every ECDSA sign order): SEQUENCE { INTEGER r, INTEGER s }, each minimal and positive.
  const half = sig.length / 2;
  const lenBytes = (n: number) => (n < 0x80 ? 1 : n < 0x100 ? 2 : 3);
  const span = (from: number) => {
    let i = from;
    while (i < from + half - 1 && sig[i] === 0) i++;
    return { at: i, len: from + half - i, pad: sig[i] & 0x80 ? 1 : 0 };
  };
  const parts = [span(0), span(half)];
  const ints = parts.map((x) => 1 + lenBytes(x.len + x.pad) + x.pad + x.len);
  const body = ints[0] + ints[1];
  const out = new Uint8Array(1 + lenBytes(body) + body);
  let o = 0;
  const putLen = (n: number) => {
    if (n >= 0x100) {
      out[o++] = 0x82;
      out[o++] = n >> 8;
    } else if (n >= 0x80) out[o++] = 0x81;
    out[o++] = n & 0xff;
  };
  out[o++] = 0x30;
  putLen(body);
  for (const x of parts) {
    out[o++] = 0x02;
    putLen(x.len + x.pad);
    if (x.pad) out[o++] = 0;
    out.set(sig.subarray(x.at, x.at + x.len), o);
    o += x.len;
  }
  return out;
}

/** Converts a DER ECDSA signature to r||s, each left-padded to `size` bytes. */
export function derToP1363(der: Uint8Array, size: number): Uint8Array {
  const node = parseStrictDer(der);
  if (!(node instanceof asn1js.Sequence) || node.valueBlock.value.length !== 2) throw new Error('bad ECDSA signature');
  const out = new Uint8Array(size * 2);
  node.valueBlock.value.forEach((n, i) => {
    if (!(n instanceof asn1js.Integer)) throw new Error('bad ECDSA signature');
    let v = new Uint8Array(n.valueBlock.valueHexView);
    while (v.length > size && v[0] === 0) v = v.subarray(1);
    if (v.length > size) throw new Error('bad ECDSA signature');
    out.set(v, i * size + size - v.length);
  });
  return out;
}

export const CURVES: Record<string, { oid: string; size: number; alg: KeyAlgorithm }> = {
  'EC-P256': { oid: OID.p256, size: 32, alg: 'EC-P256' },
  'EC-P384': { oid: OID.p384, size: 48, alg: 'EC-P384' },
  'EC-P521': { oid: OID.p521, size: 66, alg: 'EC-P521' },
};

/** Byte length of one ECDSA coordinate for an EC key algorithm. */
export function curveSize(alg: KeyAlgorithm): number {
  const c = CURVES[alg];
  if (!c) throw new Error(`${alg} is not an EC algorithm`);
  return c.size;
}

const RSA_ALGORITHM = new Uint8Array([0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]);

/** Builds an RSA SubjectPublicKeyInfo from CKA_MODULUS and CKA_PUBLIC_EXPONENT (minimal positive INTEGERs, NULL parameters). */
export function rsaSpki(modulus: Uint8Array, exponent: Uint8Array): Uint8Array {
  const uint = (b: Uint8Array) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = b.subarray(i);
    return derTlv(0x02, ...(v[0] & 0x80 ? [new Uint8Array([0]), v] : [v]));
  };
  return derTlv(0x30, RSA_ALGORITHM, derTlv(0x03, new Uint8Array([0]), derTlv(0x30, uint(modulus), uint(exponent))));
}

/** Builds an EC / Ed25519 SubjectPublicKeyInfo from CKA_EC_PARAMS (named curve OID) and CKA_EC_POINT. */
export function ecSpki(alg: KeyAlgorithm, ecPoint: Uint8Array): Uint8Array {
  // PKCS#11 wraps the point in an OCTET STRING; some tokens return it raw.
  // A raw point can itself read as an OCTET STRING (P-256: 0x04, then x[0] = 0x3f is a length of 63), so unwrap
  // only when the contents have the length of a point of this algorithm.
  let point = ecPoint;
  const size = alg === 'Ed25519' ? 32 : 1 + 2 * CURVES[alg].size;
  const wrapped = ecPoint.length === size ? undefined : asn1js.fromBER(toAb(ecPoint));
  if (wrapped && wrapped.offset === ecPoint.length && wrapped.result instanceof asn1js.OctetString && wrapped.result.valueBlock.valueHexView.length === size) {
    point = new Uint8Array(wrapped.result.valueBlock.valueHexView);
  }
  const algId =
    alg === 'Ed25519'
      ? new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: OID.ed25519 })] })
      : new asn1js.Sequence({
          value: [
            new asn1js.ObjectIdentifier({ value: OID.ecPublicKey }),
            new asn1js.ObjectIdentifier({ value: CURVES[alg].oid }),
          ],
        });
  return new Uint8Array(
    new asn1js.Sequence({ value: [algId, new asn1js.BitString({ valueHex: toAb(point) })] }).toBER(false),
  );
}

/** DER of the named-curve OID a PKCS#11 token expects in CKA_EC_PARAMS. */
export function ecParamsFor(alg: KeyAlgorithm): Uint8Array {
  const oid = alg === 'Ed25519' ? OID.ed25519 : CURVES[alg].oid;
  return new Uint8Array(new asn1js.ObjectIdentifier({ value: oid }).toBER(false));
}

// CSPRNG bytes drawn 4 KiB at a time (one call into OpenSSL per 256 serials instead of one per serial); every
// byte is used once. Serials are public: holding the next ones in process memory gives a remote party nothing.
const POOL = new Uint8Array(4096);
let poolAt = POOL.length;
function csprng16(): Uint8Array {
  if (poolAt + 16 > POOL.length) {
    randomFillSync(POOL);
    poolAt = 0;
  }
  const b = POOL.slice(poolAt, poolAt + 16);
  POOL.fill(0, poolAt, poolAt + 16);
  poolAt += 16;
  return b;
}

/** 128-bit CSPRNG serial: positive (top bit cleared) and never zero; returned as DER INTEGER content. */
export function randomSerial(): Uint8Array {
  for (;;) {
    const b = csprng16();
    b[0] &= 0x7f;
    if (b.some((x) => x !== 0)) {
      let i = 0;
      while (i < b.length - 1 && b[i] === 0 && !(b[i + 1] & 0x80)) i++;
      return b.subarray(i);
    }
  }
}

/** Key identifier (RFC 5280 method 1): SHA-1 of the subjectPublicKey BIT STRING contents. */
export function keyIdentifier(spki: Uint8Array): Uint8Array {
  // SEQUENCE { AlgorithmIdentifier, BIT STRING }: read in place (strict DER checked first), no object tree.
  if (!isStrictDer(spki) || spki[0] !== 0x30) throw new Error('bad SPKI');
  const at = (pos: number): [body: number, end: number] => {
    let len = spki[pos + 1];
    let body = pos + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + spki[body++];
    }
    return [body, body + len];
  };
  const [seqBody] = at(0);
  const [, algEnd] = at(seqBody);
  if (spki[algEnd] !== 0x03) throw new Error('bad SPKI');
  const [bitsBody, bitsEnd] = at(algEnd);
  return new Uint8Array(createHash('sha1').update(spki.subarray(bitsBody + 1, bitsEnd)).digest());
}

export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** All PEM blocks in a text, in order. */
export function pemBlocks(text: string): { label: string; body: string; start: number; end: number }[] {
  return [...text.matchAll(PEM_RE)].map((m) => ({
    label: m[1],
    body: m[2],
    start: m.index ?? 0,
    end: (m.index ?? 0) + m[0].length,
  }));
}

/** Decodes one certificate from PEM or DER. */
export function certDer(input: string | Uint8Array): Uint8Array {
  if (typeof input !== 'string') return input;
  const block = pemBlocks(input).find((b) => b.label === 'CERTIFICATE');
  if (!block) throw new PkiError('invalid_certificate', 'no CERTIFICATE PEM block');
  return new Uint8Array(Buffer.from(block.body.replace(/\s+/g, ''), 'base64'));
}

export function hex(u: Uint8Array): string {
  return Buffer.from(u).toString('hex');
}
