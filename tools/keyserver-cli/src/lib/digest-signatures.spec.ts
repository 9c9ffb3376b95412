import { constants, createHash, generateKeyPairSync, sign } from 'node:crypto';
import { parseDerEcdsaSignature, verifyEcdsaDigest, verifyRsaPkcs1Digest, verifyRsaPssDigest, type DigestHash } from './digest-signatures';

// Node signs the message (hashing it itself); these verifiers get only the digest. Agreement over every curve,
// hash and encoding shows the prehash arithmetic is right; the failures show it is not lenient.
const message = Buffer.from('firmware image 1.2.3');
const digestOf = (h: DigestHash, m = message) => createHash(h).update(m).digest();
const HASHES: DigestHash[] = ['sha256', 'sha384', 'sha512'];

describe(verifyEcdsaDigest.name, () => {
  const keys = Object.fromEntries(['P-256', 'P-384', 'P-521'].map((crv) => [crv, generateKeyPairSync('ec', { namedCurve: crv })]));

  it.each(['P-256', 'P-384', 'P-521'].flatMap((crv) => HASHES.map((h) => [`ok ${crv} ${h}`, crv, h] as const)))('%s in DER and P1363', (_n, crv, h) => {
    const { privateKey, publicKey } = keys[crv];
    expect(verifyEcdsaDigest(publicKey, digestOf(h), sign(h, message, privateKey), 'asn1')).toBe(true);
    expect(verifyEcdsaDigest(publicKey, digestOf(h), sign(h, message, { key: privateKey, dsaEncoding: 'ieee-p1363' }), 'p1363')).toBe(true);
  });

  it.each([
    ['fail another digest', (d: Buffer, s: Buffer) => [digestOf('sha256', Buffer.from('other')), s] as const],
    ['fail a flipped signature bit', (d: Buffer, s: Buffer) => [d, Buffer.from(s.map((b, i) => (i === s.length - 1 ? b ^ 1 : b)))] as const],
    ['fail trailing garbage after the DER', (d: Buffer, s: Buffer) => [d, Buffer.concat([s, Buffer.from([0])])] as const],
    ['fail an empty signature', (d: Buffer) => [d, Buffer.alloc(0)] as const],
  ])('%s', (_n, tamper) => {
    const { privateKey, publicKey } = keys['P-256'];
    const [d, s] = tamper(digestOf('sha256'), sign('sha256', message, privateKey));
    expect(verifyEcdsaDigest(publicKey, d, s, 'asn1')).toBe(false);
  });

  it('rejects a signature made by another key and a P1363 signature of the wrong length', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(verifyEcdsaDigest(keys['P-256'].publicKey, digestOf('sha256'), sign('sha256', message, other.privateKey), 'asn1')).toBe(false);
    const p1363 = sign('sha256', message, { key: keys['P-256'].privateKey, dsaEncoding: 'ieee-p1363' });
    expect(verifyEcdsaDigest(keys['P-256'].publicKey, digestOf('sha256'), p1363.subarray(1), 'p1363')).toBe(false);
    expect(verifyEcdsaDigest(keys['P-256'].publicKey, digestOf('sha256'), p1363, 'asn1')).toBe(false);
  });
});

describe(parseDerEcdsaSignature.name, () => {
  it.each([
    ['ok minimal', '3006020101020102', { r: 1n, s: 2n }],
    ['ok leading zero before a high bit', '300702020080020101', { r: 0x80n, s: 1n }],
    ['fail non-minimal integer', '300702020001020101', undefined],
    ['fail negative integer', '3006020180020101', undefined],
    ['fail wrong outer length', '3007020101020102', undefined],
    ['fail not a sequence', '3106020101020102', undefined],
  ])('%s', (_n, hex, want) => {
    expect(parseDerEcdsaSignature(Buffer.from(hex, 'hex'))).toEqual(want);
  });
});

describe('RSA over a digest', () => {
  // 2049 bits: the PSS encoded message is one byte shorter than the modulus.
  const keys = Object.fromEntries([2048, 2049].map((bits) => [bits, generateKeyPairSync('rsa', { modulusLength: bits })]));

  it.each([2048, 2049].flatMap((bits) => HASHES.map((h) => [`ok ${bits} bits ${h}`, bits, h] as const)))('%s: PKCS#1 v1.5 and PSS', (_n, bits, h) => {
    const { privateKey, publicKey } = keys[bits];
    expect(verifyRsaPkcs1Digest(publicKey, h, digestOf(h), sign(h, message, privateKey))).toBe(true);
    for (const saltLength of [constants.RSA_PSS_SALTLEN_DIGEST, 0, constants.RSA_PSS_SALTLEN_MAX_SIGN]) {
      const pss = sign(h, message, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength });
      expect(verifyRsaPssDigest(publicKey, h, digestOf(h), pss)).toBe(true);
    }
  });

  it.each([
    ['fail PKCS#1 over another digest', 'pkcs1', 'other'],
    ['fail PSS over another digest', 'pss', 'other'],
    ['fail PKCS#1 signature checked as PSS', 'pkcs1', 'as-pss'],
    ['fail PSS signature checked as PKCS#1', 'pss', 'as-pkcs1'],
    ['fail PKCS#1 with a flipped bit', 'pkcs1', 'flip'],
    ['fail PSS with a flipped bit', 'pss', 'flip'],
    ['fail PKCS#1 with the wrong hash named', 'pkcs1', 'sha384'],
  ])('%s', (_n, scheme, tamper) => {
    const { privateKey, publicKey } = keys[2048];
    let sig =
      scheme === 'pss'
        ? sign('sha256', message, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
        : sign('sha256', message, privateKey);
    let digest = digestOf('sha256');
    let hash: DigestHash = 'sha256';
    if (tamper === 'other') digest = digestOf('sha256', Buffer.from('other'));
    if (tamper === 'flip') sig = Buffer.from(sig.map((b, i) => (i === 10 ? b ^ 0x10 : b)));
    if (tamper === 'sha384') hash = 'sha384';
    const asPss = tamper === 'as-pss' || (scheme === 'pss' && tamper !== 'as-pkcs1');
    expect(asPss ? verifyRsaPssDigest(publicKey, hash, digest, sig) : verifyRsaPkcs1Digest(publicKey, hash, digest, sig)).toBe(false);
  });
});
