import { createHash } from 'node:crypto';
import { encodeDigestInfo } from './der';
import { HsmKeyInfo, HsmSigner, SignMechanism } from './hsm-signer';
import { MAX_SIGN_MESSAGE_BYTES, signDigest, signMessage } from './sign';

/** Records what reaches the token; pure-logic unit test of the digest checks and mechanism choice. */
class RecordingSigner implements HsmSigner {
  calls: { mechanism: SignMechanism; data: Uint8Array }[] = [];
  async generateKey(): Promise<HsmKeyInfo> {
    throw new Error('unused');
  }
  async getKey(): Promise<HsmKeyInfo> {
    throw new Error('unused');
  }
  async sign(_id: string, mechanism: SignMechanism, data: Uint8Array): Promise<Uint8Array> {
    this.calls.push({ mechanism, data });
    return mechanism.kind === 'ecdsa' ? new Uint8Array(64).fill(0x81) : new Uint8Array(256);
  }
  async destroyKey(): Promise<void> {
    throw new Error('unused');
  }
  async health(): Promise<void> {
    return;
  }
  async close(): Promise<void> {
    return;
  }
}

const rsaKey: HsmKeyInfo = { hsmKeyId: '01', label: 'r', algorithm: 'RSA-2048', spki: new Uint8Array() };
const ecKey: HsmKeyInfo = { hsmKeyId: '02', label: 'e', algorithm: 'EC-P256', spki: new Uint8Array() };
const edKey: HsmKeyInfo = { hsmKeyId: '03', label: 'd', algorithm: 'Ed25519', spki: new Uint8Array() };

describe(signDigest.name, () => {
  const d256 = new Uint8Array(createHash('sha256').update('x').digest());
  const d512 = new Uint8Array(createHash('sha512').update('x').digest());

  it('wraps a bare digest in a DigestInfo for PKCS#1 v1.5', async () => {
    const s = new RecordingSigner();
    await signDigest(s, rsaKey, { input: d256, inputPadding: 'none' });
    expect(s.calls[0].mechanism).toEqual({ kind: 'rsa-pkcs1' });
    expect(Buffer.from(s.calls[0].data).equals(Buffer.from(encodeDigestInfo('SHA-256', d256)))).toBe(true);
  });

  it('passes the digest and hash to PSS', async () => {
    const s = new RecordingSigner();
    await signDigest(s, rsaKey, { input: d512, inputPadding: 'pss', hash: 'SHA-512' });
    expect(s.calls[0].mechanism).toEqual({ kind: 'rsa-pss', hash: 'SHA-512' });
  });

  it('returns DER by default and r||s on request for ECDSA', async () => {
    const s = new RecordingSigner();
    const der = await signDigest(s, ecKey, { input: d256, inputPadding: 'none' });
    expect(der[0]).toBe(0x30);
    // High bit set in r and s: DER adds a leading zero to each INTEGER.
    expect(der[3]).toBe(33);
    const raw = await signDigest(s, ecKey, { input: d256, inputPadding: 'none', signatureFormat: 'p1363' });
    expect(raw).toHaveLength(64);
  });

  it.each([
    ['fail SHA-512 DigestInfo for a SHA-256 key', rsaKey, { input: encodeDigestInfo('SHA-512', d512), inputPadding: 'digestinfo' }, 'digestinfo_hash_mismatch'],
    ['fail 31-byte digest', ecKey, { input: d256.subarray(1), inputPadding: 'none' }, 'digest_length_mismatch'],
    ['fail PSS on EC', ecKey, { input: d256, inputPadding: 'pss' }, 'padding_not_supported_for_key'],
  ] as const)('%s', async (_n, key, req, code) => {
    const s = new RecordingSigner();
    await expect(signDigest(s, key, req)).rejects.toMatchObject({ code });
    expect(s.calls).toHaveLength(0);
  });
});

describe(signMessage.name, () => {
  it('hands the whole message to the token as CKM_EDDSA, unhashed', async () => {
    const s = new (class extends RecordingSigner {
      override async sign(id: string, mechanism: SignMechanism, data: Uint8Array): Promise<Uint8Array> {
        await super.sign(id, mechanism, data);
        return new Uint8Array(64);
      }
    })();
    const message = new Uint8Array(MAX_SIGN_MESSAGE_BYTES).fill(7);
    expect(await signMessage(s, edKey, message)).toHaveLength(64);
    expect(s.calls).toEqual([{ mechanism: { kind: 'eddsa' }, data: message }]);
  });

  it('fail a token answer that is not 64 bytes: never handed out as a signature', async () => {
    // RecordingSigner answers 256 bytes for anything but ECDSA.
    await expect(signMessage(new RecordingSigner(), edKey, new Uint8Array([1]))).rejects.toThrow('256-byte Ed25519 signature');
  });

  it.each([
    ['fail a digest for an Ed25519 key', () => signDigest(new RecordingSigner(), edKey, { input: new Uint8Array(64), inputPadding: 'none' }), 'message_required'],
    ['fail a message for an EC key', () => signMessage(new RecordingSigner(), ecKey, new Uint8Array(1)), 'message_not_supported_for_key'],
    ['fail a message for an RSA key', () => signMessage(new RecordingSigner(), rsaKey, new Uint8Array(1)), 'message_not_supported_for_key'],
    ['fail a message one byte over the cap', () => signMessage(new RecordingSigner(), edKey, new Uint8Array(MAX_SIGN_MESSAGE_BYTES + 1)), 'message_too_large'],
  ] as const)('%s', async (_n, run, code) => {
    await expect(run()).rejects.toMatchObject({ code });
  });
});
