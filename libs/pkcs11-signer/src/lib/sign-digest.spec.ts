import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { HashName, HsmKeyInfo, KeyAlgorithm, MAX_SIGN_MESSAGE_BYTES, PkiError, encodeDigestInfo, p1363ToDer, signDigest, signMessage, toPem } from '@keyserver/pki';
import { createTempToken } from '../testing/temp-token';
import { Scratch, run } from '../testing/tools';
import { Pkcs11Signer, createPkcs11Signer } from './pkcs11-signer';

describe(signDigest.name, () => {
  let signer: Pkcs11Signer;
  const keys = new Map<KeyAlgorithm, HsmKeyInfo>();
  const scratch = new Scratch();
  const message = Buffer.from('firmware image bytes');

  beforeAll(async () => {
    const token = createTempToken('digest');
    signer = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2 });
    for (const algorithm of ['RSA-2048', 'RSA-3072', 'EC-P256', 'EC-P384', 'EC-P521', 'Ed25519'] as KeyAlgorithm[]) {
      keys.set(algorithm, await signer.generateKey({ algorithm, label: algorithm }));
    }
  });
  afterAll(async () => {
    await signer.close();
    scratch.remove();
  });

  const nodeHash = (h: HashName) => h.replace('-', '').toLowerCase();

  /** openssl dgst recomputes the digest over the message and checks the signature. */
  function opensslVerify(key: HsmKeyInfo, hash: HashName, sig: Uint8Array, extra: string[] = []) {
    const pub = scratch.write(`${key.hsmKeyId}.pem`, toPem('PUBLIC KEY', key.spki));
    const msg = scratch.write('msg.bin', message);
    const sigFile = scratch.write('sig.bin', sig);
    return run('openssl', ['dgst', `-${nodeHash(hash)}`, '-verify', pub, '-signature', sigFile, ...extra, msg]);
  }

  it.each([
    ['RSA-2048', 'SHA-256'],
    ['RSA-3072', 'SHA-384'],
    ['RSA-3072', 'SHA-512'],
  ] as const)('ok %s DigestInfo (%s) verifies with openssl', async (alg, hash) => {
    const key = keys.get(alg) as HsmKeyInfo;
    const d = createHash(nodeHash(hash)).update(message).digest();
    const sig = await signDigest(signer, key, { input: encodeDigestInfo(hash, d), inputPadding: 'digestinfo', hash });
    const r = opensslVerify(key, hash, sig);
    expect(r.stdout).toContain('Verified OK');
  });

  it.each([['RSA-2048', 'SHA-256'], ['RSA-3072', 'SHA-256']] as const)('ok %s bare digest with PKCS#1 v1.5 (%s) verifies with openssl', async (alg, hash) => {
    const key = keys.get(alg) as HsmKeyInfo;
    const sig = await signDigest(signer, key, { input: createHash(nodeHash(hash)).update(message).digest(), inputPadding: 'none' });
    expect(opensslVerify(key, hash, sig).stdout).toContain('Verified OK');
  });

  it.each([['RSA-2048', 'SHA-256'], ['RSA-3072', 'SHA-384'], ['RSA-3072', 'SHA-512']] as const)('ok %s PSS (%s) verifies with openssl', async (alg, hash) => {
    const key = keys.get(alg) as HsmKeyInfo;
    const sig = await signDigest(signer, key, { input: createHash(nodeHash(hash)).update(message).digest(), inputPadding: 'pss', hash });
    const r = opensslVerify(key, hash, sig, ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest']);
    expect(r.stdout).toContain('Verified OK');
    // A different salt length expectation must fail: the salt really is the digest length.
    const wrong = opensslVerify(key, hash, sig, ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:1']);
    expect(wrong.stdout).not.toContain('Verified OK');
  });

  it.each([['EC-P256', 'SHA-256'], ['EC-P384', 'SHA-384'], ['EC-P521', 'SHA-512']] as const)('ok %s ECDSA (%s) in asn1 and p1363 formats', async (alg, hash) => {
    const key = keys.get(alg) as HsmKeyInfo;
    const d = createHash(nodeHash(hash)).update(message).digest();
    const der = await signDigest(signer, key, { input: d, inputPadding: 'none', signatureFormat: 'asn1' });
    expect(opensslVerify(key, hash, der).stdout).toContain('Verified OK');
    const p1363 = await signDigest(signer, key, { input: d, inputPadding: 'none', signatureFormat: 'p1363' });
    const size = { 'EC-P256': 32, 'EC-P384': 48, 'EC-P521': 66 }[alg];
    expect(p1363).toHaveLength(2 * size);
    const pub = createPublicKey({ key: Buffer.from(key.spki), format: 'der', type: 'spki' });
    expect(nodeVerify(nodeHash(hash), message, { key: pub, dsaEncoding: 'ieee-p1363' }, p1363)).toBe(true);
    // openssl reads DER only: our P1363 -> DER conversion must give a signature it accepts.
    expect(opensslVerify(key, hash, p1363ToDer(p1363)).stdout).toContain('Verified OK');
  });

  it('ok Ed25519 signs the message itself through the signer (CKM_EDDSA) and openssl verifies', async () => {
    const key = keys.get('Ed25519') as HsmKeyInfo;
    const sig = await signer.sign(key.hsmKeyId, { kind: 'eddsa' }, message);
    const pub = scratch.write('ed.pem', toPem('PUBLIC KEY', key.spki));
    const r = run('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', scratch.write('m.bin', message), '-sigfile', scratch.write('s.bin', sig)]);
    expect(r.stdout).toContain('Signature Verified Successfully');
  });

  const sha256 = createHash('sha256').update('x').digest();
  const sha384 = createHash('sha384').update('x').digest();
  it.each([
    ['fail digest shorter than the key hash', 'RSA-2048', { input: sha256.subarray(0, 20), inputPadding: 'none' }, 'digest_length_mismatch'],
    ['fail SHA-384 digest for a SHA-256 key', 'EC-P256', { input: sha384, inputPadding: 'none' }, 'digest_length_mismatch'],
    ['fail PSS digest of the wrong length', 'RSA-2048', { input: sha384, inputPadding: 'pss' }, 'digest_length_mismatch'],
    ['fail DigestInfo naming another hash', 'RSA-2048', { input: encodeDigestInfo('SHA-384', sha384), inputPadding: 'digestinfo' }, 'digestinfo_hash_mismatch'],
    ['fail DigestInfo that is a bare digest', 'RSA-2048', { input: sha256, inputPadding: 'digestinfo' }, 'malformed_digestinfo'],
    ['fail DigestInfo with trailing bytes', 'RSA-2048', { input: Buffer.concat([encodeDigestInfo('SHA-256', sha256), Buffer.from([0])]), inputPadding: 'digestinfo' }, 'malformed_digestinfo'],
    ['fail DigestInfo with a truncated digest', 'RSA-2048', { input: Buffer.from(encodeDigestInfo('SHA-256', sha256)).subarray(0, 40), inputPadding: 'digestinfo' }, 'malformed_digestinfo'],
    ['fail DigestInfo with SHA-1', 'RSA-2048', { input: Buffer.from('3021300906052b0e03021a05000414' + '00'.repeat(20), 'hex'), inputPadding: 'digestinfo' }, 'malformed_digestinfo'],
    ['fail PSS with an EC key', 'EC-P256', { input: sha256, inputPadding: 'pss' }, 'padding_not_supported_for_key'],
    ['fail DigestInfo with an EC key', 'EC-P256', { input: encodeDigestInfo('SHA-256', sha256), inputPadding: 'digestinfo' }, 'padding_not_supported_for_key'],
    ['fail any digest with an Ed25519 key', 'Ed25519', { input: sha256, inputPadding: 'none' }, 'message_required'],
  ] as const)('%s', async (_n, alg, req, code) => {
    const spy = jest.spyOn(signer, 'sign');
    const err = await signDigest(signer, keys.get(alg) as HsmKeyInfo, { ...req, input: new Uint8Array(req.input) }).catch((e) => e);
    const calls = spy.mock.calls.length;
    spy.mockRestore();
    expect(calls).toBe(0);
    expect(err).toBeInstanceOf(PkiError);
    expect(err.code).toBe(code);
    expect(err.status).toBe(400);
  });
});

describe(signMessage.name, () => {
  let signer: Pkcs11Signer;
  const keys = new Map<KeyAlgorithm, HsmKeyInfo>();
  const scratch = new Scratch();

  beforeAll(async () => {
    const token = createTempToken('message');
    signer = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 1 });
    for (const algorithm of ['EC-P256', 'RSA-2048', 'Ed25519'] as KeyAlgorithm[]) keys.set(algorithm, await signer.generateKey({ algorithm, label: algorithm }));
  });
  afterAll(async () => {
    await signer.close();
    scratch.remove();
  });

  it.each([
    ['ok one byte', Buffer.from([0])],
    ['ok a short text', Buffer.from('firmware manifest 1.2.3')],
    ['ok exactly the cap', Buffer.alloc(MAX_SIGN_MESSAGE_BYTES, 0xa5)],
  ])('%s: a PureEdDSA signature Node and openssl verify, and only for that message', async (_n, message) => {
    const key = keys.get('Ed25519') as HsmKeyInfo;
    const sig = await signMessage(signer, key, new Uint8Array(message));
    const pub = createPublicKey({ key: Buffer.from(key.spki), format: 'der', type: 'spki' });
    expect(sig).toHaveLength(64);
    expect(nodeVerify(null, message, pub, sig)).toBe(true);
    expect(nodeVerify(null, Buffer.concat([message, Buffer.from([1])]), pub, sig)).toBe(false);
    const r = run('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', scratch.write('ed.pem', toPem('PUBLIC KEY', key.spki)), '-rawin',
      '-in', scratch.write('m.bin', message), '-sigfile', scratch.write('s.bin', sig)]);
    expect(r.stdout).toContain('Signature Verified Successfully');
  });

  it.each([
    ['fail a message for an ECDSA key', 'EC-P256', 1, 'message_not_supported_for_key', 400],
    ['fail a message for an RSA key', 'RSA-2048', 1, 'message_not_supported_for_key', 400],
    ['fail one byte over the cap', 'Ed25519', MAX_SIGN_MESSAGE_BYTES + 1, 'message_too_large', 413],
  ] as const)('%s: %s before the HSM is asked', async (_n, alg, size, code, status) => {
    const spy = jest.spyOn(signer, 'sign');
    const err = await signMessage(signer, keys.get(alg) as HsmKeyInfo, new Uint8Array(size)).catch((e) => e);
    const calls = spy.mock.calls.length;
    spy.mockRestore();
    expect(calls).toBe(0);
    expect(err).toBeInstanceOf(PkiError);
    expect([err.code, err.status]).toEqual([code, status]);
  });
});
