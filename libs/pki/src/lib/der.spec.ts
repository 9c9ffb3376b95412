import { createHash, generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import {
  decodeDigestInfo,
  derToP1363,
  encodeDigestInfo,
  keyIdentifier,
  p1363ToDer,
  parseStrictDer,
  pemBlocks,
  randomSerial,
  rsaSpki,
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
