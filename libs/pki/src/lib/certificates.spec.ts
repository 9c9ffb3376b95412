import * as asn1js from 'asn1js';
import fc from 'fast-check';
import { timeDer, x509Time } from './certificates';

/**
 * The tag and the characters of one encoded time (its TLV checked by asn1js), and the instant RFC 5280 4.1.2.5.1 reads
 * from them (a UTCTime's YY >= 50 is 19YY, else 20YY). asn1js' own toDate maps GeneralizedTime years 0-99 to 19xx.
 */
function read(der: Uint8Array): [string, string, string] {
  const parsed = asn1js.fromBER(der.slice().buffer);
  if (parsed.offset === -1 || parsed.offset !== der.length) throw new Error('not one TLV');
  const utc = der[0] === 0x17;
  const text = Buffer.from(der.subarray(2)).toString('latin1');
  const m = (utc ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/ : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/).exec(text);
  if (!m) throw new Error(`not a DER time: ${text}`);
  const [y, mo, day, h, mi, sec] = m.slice(1).map(Number);
  const instant = new Date(Date.UTC(2000, mo - 1, day, h, mi, sec));
  instant.setUTCFullYear(utc ? (y >= 50 ? 1900 + y : 2000 + y) : y);
  return [utc ? 'UTCTime' : 'GeneralizedTime', text, instant.toISOString()];
}

describe(timeDer.name, () => {
  // RFC 5280 4.1.2.5: UTCTime for 1950 through 2049, GeneralizedTime before and after; whole seconds, always Z.
  it.each([
    ['ok the first UTCTime second', '1950-01-01T00:00:00.000Z', 'UTCTime', '500101000000Z'],
    ['ok the last UTCTime second, its milliseconds dropped', '2049-12-31T23:59:59.999Z', 'UTCTime', '491231235959Z'],
    ['ok the first GeneralizedTime second after UTCTime', '2050-01-01T00:00:00.000Z', 'GeneralizedTime', '20500101000000Z'],
    ['ok the last second before UTCTime as GeneralizedTime (as UTCTime it would read 2049)', '1949-12-31T23:59:59.000Z', 'GeneralizedTime', '19491231235959Z'],
    ['ok year 0001 as GeneralizedTime', '0001-01-01T00:00:00.000Z', 'GeneralizedTime', '00010101000000Z'],
    ['ok 99991231235959Z (no well-defined expiration)', '9999-12-31T23:59:59.000Z', 'GeneralizedTime', '99991231235959Z'],
  ] as const)('%s', (_n, iso, tag, text) => {
    const d = new Date(iso);
    const [readTag, readText, instant] = read(timeDer(d));
    expect([readTag, readText]).toEqual([tag, text]);
    expect(instant).toBe(new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString());
    // The pkijs writer (CRLs, CMS signingTime) encodes the same bytes.
    expect(Buffer.from(x509Time(d).toSchema().toBER(false)).toString('hex')).toBe(Buffer.from(timeDer(d)).toString('hex'));
  });

  it.each([
    ['fail an invalid date', new Date(Number.NaN)],
    ['fail year 10000', new Date('+010000-01-01T00:00:00Z')],
    ['fail year 0000', new Date('0000-06-01T00:00:00Z')],
    ['fail a negative year', new Date('-000001-01-01T00:00:00Z')],
  ] as const)('%s: invalid_validity, no bytes', (_n, d) => {
    expect(() => timeDer(d)).toThrow(expect.objectContaining({ code: 'invalid_validity' }));
    expect(() => x509Time(d)).toThrow(expect.objectContaining({ code: 'invalid_validity' }));
  });

  it('writes every second of 0001-9999 so that a reader gets the same second back (property)', () => {
    fc.assert(
      fc.property(fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }), (d) => {
        const [tag, text, instant] = read(timeDer(d));
        expect(instant).toBe(new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString());
        const year = d.getUTCFullYear();
        expect(tag).toBe(year >= 1950 && year <= 2049 ? 'UTCTime' : 'GeneralizedTime');
        expect(text).toMatch(/^\d{12}(\d{2})?Z$/);
      }),
      { seed: 5280, numRuns: 2_000 },
    );
  });
});
