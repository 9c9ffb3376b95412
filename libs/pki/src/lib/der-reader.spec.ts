import * as asn1js from 'asn1js';
import * as fc from 'fast-check';
import { derTlv, isStrictDer, toAb } from './der';
import { DerShapeError, asn1jsReads, children, contentsOf, oidString, readTlv } from './der-reader';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 40) * 25;

/** Strict DER values of a few types, nested a few levels (what the reader walks). */
const derArb: fc.Arbitrary<Uint8Array> = fc.letrec<{ el: Uint8Array }>((tie) => ({
  el: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.uint8Array({ maxLength: 300 }).map((b) => derTlv(0x04, b)),
    fc.uint8Array({ maxLength: 40 }).map((b) => derTlv(0x0c, new Uint8Array(Buffer.from(Buffer.from(b).toString('utf8'), 'utf8')))),
    fc.integer({ min: 0, max: 2 ** 31 }).map((n) => new Uint8Array(new asn1js.Integer({ value: n }).toBER(false))),
    fc.array(fc.integer({ min: 0, max: 2 ** 40 }), { minLength: 1, maxLength: 6 }).map((arcs) => new Uint8Array(new asn1js.ObjectIdentifier({ value: `1.${arcs.map(String).join('.')}` }).toBER(false))),
    fc.constantFrom(new Uint8Array([0x05, 0x00]), new Uint8Array([0x01, 0x01, 0xff]), new Uint8Array([0x80, 0x01, 0x61])),
    fc.array(tie('el'), { maxLength: 4 }).map((xs) => derTlv(0x30, ...xs)),
    fc.array(tie('el'), { maxLength: 3 }).map((xs) => derTlv(0xa0, ...xs)),
  ),
})).el;

describe('DER reader', () => {
  it('never reads outside the buffer: any bytes give an element inside [pos, end] or a DerShapeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(), (b, p) => {
        const pos = b.length ? p % b.length : 0;
        try {
          const t = readTlv(b, pos);
          expect(t.start).toBe(pos);
          expect(t.body).toBeGreaterThan(pos);
          expect(t.end).toBeGreaterThanOrEqual(t.body);
          expect(t.end).toBeLessThanOrEqual(b.length);
        } catch (e) {
          expect(e).toBeInstanceOf(DerShapeError);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('walks strict DER exactly as asn1js does: the same children, contents and OIDs', () => {
    fc.assert(
      fc.property(derArb, (der) => {
        expect(isStrictDer(der)).toBe(true);
        expect(asn1jsReads(der)).toBe(true);
        const compare = (node: asn1js.AsnType, at: { tag: number; start: number; body: number; end: number }) => {
          expect(Buffer.from(der.subarray(at.start, at.end)).equals(Buffer.from(node.valueBeforeDecodeView))).toBe(true);
          if (node instanceof asn1js.ObjectIdentifier) expect(oidString(der, at)).toBe(node.valueBlock.toString());
          if (node instanceof asn1js.Constructed || node instanceof asn1js.Sequence) {
            const mine = children(der, at);
            expect(mine.length).toBe(node.valueBlock.value.length);
            mine.forEach((c, i) => compare(node.valueBlock.value[i], c));
          } else if (node instanceof asn1js.OctetString) {
            expect(Buffer.from(contentsOf(der, at)).equals(Buffer.from(node.valueBlock.valueHexView))).toBe(true);
          }
        };
        compare(asn1js.fromBER(toAb(der)).result, readTlv(der, 0));
      }),
      { numRuns: RUNS },
    );
  });

  it.each<[string, Uint8Array, boolean]>([
    ['ok a UTCTime with DER digits', derTlv(0x30, derTlv(0x17, new Uint8Array(Buffer.from('491231235959Z')))), true],
    ['ok a GeneralizedTime with a fraction (asn1js asked, and it reads it)', derTlv(0x30, derTlv(0x18, new Uint8Array(Buffer.from('20500101000000.5Z')))), true],
    ['fail a BMPString of odd length', derTlv(0x30, derTlv(0x1e, new Uint8Array([0, 0x61, 0]))), false],
    ['ok a BMPString of even length', derTlv(0x30, derTlv(0x1e, new Uint8Array([0, 0x61]))), true],
    ['fail a UniversalString of 3 bytes', derTlv(0x31, derTlv(0x1c, new Uint8Array([0, 0, 0x61]))), false],
  ])('%s: asn1jsReads agrees with asn1js', (_name, der, readable) => {
    expect(isStrictDer(der)).toBe(true);
    expect(asn1jsReads(der)).toBe(readable);
  });
});
