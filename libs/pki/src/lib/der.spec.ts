import * as asn1js from 'asn1js';
import * as fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import {
  decodeDigestInfo,
  derTlv,
  derToP1363,
  ecSpki,
  encodeDigestInfo,
  isStrictDer,
  keyIdentifier,
  p1363ToDer,
  parseStrictDer,
  pemBlocks,
  randomSerial,
  rsaSpki,
  toAb,
  toPem,
} from './der';
import { PkiError } from './pki-error';

describe('der helpers', () => {
  it('round-trips ECDSA signatures between P1363 and DER as Node produces them', () => {
    for (const [curve, size] of [['P-256', 32], ['P-384', 48], ['P-521', 66]] as const) {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
      for (let i = 0; i < 20; i++) {
        const msg = Buffer.from(`m${i}`);
        const p1363 = nodeSign('sha256', msg, { key: privateKey, dsaEncoding: 'ieee-p1363' });
        const der = p1363ToDer(p1363);
        expect(nodeVerify('sha256', msg, { key: publicKey, dsaEncoding: 'der' }, der)).toBe(true);
        expect(Buffer.from(derToP1363(der, size)).equals(p1363)).toBe(true);
      }
    }
  });

  it('encodes any r||s exactly as asn1js does, as strict DER that reads back', () => {
    fc.assert(
      fc.property(fc.constantFrom(32, 48, 66), fc.uint8Array({ minLength: 132, maxLength: 132 }), fc.nat(3), (size, bytes, shape) => {
        const sig = bytes.slice(0, size * 2);
        // Leading zero bytes and high bits are the edge cases of minimal positive INTEGERs.
        if (shape === 1) sig.fill(0, 0, 3);
        if (shape === 2) sig[size] = 0x80;
        if (shape === 3) sig.fill(0, size, size * 2);
        const int = (b: Uint8Array) => {
          let i = 0;
          while (i < b.length - 1 && b[i] === 0) i++;
          let v = b.subarray(i);
          if (v[0] & 0x80) v = Uint8Array.from([0, ...v]);
          return new asn1js.Integer({ valueHex: toAb(v) });
        };
        const reference = new Uint8Array(new asn1js.Sequence({ value: [int(sig.subarray(0, size)), int(sig.subarray(size))] }).toBER(false));
        const der = p1363ToDer(sig);
        expect(Buffer.from(der).toString('hex')).toBe(Buffer.from(reference).toString('hex'));
        expect(isStrictDer(der)).toBe(true);
        expect(Buffer.from(derToP1363(der, size)).equals(Buffer.from(sig))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('encodes the DigestInfo prefix RFC 8017 lists for SHA-256', () => {
    const d = createHash('sha256').update('x').digest();
    expect(Buffer.from(encodeDigestInfo('SHA-256', d)).subarray(0, 19).toString('hex')).toBe('3031300d060960864801650304020105000420');
    expect(decodeDigestInfo(encodeDigestInfo('SHA-256', d))).toEqual({ hash: 'SHA-256', digest: new Uint8Array(d) });
  });

  it.each([
    ['fail empty', ''],
    ['fail bare digest', '00'.repeat(32)],
    ['fail digest length not matching the algorithm', '3021300d06096086480165030402010500041000000000000000000000000000000000'],
    ['fail non-NULL parameters', '3031300d060960864801650304020102010004200000000000000000000000000000000000000000000000000000000000000000'],
    ['fail trailing byte', '3031300d060960864801650304020105000420' + '00'.repeat(32) + '00'],
  ])('%s DigestInfo is refused', (_n, hexValue) => {
    expect(() => decodeDigestInfo(new Uint8Array(Buffer.from(hexValue, 'hex')))).toThrow(PkiError);
  });

  it('makes positive, non-zero serials of at most 16 bytes', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const s = randomSerial();
      expect(s.length).toBeLessThanOrEqual(16);
      expect(s[0] & 0x80).toBe(0);
      expect(s.some((b) => b !== 0)).toBe(true);
      if (s.length > 1) expect(s[0] === 0 && (s[1] & 0x80) === 0).toBe(false);
      seen.add(Buffer.from(s).toString('hex'));
    }
    expect(seen.size).toBe(2000);
  });

  it('rebuilds an RSA SPKI byte-identical to Node from modulus and exponent', () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = publicKey.export({ format: 'jwk' });
    const spki = rsaSpki(Buffer.from(jwk.n as string, 'base64url'), Buffer.from(jwk.e as string, 'base64url'));
    expect(Buffer.from(spki).equals(publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
    expect(keyIdentifier(spki)).toHaveLength(20);
  });

  it('refuses BER: indefinite lengths, non-minimal lengths and trailing bytes', () => {
    expect(parseStrictDer(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x05]))).not.toBeNull();
    expect(parseStrictDer(new Uint8Array([0x30, 0x80, 0x02, 0x01, 0x05, 0, 0]))).toBeNull();
    expect(parseStrictDer(new Uint8Array([0x30, 0x81, 0x03, 0x02, 0x01, 0x05]))).toBeNull();
    expect(parseStrictDer(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x05, 0x00]))).toBeNull();
    // INTEGER 5 with a redundant leading zero, BOOLEAN TRUE as 0x01.
    expect(parseStrictDer(new Uint8Array([0x30, 0x04, 0x02, 0x02, 0x00, 0x05]))).toBeNull();
    expect(parseStrictDer(new Uint8Array([0x30, 0x03, 0x01, 0x01, 0x01]))).toBeNull();
    expect(parseStrictDer(new Uint8Array([0x30, 0x03, 0x01, 0x01, 0xff]))).not.toBeNull();
    // Constructed OCTET STRING is BER only.
    expect(parseStrictDer(new Uint8Array([0x30, 0x05, 0x24, 0x03, 0x04, 0x01, 0x05]))).toBeNull();
  });

  it('accepts opaque OCTET and BIT STRING contents that merely look like non-DER BER', () => {
    // A key identifier or signature may start with bytes that parse as BOOLEAN 0x05 or a long-form length:
    // those bytes are data, not structure, and the certificate around them is still DER.
    expect(parseStrictDer(new Uint8Array([0x30, 0x05, 0x04, 0x03, 0x01, 0x01, 0x05]))).not.toBeNull();
    expect(parseStrictDer(new Uint8Array([0x30, 0x07, 0x04, 0x05, 0x04, 0x81, 0x02, 0xaa, 0xbb]))).not.toBeNull();
    expect(parseStrictDer(new Uint8Array([0x30, 0x06, 0x03, 0x04, 0x00, 0x01, 0x01, 0x05]))).not.toBeNull();
  });

  it('writes PEM that splits at 64 columns without a blank line and reads it back', () => {
    const der = new Uint8Array(48).fill(1);
    const text = toPem('CERTIFICATE', der);
    expect(text).not.toMatch(/\n\n/);
    const [b] = pemBlocks(text);
    expect(b.label).toBe('CERTIFICATE');
    expect(Buffer.from(b.body.replace(/\s/g, ''), 'base64').equals(Buffer.from(der))).toBe(true);
  });
});

const bytes = (h: string) => new Uint8Array(Buffer.from(h.replace(/ /g, ''), 'hex'));
const text = (tag: number, s: string) => derTlv(tag, new Uint8Array(Buffer.from(s, 'latin1')));

describe(isStrictDer.name, () => {
  it.each([
    ['ok SEQUENCE { INTEGER 5 }', bytes('30 03 02 01 05')],
    ['ok long-form length where the short form cannot hold it', derTlv(0x04, new Uint8Array(200))],
    ['ok negative INTEGER', bytes('02 01 85')],
    ['ok high tag number 31', bytes('9f 1f 00')],
    ['ok primitive OCTET STRING whose bytes look like BER', bytes('04 04 30 80 00 00')],
    ['ok UTCTime', text(0x17, '491231235959Z')],
    ['ok GeneralizedTime with a fraction', text(0x18, '20500101000000.5Z')],
  ])('%s', (_n, der) => {
    expect(isStrictDer(der)).toBe(true);
  });

  it.each([
    ['fail empty input', bytes('')],
    ['fail indefinite length', bytes('30 80 02 01 05 00 00')],
    ['fail long form for a short length', bytes('30 81 03 02 01 05')],
    ['fail length with a leading zero byte', bytes('30 82 00 03 02 01 05')],
    ['fail five length bytes', bytes('04 85 00 00 00 00 01 00')],
    ['fail length past the end', bytes('30 04 02 01 05')],
    ['fail trailing byte', bytes('30 03 02 01 05 00')],
    ['fail end-of-contents', bytes('00 00')],
    ['fail primitive SEQUENCE', bytes('10 03 02 01 05')],
    ['fail constructed OCTET STRING', bytes('24 03 04 01 05')],
    ['fail empty INTEGER', bytes('02 00')],
    ['fail INTEGER with a redundant leading zero', bytes('02 02 00 05')],
    ['fail INTEGER with a redundant leading 0xff', bytes('02 02 ff 85')],
    ['fail BOOLEAN 0x01', bytes('01 01 01')],
    ['fail NULL with content', bytes('05 01 00')],
    ['fail empty BIT STRING', bytes('03 00')],
    ['fail BIT STRING with 8 unused bits', bytes('03 02 08 00')],
    ['fail unused bits in an empty BIT STRING', bytes('03 01 03')],
    ['fail OID arc with a leading 0x80', bytes('06 04 2a 80 86 48')],
    ['fail OID ending inside an arc', bytes('06 02 2a 86')],
    ['fail high tag number below 31', bytes('9f 05 00')],
    ['fail high tag number with a leading 0x80', bytes('9f 80 1f 00')],
    ['fail UTCTime without seconds', text(0x17, '2501010000Z')],
    ['fail UTCTime with an offset', text(0x17, '250101000000+0100')],
    ['fail GeneralizedTime with a trailing zero in the fraction', text(0x18, '20500101000000.50Z')],
    ['fail GeneralizedTime with a lower-case z', text(0x18, '20500101000000z')],
    ['fail nesting deeper than 64 levels', Array.from({ length: 70 }).reduce<Uint8Array>((inner) => derTlv(0x30, inner), bytes('05 00'))],
  ])('%s', (_n, der) => {
    expect(isStrictDer(der)).toBe(false);
    expect(parseStrictDer(der)).toBeNull();
  });

  it('returns null rather than throwing for contents asn1js cannot read', () => {
    const unreadable = derTlv(0x30, text(0x18, '20500101000000z'));
    expect(() => asn1js.fromBER(toAb(unreadable))).toThrow();
    expect(parseStrictDer(unreadable)).toBeNull();
    const digestInfo = derTlv(0x30, derTlv(0x30, bytes('06 09 60 86 48 01 65 03 04 02 01'), text(0x18, '20500101000000z')), derTlv(0x04, new Uint8Array(32)));
    expect(() => decodeDigestInfo(digestInfo)).toThrow(PkiError);
  });

  it('accepts only encodings asn1js re-encodes byte for byte (seeded mutations of real CSRs and certificates)', () => {
    const openssl = (args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const der = (pem: string) => new Uint8Array(Buffer.from(pem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64'));
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', '/dev/null'];
    const seeds = [
      der(openssl(['req', '-new', ...ec, '-subj', '/CN=device/O=Acme', '-addext', 'subjectAltName=DNS:a.example,IP:10.0.0.1', '-addext', 'keyUsage=digitalSignature'])),
      der(openssl(['req', '-x509', '-new', ...ec, '-subj', '/CN=root', '-days', '20000'])),
      encodeDigestInfo('SHA-256', new Uint8Array(32).fill(7)),
      p1363ToDer(new Uint8Array(64).fill(0x81)),
    ];
    // The property the strict check replaced: asn1js parses the input and writes back exactly the same bytes.
    const roundTrips = (m: Uint8Array) => {
      try {
        const r = asn1js.fromBER(toAb(m));
        return r.offset === m.length && !r.result.error && Buffer.from(r.result.toBER(false)).equals(Buffer.from(m));
      } catch {
        return false;
      }
    };
    let seed = 9;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
    let accepted = 0;
    const notRoundTripping: number[] = [];
    for (let i = 0; i < 1500; i++) {
      let m = Uint8Array.from(seeds[i % seeds.length]);
      const at = rnd(m.length);
      switch (rnd(4)) {
        case 0:
          m[at] ^= 1 << rnd(8);
          break;
        case 1:
          m[at] = [0x00, 0x1f, 0x30, 0x31, 0x7f, 0x80, 0x81, 0x82, 0xff][rnd(9)];
          break;
        case 2:
          m = Uint8Array.from([...m.subarray(0, at), rnd(256), ...m.subarray(at)]);
          break;
        default:
          m = Uint8Array.from([...m.subarray(0, at), ...m.subarray(at + 1)]);
      }
      if (isStrictDer(m)) {
        accepted++;
        if (!roundTrips(m)) notRoundTripping.push(i);
      }
    }
    expect(notRoundTripping).toEqual([]);
    expect(accepted).toBeGreaterThan(200);
  });
});

describe(ecSpki.name, () => {
  it('ok a raw P-256 point whose bytes also read as an OCTET STRING (x[0] = 0x3f) is kept whole', () => {
    const raw = new Uint8Array(65);
    raw[0] = 0x04;
    raw[1] = 0x3f;
    const spki = ecSpki('EC-P256', raw);
    expect(Buffer.from(spki.subarray(spki.length - 65)).equals(Buffer.from(raw))).toBe(true);
  });

  it('ok a point wrapped in an OCTET STRING (CKA_EC_POINT) is unwrapped', () => {
    const raw = new Uint8Array(65).fill(7);
    raw[0] = 0x04;
    const spki = ecSpki('EC-P256', new Uint8Array([0x04, 65, ...raw]));
    expect(spki.length).toBe(91);
    expect(Buffer.from(spki.subarray(spki.length - 65)).equals(Buffer.from(raw))).toBe(true);
  });
});
