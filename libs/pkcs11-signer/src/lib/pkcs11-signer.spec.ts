import * as pkcs11js from 'pkcs11js';
import { createPublicKey, createHash, verify as nodeVerify } from 'node:crypto';
import { existsSync } from 'node:fs';
import { KEY_ALGORITHMS, HsmKeyInfo, encodeDigestInfo } from '@keyserver/pki';
import { createTempToken, TempToken } from '../testing/temp-token';
import { run, Scratch } from '../testing/tools';
import { HsmError } from './hsm-error';
import { Pkcs11Signer, createPkcs11Signer } from './pkcs11-signer';

describe(Pkcs11Signer.name, () => {
  let token: TempToken;
  let idleToken: TempToken;
  let emptyToken: TempToken;
  let signer: Pkcs11Signer;
  const keys = new Map<string, HsmKeyInfo>();
  const scratch = new Scratch();

  beforeAll(async () => {
    token = createTempToken('signer');
    // Login state is per application and token: a token nobody logs into lets the wrong-PIN case reach C_Login.
    idleToken = createTempToken('idle');
    // Tokens must exist before the module is initialised in this process (SoftHSM reads its slots then).
    emptyToken = createTempToken('empty');
    signer = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 4 });
    for (const algorithm of KEY_ALGORITHMS) keys.set(algorithm, await signer.generateKey({ algorithm, label: `k-${algorithm}` }));
  });

  afterAll(async () => {
    await signer.close();
    scratch.remove();
  });

  function p11tool(...args: string[]) {
    return run('pkcs11-tool', ['--module', token.module, '--token-label', token.label, '--login', '--pin', token.pin, ...args], { env: token.env });
  }

  it.each([...KEY_ALGORITHMS])('ok generates a %s key whose SPKI Node can import', (algorithm) => {
    const key = keys.get(algorithm) as HsmKeyInfo;
    expect(key.algorithm).toBe(algorithm);
    expect(key.hsmKeyId).toMatch(/^[0-9a-f]{32}$/);
    const pub = createPublicKey({ key: Buffer.from(key.spki), format: 'der', type: 'spki' });
    if (algorithm.startsWith('RSA-')) expect(pub.asymmetricKeyDetails?.modulusLength).toBe(Number(algorithm.slice(4)));
    if (algorithm === 'Ed25519') expect(pub.asymmetricKeyType).toBe('ed25519');
    if (algorithm.startsWith('EC-')) expect(pub.asymmetricKeyDetails?.namedCurve).toBe(({ 'EC-P256': 'prime256v1', 'EC-P384': 'secp384r1', 'EC-P521': 'secp521r1' } as Record<string, string>)[algorithm]);
  });

  it('stores private keys as sensitive, never extractable and sign-only (pkcs11-tool)', () => {
    const r = p11tool('--list-objects', '--type', 'privkey');
    expect(r.status).toBe(0);
    const objects = r.stdout.split(/\n(?=Private Key Object)/).filter((o) => o.startsWith('Private Key Object'));
    expect(objects).toHaveLength(KEY_ALGORITHMS.length);
    for (const o of objects) {
      expect(o).toMatch(/Access:\s+sensitive, always sensitive, never extractable, local/);
      expect(o).toMatch(/Usage:\s+sign\n/);
    }
  });

  it('refuses to export a private key with pkcs11-tool --read-object', () => {
    for (const key of keys.values()) {
      const out = scratch.path(`out-${key.hsmKeyId}.bin`);
      const r = p11tool('--read-object', '--type', 'privkey', '--id', key.hsmKeyId, '--output-file', out);
      // opensc 0.23 exits 0 here but writes nothing: the value is not readable.
      expect(`${r.stdout}${r.stderr}`).toMatch(/reading private keys not \(yet\) supported/);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('refuses C_GetAttributeValue of CKA_VALUE and CKA_PRIVATE_EXPONENT', () => {
    const p11 = new pkcs11js.PKCS11();
    p11.load(token.module);
    try {
      p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (e) {
      expect((e as pkcs11js.Pkcs11Error).code).toBe(pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED);
    }
    const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === token.label) as Buffer;
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    const find = (id: string) => {
      p11.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_ID, value: Buffer.from(id, 'hex') },
      ]);
      const [h] = p11.C_FindObjects(session, 1);
      p11.C_FindObjectsFinal(session);
      return h;
    };
    const rsa = find((keys.get('RSA-2048') as HsmKeyInfo).hsmKeyId);
    const ec = find((keys.get('EC-P256') as HsmKeyInfo).hsmKeyId);
    expect(rsa).toBeDefined();
    const code = (fn: () => unknown) => {
      try {
        fn();
        return 0;
      } catch (e) {
        // Some pkcs11js calls throw a plain Error whose message carries 'CKR_NAME:code'.
        return (e as pkcs11js.Pkcs11Error).code ?? Number(/CKR_\w+:(\d+)/.exec(String(e))?.[1]);
      }
    };
    expect(code(() => p11.C_GetAttributeValue(session, rsa, [{ type: pkcs11js.CKA_PRIVATE_EXPONENT }]))).toBe(pkcs11js.CKR_ATTRIBUTE_SENSITIVE);
    expect(code(() => p11.C_GetAttributeValue(session, ec, [{ type: pkcs11js.CKA_VALUE }]))).toBe(pkcs11js.CKR_ATTRIBUTE_SENSITIVE);
    const [ext, sens, dec, unwrap, derive] = p11.C_GetAttributeValue(session, rsa, [
      { type: pkcs11js.CKA_EXTRACTABLE },
      { type: pkcs11js.CKA_SENSITIVE },
      { type: pkcs11js.CKA_DECRYPT },
      { type: pkcs11js.CKA_UNWRAP },
      { type: pkcs11js.CKA_DERIVE },
    ]);
    expect([ext, sens, dec, unwrap, derive].map((a) => (a.value as Buffer)[0])).toEqual([0, 1, 0, 0, 0]);
    // Once false, CKA_EXTRACTABLE cannot be switched back on.
    expect(code(() => p11.C_SetAttributeValue(session, rsa, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }]))).toBe(pkcs11js.CKR_ATTRIBUTE_READ_ONLY);
    expect(code(() => p11.C_SetAttributeValue(session, rsa, [{ type: pkcs11js.CKA_SENSITIVE, value: false }]))).toBe(pkcs11js.CKR_ATTRIBUTE_READ_ONLY);
    p11.C_CloseSession(session);
  });

  it('finds a key again by CKA_ID with a fresh signer', async () => {
    const other = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 1 });
    const key = keys.get('EC-P384') as HsmKeyInfo;
    const again = await other.getKey(key.hsmKeyId);
    expect(again.algorithm).toBe('EC-P384');
    expect(again.label).toBe('k-EC-P384');
    expect(Buffer.from(again.spki).equals(Buffer.from(key.spki))).toBe(true);
    // Closing finalises the shared module; the main signer recovers on its next call.
    await other.close();
    await signer.health();
  });

  it('signs a DigestInfo with CKM_RSA_PKCS that Node verifies', async () => {
    const key = keys.get('RSA-3072') as HsmKeyInfo;
    const msg = Buffer.from('hello');
    const sig = await signer.sign(key.hsmKeyId, { kind: 'rsa-pkcs1' }, encodeDigestInfo('SHA-256', createHash('sha256').update(msg).digest()));
    expect(nodeVerify('sha256', msg, createPublicKey({ key: Buffer.from(key.spki), format: 'der', type: 'spki' }), sig)).toBe(true);
  });

  it.each([
    ['fail unknown key id', 'ab'.repeat(16), { kind: 'ecdsa' }, 'key_not_found'],
    ['fail malformed key id', 'not-hex', { kind: 'ecdsa' }, 'key_not_found'],
  ] as const)('%s', async (_n, id, mech, code) => {
    await expect(signer.sign(id, mech, new Uint8Array(32))).rejects.toMatchObject({ code, status: 404 });
  });

  it.each([
    ['fail ECDSA with an RSA key', 'RSA-2048', { kind: 'ecdsa' }, 32, 'mechanism_not_supported'],
    ['fail PSS with an EC key', 'EC-P256', { kind: 'rsa-pss', hash: 'SHA-256' }, 32, 'mechanism_not_supported'],
    ['fail EdDSA with an EC key', 'EC-P256', { kind: 'eddsa' }, 32, 'mechanism_not_supported'],
    ['fail ECDSA with an Ed25519 key', 'Ed25519', { kind: 'ecdsa' }, 32, 'mechanism_not_supported'],
    ['fail PSS digest of the wrong length', 'RSA-2048', { kind: 'rsa-pss', hash: 'SHA-256' }, 48, 'invalid_sign_input'],
    ['fail PKCS#1 input longer than the modulus allows', 'RSA-2048', { kind: 'rsa-pkcs1' }, 250, 'invalid_sign_input'],
    ['fail empty input', 'EC-P256', { kind: 'ecdsa' }, 0, 'invalid_sign_input'],
  ] as const)('%s', async (_n, alg, mech, len, code) => {
    const key = keys.get(alg) as HsmKeyInfo;
    const err = await signer.sign(key.hsmKeyId, mech, new Uint8Array(len)).catch((e) => e);
    expect(err).toBeInstanceOf(HsmError);
    expect(err.code).toBe(code);
    expect(err.status).toBe(400);
  });

  it('destroys both objects of a key pair and nothing else; destroying again is a no-op', async () => {
    const doomed = await signer.generateKey({ algorithm: 'EC-P256', label: 'doomed' });
    await signer.sign(doomed.hsmKeyId, { kind: 'ecdsa' }, new Uint8Array(32).fill(3)); // its handle is now cached
    const idsOnToken = () => [...p11tool('--list-objects').stdout.matchAll(/ID:\s+([0-9a-f]+)/g)].map((m) => m[1]);
    expect(idsOnToken().filter((id) => id === doomed.hsmKeyId)).toHaveLength(2);
    const before = idsOnToken().length;

    await signer.destroyKey(doomed.hsmKeyId);
    expect(idsOnToken()).not.toContain(doomed.hsmKeyId);
    expect(idsOnToken()).toHaveLength(before - 2);
    await expect(signer.getKey(doomed.hsmKeyId)).rejects.toMatchObject({ code: 'key_not_found' });
    await expect(signer.sign(doomed.hsmKeyId, { kind: 'ecdsa' }, new Uint8Array(32))).rejects.toMatchObject({ code: 'key_not_found' });
    await signer.destroyKey(doomed.hsmKeyId);
    const other = keys.get('EC-P256') as HsmKeyInfo;
    expect(await signer.sign(other.hsmKeyId, { kind: 'ecdsa' }, new Uint8Array(32).fill(4))).toHaveLength(64);
  });

  it('says whether the token holds any key: an empty token does not, one with keys does (the bootstrap checks it)', async () => {
    const fresh = await createPkcs11Signer({ module: emptyToken.module, tokenLabel: emptyToken.label, pin: emptyToken.pin, poolSize: 1 });
    try {
      expect(await fresh.holdsKeys()).toBe(false);
      const k = await fresh.generateKey({ algorithm: 'EC-P256', label: 'first' });
      expect(await fresh.holdsKeys()).toBe(true);
      await fresh.destroyKey(k.hsmKeyId);
      expect(await fresh.holdsKeys()).toBe(false);
    } finally {
      await fresh.close();
    }
    expect(await signer.holdsKeys()).toBe(true);
  });

  it('rejects an unknown key algorithm', async () => {
    await expect(signer.generateKey({ algorithm: 'RSA-1024' as never, label: 'x' })).rejects.toMatchObject({ code: 'invalid_key_spec' });
  });

  it('fails with token_not_found for an unknown token label', async () => {
    await expect(createPkcs11Signer({ module: token.module, tokenLabel: 'no-such-token', pin: token.pin })).rejects.toMatchObject({ code: 'token_not_found', status: 503 });
  });

  it('fails with hsm_unavailable when the module cannot be loaded', async () => {
    await expect(createPkcs11Signer({ module: '/nonexistent/libpkcs11.so', tokenLabel: token.label, pin: token.pin })).rejects.toMatchObject({ code: 'hsm_unavailable', status: 503 });
  });

  it('generates and destroys keys started all at once (the SoftHSM object store fails concurrent writes: the signer takes them in turn)', async () => {
    const algorithms = Array.from({ length: 8 }, () => ['EC-P256', 'EC-P384', 'Ed25519', 'EC-P521', 'RSA-2048'] as const).flat();
    const made = await Promise.all(algorithms.map((algorithm, i) => signer.generateKey({ algorithm, label: `burst-${i}` })));
    expect(made.map((k) => k.algorithm)).toEqual(algorithms);
    for (const k of made.filter((m) => m.algorithm === 'EC-P256')) {
      const sig = await signer.sign(k.hsmKeyId, { kind: 'ecdsa' }, createHash('sha256').update('burst').digest());
      expect(nodeVerify('sha256', Buffer.from('burst'), { key: createPublicKey({ key: Buffer.from(k.spki), format: 'der', type: 'spki' }), dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    }
    await Promise.all(made.map((k) => signer.destroyKey(k.hsmKeyId)));
    for (const k of made) await expect(signer.getKey(k.hsmKeyId)).rejects.toMatchObject({ code: 'key_not_found' });
  });

  it('serves 200 concurrent signatures over a pool of 4 sessions', async () => {
    const key = keys.get('EC-P256') as HsmKeyInfo;
    const pub = createPublicKey({ key: Buffer.from(key.spki), format: 'der', type: 'spki' });
    const digests = Array.from({ length: 200 }, (_, i) => createHash('sha256').update(`m${i}`).digest());
    const sigs = await Promise.all(digests.map((d) => signer.sign(key.hsmKeyId, { kind: 'ecdsa' }, d)));
    sigs.forEach((sig, i) => {
      expect(nodeVerify('sha256', Buffer.from(`m${i}`), { key: pub, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true);
    });
  });

  describe('recovery', () => {
    let p11: pkcs11js.PKCS11;
    beforeAll(() => {
      p11 = new pkcs11js.PKCS11();
      p11.load(token.module);
    });
    afterAll(() => p11.close());

    it('re-initialises after C_Finalize behind its back and the next sign succeeds', async () => {
      const key = keys.get('EC-P256') as HsmKeyInfo;
      const before = signer.recoveries;
      p11.C_Finalize();
      const sig = await signer.sign(key.hsmKeyId, { kind: 'ecdsa' }, new Uint8Array(32).fill(7));
      expect(sig).toHaveLength(64);
      expect(signer.recoveries).toBe(before + 1);
    });

    it('re-opens its sessions after C_CloseAllSessions, also under concurrent load', async () => {
      const key = keys.get('RSA-2048') as HsmKeyInfo;
      const before = signer.recoveries;
      try {
        p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      } catch {
        // already initialised by the signer
      }
      const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === token.label) as Buffer;
      p11.C_CloseAllSessions(slot);
      const di = encodeDigestInfo('SHA-256', new Uint8Array(32).fill(1));
      const sigs = await Promise.all(Array.from({ length: 16 }, () => signer.sign(key.hsmKeyId, { kind: 'rsa-pkcs1' }, di)));
      expect(sigs.every((s) => s.length === 256)).toBe(true);
      expect(signer.recoveries).toBe(before + 1);
      await signer.health();
    });
  });

  it('refuses calls after close with signer_closed', async () => {
    const s = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 1 });
    await s.close();
    await expect(s.health()).rejects.toMatchObject({ code: 'signer_closed' });
    await signer.health();
  });

  it('fails with hsm_login_failed for a wrong PIN', async () => {
    // Closing the probe signer above finalised the module; the main signer must recover before logging in is tested.
    await signer.health();
    await expect(createPkcs11Signer({ module: idleToken.module, tokenLabel: idleToken.label, pin: 'wrong-pin', poolSize: 1 })).rejects.toMatchObject({ code: 'hsm_login_failed', status: 503 });
  });
});
