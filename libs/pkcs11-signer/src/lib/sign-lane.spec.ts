import * as pkcs11js from 'pkcs11js';
import { createHash, randomBytes } from 'node:crypto';
import { HsmKeyInfo, KeyAlgorithm, encodeDigestInfo, p1363ToDer, toPem } from '@keyserver/pki';
import { createTempToken, TempToken } from '../testing/temp-token';
import { Scratch, run } from '../testing/tools';
import { Pkcs11Signer, createPkcs11Signer } from './pkcs11-signer';
import { LANE_DATA_BYTES, LANE_MAX_ITEMS, SignLane } from './sign-lane';

// Signatures run in worker threads (SignLane), each batch on a session lent from the pool: EC/EdDSA batched, RSA batched
// only behind busy lanes (up to 4).
describe(SignLane.name, () => {
  let token: TempToken;
  let signer: Pkcs11Signer;
  const keys = new Map<KeyAlgorithm, HsmKeyInfo>();
  const scratch = new Scratch();

  beforeAll(async () => {
    token = createTempToken('lanes');
    signer = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 3, signWorkers: 2 });
    for (const algorithm of ['EC-P256', 'EC-P384', 'EC-P521', 'Ed25519', 'RSA-2048'] as KeyAlgorithm[]) {
      keys.set(algorithm, await signer.generateKey({ algorithm, label: algorithm }));
    }
  });
  afterAll(async () => {
    await signer.close();
    scratch.remove();
  });

  const key = (alg: KeyAlgorithm) => keys.get(alg) as HsmKeyInfo;
  const digestOf = (alg: KeyAlgorithm, msg: Buffer) => createHash({ 'EC-P256': 'sha256', 'EC-P384': 'sha384', 'EC-P521': 'sha512' }[alg as string] ?? 'sha256').update(msg).digest();

  /** openssl checks an ECDSA signature (P1363 from PKCS#11, DER for openssl) over the raw digest. */
  function opensslVerifyDigest(k: HsmKeyInfo, digest: Uint8Array, p1363: Uint8Array, name: string) {
    const pub = scratch.write(`${k.hsmKeyId}.pem`, toPem('PUBLIC KEY', k.spki));
    return run('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-in', scratch.write(`${name}.dgst`, digest), '-sigfile', scratch.write(`${name}.sig`, p1363ToDer(p1363))]);
  }

  it.each(['EC-P256', 'EC-P384', 'EC-P521'] as const)('ok %s signatures made in the lanes verify with openssl', async (alg) => {
    const before = signer.laneSignatures;
    const msgs = Array.from({ length: 24 }, (_, i) => Buffer.from(`${alg} message ${i}`));
    const sigs = await Promise.all(msgs.map((m) => signer.sign(key(alg).hsmKeyId, { kind: 'ecdsa' }, digestOf(alg, m))));
    expect(signer.laneSignatures - before).toBe(msgs.length);
    // A sample through openssl (each run is a process); Node checks the rest below.
    for (const i of [0, 11, 23]) {
      const r = opensslVerifyDigest(key(alg), digestOf(alg, msgs[i]), sigs[i], `${alg}-${i}`);
      expect(r.stdout).toContain('Signature Verified Successfully');
    }
    // Each signature belongs to its own request: a batch never mixes up results.
    const wrong = opensslVerifyDigest(key(alg), digestOf(alg, msgs[1]), sigs[0], `${alg}-swapped`);
    expect(wrong.status).not.toBe(0);
  });

  it('ok Ed25519 signatures made in the lanes verify with openssl', async () => {
    const msg = Buffer.from('firmware manifest');
    const before = signer.laneSignatures;
    const sig = await signer.sign(key('Ed25519').hsmKeyId, { kind: 'eddsa' }, msg);
    expect(signer.laneSignatures).toBe(before + 1);
    const pub = scratch.write('ed.pem', toPem('PUBLIC KEY', key('Ed25519').spki));
    const r = run('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', scratch.write('ed.msg', msg), '-sigfile', scratch.write('ed.sig', sig)]);
    expect(r.stdout).toContain('Signature Verified Successfully');
  });

  it.each([
    ['PKCS#1 v1.5', { kind: 'rsa-pkcs1' }, []],
    ['PSS', { kind: 'rsa-pss', hash: 'SHA-256' }, ['-pkeyopt', 'rsa_padding_mode:pss', '-pkeyopt', 'rsa_pss_saltlen:32']],
  ] as const)('ok RSA %s signatures made in the lanes verify with openssl', async (name, mech, opts) => {
    const k = key('RSA-2048');
    const d = createHash('sha256').update(`rsa ${name}`).digest();
    const before = signer.laneSignatures;
    const input = mech.kind === 'rsa-pkcs1' ? encodeDigestInfo('SHA-256', d) : d;
    const sigs = await Promise.all([0, 1, 2].map(() => signer.sign(k.hsmKeyId, mech, input)));
    expect(signer.laneSignatures - before).toBe(3);
    const pub = scratch.write('rsa.pem', toPem('PUBLIC KEY', k.spki));
    for (const [i, sig] of sigs.entries()) {
      const args = ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-in', scratch.write(`rsa-${i}.dgst`, d), '-sigfile', scratch.write(`rsa-${i}.sig`, sig), '-pkeyopt', 'digest:sha256', ...opts];
      expect(run('openssl', args).stdout).toContain('Signature Verified Successfully');
    }
  });

  it('serves 1000 concurrent P-256 signatures mixed with RSA on a pool of 3 sessions, each verified', async () => {
    const before = signer.laneSignatures;
    const { createPublicKey, verify } = await import('node:crypto');
    const ec = createPublicKey({ key: Buffer.from(key('EC-P256').spki), format: 'der', type: 'spki' });
    const rsa = createPublicKey({ key: Buffer.from(key('RSA-2048').spki), format: 'der', type: 'spki' });
    const msgs = Array.from({ length: 1000 }, (_, i) => Buffer.from(`m${i}`));
    const ecSigs = msgs.map((m) => signer.sign(key('EC-P256').hsmKeyId, { kind: 'ecdsa' }, createHash('sha256').update(m).digest()));
    const rsaSigs = msgs
      .slice(0, 8)
      .map((m) => signer.sign(key('RSA-2048').hsmKeyId, { kind: 'rsa-pkcs1' }, encodeDigestInfo('SHA-256', createHash('sha256').update(m).digest())));
    const [ecOut, rsaOut] = await Promise.all([Promise.all(ecSigs), Promise.all(rsaSigs)]);
    ecOut.forEach((sig, i) => expect(verify('sha256', msgs[i], { key: ec, dsaEncoding: 'ieee-p1363' }, sig)).toBe(true));
    rsaOut.forEach((sig, i) => expect(verify('sha256', msgs[i], rsa, sig)).toBe(true));
    expect(signer.laneSignatures - before).toBe(1008);
  });

  it('posts RSA signatures to idle lanes first, then as a busy lane\'s second batch, up to 4 per batch; an EC batch only to an idle lane', async () => {
    const { createPublicKey, verify } = await import('node:crypto');
    const rsaKey = createPublicKey({ key: Buffer.from(key('RSA-2048').spki), format: 'der', type: 'spki' });
    const msg = Buffer.from('pipelined');
    const input = encodeDigestInfo('SHA-256', createHash('sha256').update(msg).digest());
    const rsaBurst = async (n: number) => {
      const batches = signer.laneBatches;
      const sigs = Array.from({ length: n }, () => signer.sign(key('RSA-2048').hsmKeyId, { kind: 'rsa-pkcs1' }, input));
      // The pump runs as a microtask.
      await Promise.resolve();
      const out = { queued: signer.poolStats().queued, posted: signer.laneBatches - batches };
      (await Promise.all(sigs)).forEach((sig) => expect(verify('sha256', msg, rsaKey, sig)).toBe(true));
      return { ...out, batches: signer.laneBatches - batches };
    };
    // Two signatures, two idle lanes: one each, in parallel.
    expect(await rsaBurst(2)).toEqual({ queued: 0, posted: 2, batches: 2 });
    // Seven over 2 lanes x 2 slots: 2 + 2 + 2 + 1, nothing waits.
    expect(await rsaBurst(7)).toEqual({ queued: 0, posted: 4, batches: 4 });
    // Twenty: four batches of 4 out, 4 wait for slots to free; spread over the slots free at that moment, they go in
    // 1 to 4 more batches depending on how the slots free (a loaded CI machine frees them one at a time: 7 seen).
    const twenty = await rsaBurst(20);
    expect(twenty).toMatchObject({ queued: 4, posted: 4 });
    expect(twenty.batches).toBeGreaterThanOrEqual(5);
    expect(twenty.batches).toBeLessThanOrEqual(8);

    const ec = Array.from({ length: 40 }, (_, i) => signer.sign(key('EC-P256').hsmKeyId, { kind: 'ecdsa' }, createHash('sha256').update(`e${i}`).digest()));
    await Promise.resolve();
    // One batch of 16 per idle lane; nothing queues behind a busy lane.
    expect(signer.poolStats().queued).toBe(40 - 2 * LANE_MAX_ITEMS);
    expect(await Promise.all(ec)).toHaveLength(40);
  });

  describe('recovery', () => {
    let p11: pkcs11js.PKCS11;
    beforeAll(() => {
      p11 = new pkcs11js.PKCS11();
      p11.load(token.module);
    });
    afterAll(() => p11.close());

    const slotOf = () => {
      try {
        p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      } catch {
        // already initialised by the signer
      }
      return p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === token.label) as Buffer;
    };
    const load = (n: number) => Promise.all(Array.from({ length: n }, () => signer.sign(key('EC-P256').hsmKeyId, { kind: 'ecdsa' }, randomBytes(32))));

    it('re-initialises once after C_Finalize behind its back while batches are queued, and every signature succeeds', async () => {
      const before = signer.recoveries;
      p11.C_Finalize();
      const sigs = await load(200);
      expect(sigs.every((s) => s.length === 64)).toBe(true);
      expect(signer.recoveries).toBe(before + 1);
    });

    it('re-opens its sessions after C_CloseAllSessions while 400 signatures are queued, and every signature succeeds', async () => {
      await load(8); // the lanes' sessions now hold cached key handles
      const before = signer.recoveries;
      const slot = slotOf();
      const running = load(400);
      // Synchronously, before the pump hands the queue to the workers. Closing sessions while another thread is inside
      // C_Sign on them is a use-after-free in SoftHSM (CKR_GENERAL_ERROR or a crash), and outside a test nobody but this
      // process can close its sessions; what production meets is a token that lost them, which this reproduces.
      p11.C_CloseAllSessions(slot);
      const sigs = await running;
      expect(sigs.every((s) => s.length === 64)).toBe(true);
      expect(signer.recoveries).toBe(before + 1);
      await signer.health();
    });

    it('finds the key again when its cached object handle went stale (object copied, original destroyed)', async () => {
      const k = await signer.generateKey({ algorithm: 'EC-P256', label: 'stale' });
      await load(4);
      await signer.sign(k.hsmKeyId, { kind: 'ecdsa' }, randomBytes(32)); // handle now cached in lane sessions
      const slot = slotOf();
      const s = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
      p11.C_FindObjectsInit(s, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_ID, value: Buffer.from(k.hsmKeyId, 'hex') },
      ]);
      const [original] = p11.C_FindObjects(s, 2);
      p11.C_FindObjectsFinal(s);
      p11.C_CopyObject(s, original, []);
      p11.C_DestroyObject(s, original);
      p11.C_CloseSession(s);
      const before = signer.recoveries;
      const d = randomBytes(32);
      const sigs = await Promise.all(Array.from({ length: 8 }, () => signer.sign(k.hsmKeyId, { kind: 'ecdsa' }, d)));
      const r = opensslVerifyDigest(k, d, sigs[7], 'stale');
      expect(r.stdout).toContain('Signature Verified Successfully');
      expect(signer.recoveries).toBe(before);
    });
  });

  describe('a lane on its own', () => {
    let p11: pkcs11js.PKCS11;
    let session: Buffer;
    let ecKey: Buffer;
    beforeAll(async () => {
      await signer.health();
      p11 = new pkcs11js.PKCS11();
      p11.load(token.module);
      try {
        p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      } catch {
        // already initialised (and logged in) by the signer: the lane relies on exactly that
      }
      const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === token.label) as Buffer;
      session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
      p11.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_ID, value: Buffer.from(key('EC-P256').hsmKeyId, 'hex') },
      ]);
      [ecKey] = p11.C_FindObjects(session, 1);
      p11.C_FindObjectsFinal(session);
    });
    afterAll(() => {
      p11.C_CloseSession(session);
      p11.close();
    });

    it('returns a signature or the CK_RV per item, in order', async () => {
      const lane = new SignLane({ pkcs11js: require.resolve('pkcs11js'), module: token.module });
      try {
        const d = createHash('sha256').update('lane').digest();
        const bogus = Buffer.alloc(8, 0x7f);
        const results = await lane.run(session, [
          { key: ecKey, mechanism: { mechanism: pkcs11js.CKM_ECDSA }, data: d, outLen: 64 },
          { key: bogus, mechanism: { mechanism: pkcs11js.CKM_ECDSA }, data: d, outLen: 64 },
          { key: ecKey, mechanism: { mechanism: pkcs11js.CKM_RSA_PKCS }, data: d, outLen: 64 },
          { key: ecKey, mechanism: { mechanism: pkcs11js.CKM_ECDSA }, data: d, outLen: 64 },
        ]);
        // The same calls on this thread name the CK_RVs the worker must report.
        const direct = (k: Buffer, mechanism: number) => {
          try {
            p11.C_SignInit(session, { mechanism }, k);
            p11.C_Sign(session, d, Buffer.alloc(64));
            return 'sig';
          } catch (e) {
            return (e as Error).message;
          }
        };
        const expected = [direct(ecKey, pkcs11js.CKM_ECDSA), direct(bogus, pkcs11js.CKM_ECDSA), direct(ecKey, pkcs11js.CKM_RSA_PKCS), 'sig'];
        expect(expected.slice(0, 3)).toEqual(['sig', expect.stringMatching(/^CKR_(OBJECT|KEY)_HANDLE_INVALID$/), expect.stringMatching(/^CKR_/)]);
        expect(results.map((r) => ('sig' in r ? 'sig' : r.message))).toEqual(expected);
        expect(results.filter((r) => 'rv' in r).map((r) => (r as { rv: number }).rv)).toEqual(
          expected.slice(1, 3).map((name) => (pkcs11js as unknown as Record<string, number>)[name]),
        );
        for (const r of [results[0], results[3]]) {
          expect(opensslVerifyDigest(key('EC-P256'), d, (r as { sig: Uint8Array }).sig, 'lane-direct').stdout).toContain('Signature Verified Successfully');
        }
      } finally {
        await lane.close();
      }
    });

    it('rejects and reports neverStarted when the worker cannot load pkcs11js', async () => {
      const lane = new SignLane({ pkcs11js: '/nonexistent/pkcs11js', module: token.module });
      await expect(lane.run(session, [{ key: ecKey, mechanism: { mechanism: pkcs11js.CKM_ECDSA }, data: new Uint8Array(32), outLen: 64 }])).rejects.toThrow(/Cannot find module|exited/);
      expect(lane.neverStarted).toBe(true);
      await lane.close();
    });

    it('refuses a batch over its item or byte limit', async () => {
      const lane = new SignLane({ pkcs11js: require.resolve('pkcs11js'), module: token.module });
      const item = { key: ecKey, mechanism: { mechanism: pkcs11js.CKM_ECDSA }, data: new Uint8Array(32), outLen: 64 };
      await expect(lane.run(session, Array.from({ length: LANE_MAX_ITEMS + 1 }, () => item))).rejects.toThrow('batch too large');
      await expect(lane.run(session, [{ ...item, data: new Uint8Array(LANE_DATA_BYTES) }])).rejects.toThrow('batch too large');
      await lane.close();
    });
  });

  it('signs through the libuv pool when signWorkers is 0', async () => {
    const other = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2, signWorkers: 0 });
    try {
      const d = createHash('sha256').update('libuv').digest();
      const sig = await other.sign(key('EC-P256').hsmKeyId, { kind: 'ecdsa' }, d);
      const rsaSig = await other.sign(key('RSA-2048').hsmKeyId, { kind: 'rsa-pkcs1' }, encodeDigestInfo('SHA-256', d));
      expect(other.laneSignatures).toBe(0);
      expect(opensslVerifyDigest(key('EC-P256'), d, sig, 'libuv').stdout).toContain('Signature Verified Successfully');
      const { createPublicKey, verify } = await import('node:crypto');
      expect(verify('sha256', Buffer.from('libuv'), createPublicKey({ key: Buffer.from(key('RSA-2048').spki), format: 'der', type: 'spki' }), rsaSig)).toBe(true);
    } finally {
      await other.close();
    }
    await signer.health();
  });

  it('rejects queued and later lane signatures with signer_closed once closed, without hanging', async () => {
    const other = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2, signWorkers: 2 });
    const id = key('EC-P256').hsmKeyId;
    await other.sign(id, { kind: 'ecdsa' }, randomBytes(32));
    const inFlight = Array.from({ length: 300 }, () => other.sign(id, { kind: 'ecdsa' }, randomBytes(32)).then(() => 'ok', (e) => e.code));
    await other.close();
    const outcomes = await Promise.all(inFlight);
    // Batches already in a worker finish; everything still queued is refused.
    expect(outcomes.every((o) => o === 'ok' || o === 'signer_closed')).toBe(true);
    expect(outcomes).toContain('signer_closed');
    await expect(other.sign(id, { kind: 'ecdsa' }, randomBytes(32))).rejects.toMatchObject({ code: 'signer_closed' });
    // The closed signer finalised the shared module: the main signer recovers on its next call.
    await signer.health();
  });
});
