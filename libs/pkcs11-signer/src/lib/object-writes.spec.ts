import * as pkcs11js from 'pkcs11js';
import { X509Certificate, randomBytes } from 'node:crypto';
import { createCaCertificate, createCrl, createRootCertificate, ecParamsFor, type HsmKeyInfo, type IssuedCertificate } from '@keyserver/pki';
import { createTempToken, type TempToken } from '../testing/temp-token';
import { type Pkcs11Signer, createPkcs11Signer } from './pkcs11-signer';

const DAY = 86_400_000;

// Two rotations of one key at once: the key-lifecycle e2e once got 200 + 502 hsm_operation_failed instead of 200 +
// 409. Each rotation generates a key pair, then has it certified by the issuer (a signature in a sign lane). The
// signer takes object writes in turn, so the second key pair is written while the first rotation signs; when a
// signature runs on a session that has not cached its key's handle, it looks the key up (C_FindObjectsInit), and
// SoftHSM then re-reads every object file that changed - also the one C_GenerateKeyPair is writing in another
// thread, unprotected by its fcntl locks (softhsm/SoftHSMv2#573). The reader finds it empty or half written, marks it
// invalid, and the generation fails (CKR_GENERAL_ERROR, CKR_FUNCTION_FAILED, CKR_TEMPLATE_INCONSISTENT), at times
// leaving an object without attributes on the token. Lookups come here from every first use of a key on a session
// (the issuer's, the new key's first CRL, keys looked up by id) while the rotations run.
describe('key pair generation while keys are looked up (concurrent rotations)', () => {
  const ROTATION_PAIRS = 40;
  const now = new Date();
  let token: TempToken;
  let signer: Pkcs11Signer;
  let root: { key: HsmKeyInfo; cert: IssuedCertificate };
  let p11: pkcs11js.PKCS11;
  let session: Buffer;
  /** Key pairs made behind the signer's back: no session of the signer has their handles cached. */
  const uncached: string[] = [];

  beforeAll(async () => {
    token = createTempToken('writes');
    // The API's pool and, on 2 cores, its lanes.
    signer = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 4, signWorkers: 2 });
    const rootKey = await signer.generateKey({ algorithm: 'EC-P384', label: 'root' });
    root = { key: rootKey, cert: await createRootCertificate(signer, rootKey, { subject: { commonName: 'Rotation Root' }, notBefore: new Date(+now - DAY), notAfter: new Date(+now + 3650 * DAY) }) };
    // A session of its own on the same (initialised, logged-in) module: keys made behind the signer's back, and a
    // count of the objects on the token.
    p11 = new pkcs11js.PKCS11();
    p11.load(token.module);
    const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === token.label) as Buffer;
    session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    for (let i = 0; i < 16; i++) {
      const id = randomBytes(16);
      const common = [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_LABEL, value: `other-${i}` },
        { type: pkcs11js.CKA_ID, value: id },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_EC },
      ];
      p11.C_GenerateKeyPair(
        session,
        { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
        [...common, { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY }, { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from(ecParamsFor('EC-P256')) }],
        [...common, { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_PRIVATE, value: true }, { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_SIGN, value: true }],
      );
      uncached.push(id.toString('hex'));
    }
  });
  afterAll(async () => {
    p11?.C_CloseSession(session);
    await signer?.close();
    p11?.close();
  });

  const objectsOnToken = (): number => {
    p11.C_FindObjectsInit(session, []);
    let n = 0;
    for (let batch; (batch = p11.C_FindObjects(session, 64)).length > 0; ) n += batch.length;
    p11.C_FindObjectsFinal(session);
    return n;
  };
  const count = (into: Record<string, number>, p: Promise<unknown>) =>
    p.then(
      () => (into['ok'] = (into['ok'] ?? 0) + 1),
      (e: { code?: string; message?: string }) => {
        // The code and, for a failure, what the token answered (e.g. "hsm_operation_failed: CKR_GENERAL_ERROR").
        const k = e.code === 'key_not_found' ? e.code : String(e.message ?? e.code).slice(0, 80);
        into[k] = (into[k] ?? 0) + 1;
      },
    );
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

  it('ok a signature whose key handle its session has not cached waits for the key pair generation in flight; its lookup would break it', async () => {
    const key = uncached[0];
    // Read once: the signer knows the key now, and one session (on top of the idle ones) has its handle cached.
    await signer.getKey(key);
    const order: string[] = [];
    // The generation takes that session; an RSA key pair takes long enough to be in flight at the next turn.
    const generated = signer.generateKey({ algorithm: 'RSA-2048', label: 'slow' }).then((k) => (order.push('generated'), k));
    await nextTurn();
    // Straight to a lane (nothing to read), on another session: the handle is looked up, after the generation.
    const signed = signer.sign(key, { kind: 'ecdsa' }, randomBytes(32)).then(() => order.push('signed'));
    const [made] = await Promise.all([generated, signed]);
    expect(order).toEqual(['generated', 'signed']);
    await signer.destroyKey(made.hsmKeyId);
  });

  it(`ok ${ROTATION_PAIRS} pairs of rotations at once while keys are looked up: every key pair is generated and certified, no object is left behind`, async () => {
    const before = objectsOnToken();
    const rootPublicKey = new X509Certificate(root.cert.certificatePem).publicKey;
    /**
     * KeyLifecycleService.newVersion's HSM work: a new key pair certified by its issuer (the ROOT), then, as the
     * winner's first use of it, a CRL the new version signs. The loser would destroy its key pair; here both go, so
     * that the token ends as it began.
     */
    const rotate = async () => {
      const made = await signer.generateKey({ algorithm: 'EC-P256', label: 'ca-dev' });
      try {
        const ca = await createCaCertificate(signer, { key: root.key, certificate: root.cert.certificatePem }, made, {
          subject: { commonName: 'Rotated CA' },
          notBefore: now,
          notAfter: new Date(+now + 50 * DAY),
          crlDistributionPointUrl: 'https://keyserver.test/api/v1/crl/root/versions/1',
        });
        if (!new X509Certificate(ca.certificatePem).verify(rootPublicKey)) throw new Error('the certificate does not verify');
        await createCrl(signer, made, ca.certificatePem, [], 1, now, new Date(+now + DAY));
      } finally {
        await signer.destroyKey(made.hsmKeyId);
      }
    };

    const rotations: Record<string, number> = {};
    const lookups: Record<string, number> = {};
    const signatures: Record<string, number> = {};
    let done = false;
    // A key id of no key is looked up on every call. Each turn lets the event loop run (a refused lookup settles in
    // microtasks only, which would starve the key pair generation's completion).
    const lookingUp = (async () => {
      for (; !done; await nextTurn()) await count(lookups, signer.getKey(randomBytes(16).toString('hex')));
    })();
    // Signatures in the lanes by other keys: the first one per key and session looks its handle up, later ones sign
    // with the cached handle (and never wait for a key pair generation). A key a few turns each.
    const signing = (async () => {
      for (let j = 0; !done; j++, await nextTurn()) await count(signatures, signer.sign(uncached[Math.floor(j / 4) % uncached.length], { kind: 'ecdsa' }, randomBytes(32)));
    })();
    try {
      for (let i = 0; i < ROTATION_PAIRS; i++) await Promise.all([count(rotations, rotate()), count(rotations, rotate())]);
    } finally {
      done = true;
      await Promise.all([lookingUp, signing]);
    }

    // One comparison, so that a failure shows it all: how rotations, lookups and signatures ended, what was left.
    expect({ rotations, lookups: Object.keys(lookups), signatures: Object.keys(signatures), objectsLeftBehind: objectsOnToken() - before }).toEqual({
      rotations: { ok: 2 * ROTATION_PAIRS },
      lookups: ['key_not_found'],
      signatures: ['ok'],
      objectsLeftBehind: 0,
    });
    expect(lookups['key_not_found']).toBeGreaterThan(ROTATION_PAIRS);
  }, 60_000);
});
