import * as asn1js from 'asn1js';
import { oidText } from '@keyserver/timestamp-token';
import { isStrictDer, toAb } from './der';

/**
 * A small reader of DER that {@link isStrictDer} already accepted: it walks offsets in the caller's buffer and
 * builds no object trees. Every read is bounds-checked anyway (a caller passing unchecked bytes gets a
 * `DerShapeError`, never an out-of-range read), lengths are definite and at most 4 bytes, and the walk never
 * recurses (nesting is followed by the caller, one known level at a time).
 */
export interface Tlv {
  /** The identifier byte; -1 for a high tag number (no structure the reader knows uses one). */
  tag: number;
  /** Offset of the identifier, of the contents, and just past the element. */
  start: number;
  body: number;
  end: number;
}

/** The input does not have the shape the caller expected (the caller decides what that means). */
export class DerShapeError extends Error {}

const shape = (what: string): never => {
  throw new DerShapeError(what);
};

/** The element at `pos`, which must end by `end`. */
export function readTlv(b: Uint8Array, pos: number, end: number = b.length): Tlv {
  const start = pos;
  if (end > b.length || end - pos < 2) shape('truncated');
  let tag = b[pos++];
  if ((tag & 0x1f) === 0x1f) {
    tag = -1;
    while (pos < end && b[pos] & 0x80) pos++;
    pos++;
    if (pos >= end) shape('truncated');
  }
  let len = b[pos++];
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || end - pos < n) shape('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[pos++];
  }
  if (len > end - pos) shape('truncated');
  return { tag, start, body: pos, end: pos + len };
}

/** The elements inside a constructed element, in order. */
export function children(b: Uint8Array, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = t.body; pos < t.end; ) {
    const c = readTlv(b, pos, t.end);
    out.push(c);
    pos = c.end;
  }
  return out;
}

export const bytesOf = (b: Uint8Array, t: Tlv): Uint8Array => b.subarray(t.start, t.end);
export const contentsOf = (b: Uint8Array, t: Tlv): Uint8Array => b.subarray(t.body, t.end);

/** Dotted form of an OBJECT IDENTIFIER element (the one OID decoder, {@link oidText}; arcs of any size). */
export const oidString = (b: Uint8Array, t: Tlv): string => oidText(contentsOf(b, t));

/**
 * Universal types whose contents asn1js decodes without ever failing on strict DER (SEQUENCE/SET, BOOLEAN,
 * INTEGER, BIT/OCTET STRING, NULL, OID, ENUMERATED, UTF8/Numeric/Printable/Teletex/Videotex/IA5/Graphic/Visible/
 * General strings and UTCTime with its DER digits). Others (GeneralizedTime, BMPString, UniversalString, the
 * time types, REAL, ...) can make asn1js report an error or throw: inputs with them are read by asn1js too.
 */
const ASN1JS_SAFE = new Set([1, 2, 3, 4, 5, 6, 10, 12, 16, 17, 18, 19, 20, 21, 22, 23, 25, 26, 27]);

/**
 * Whether asn1js reads strict DER `der` without an error: true without asking asn1js when every element,
 * at any depth outside primitive contents, is of a type in {@link ASN1JS_SAFE} or not universal.
 */
export function asn1jsReads(der: Uint8Array): boolean {
  if (!hasAsn1jsHazard(der)) return true;
  try {
    const parsed = asn1js.fromBER(toAb(der));
    return parsed.offset === der.length && !parsed.result.error;
  } catch {
    return false;
  }
}

export function hasAsn1jsHazard(der: Uint8Array): boolean {
  // Iterative walk over the constructed elements: when a child's contents are done, `pos` is its end, where
  // the parent continues.
  const ends: number[] = [der.length];
  let pos = 0;
  while (ends.length) {
    const end = ends[ends.length - 1];
    if (pos >= end) {
      ends.pop();
      continue;
    }
    const t = readTlv(der, pos, end);
    const id = der[pos];
    if (id >> 6 === 0 && (t.tag === -1 || !ASN1JS_SAFE.has(id & 0x1f))) return true;
    if (id & 0x20) {
      ends.push(t.end);
      pos = t.body;
    } else pos = t.end;
  }
  return false;
}

/** Strict DER (X.690 DER, one element, no trailing bytes, depth <= 64) that asn1js also reads without an error. */
export function isReadableDer(der: Uint8Array): boolean {
  return isStrictDer(der) && asn1jsReads(der);
}
