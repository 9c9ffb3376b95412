import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { encodeDigestInfo } from './der';
import { HsmKeyInfo, HsmSigner, SignMechanism } from './hsm-signer';
import { MAX_SIGN_MESSAGE_BYTES, checkDigestOrder, signDigest, signMessage, type SignDigestRequest } from './sign';

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
    ['fail an ECDSA token answer of 63 bytes for P-256', 63],
    ['fail an ECDSA token answer of 96 bytes for P-256 (r and s of P-384 size)', 96],
    ['fail an empty ECDSA token answer', 0],
  ])('%s: never handed out, in asn1 or p1363', async (_n, size) => {
    const s = new (class extends RecordingSigner {
      override async sign(): Promise<Uint8Array> {
        return new Uint8Array(size).fill(0x7f);
      }
    })();
    for (const signatureFormat of ['asn1', 'p1363'] as const) {
      await expect(signDigest(s, ecKey, { input: d256, inputPadding: 'none', signatureFormat })).rejects.toThrow('bad ECDSA signature');
    }
  });

  it.each([
    ['fail SHA-512 DigestInfo for a SHA-256 key', rsaKey, { input: encodeDigestInfo('SHA-512', d512), inputPadding: 'digestinfo' }, 'digestinfo_hash_mismatch'],
    ['fail 31-byte digest', ecKey, { input: d256.subarray(1), inputPadding: 'none' }, 'digest_length_mismatch'],
    ['fail PSS on EC', ecKey, { input: d256, inputPadding: 'pss' }, 'padding_not_supported_for_key'],
    ['fail an RSA signature in p1363', rsaKey, { input: d256, inputPadding: 'none', signatureFormat: 'p1363' }, 'signature_format_not_supported_for_key'],
  ] as const)('%s', async (_n, key, req, code) => {
    const s = new RecordingSigner();
    await expect(signDigest(s, key, req)).rejects.toMatchObject({ code });
    expect(s.calls).toHaveLength(0);
  });
});

describe(checkDigestOrder.name, () => {
  const d256 = new Uint8Array(createHash('sha256').update('x').digest());
  const d384 = new Uint8Array(createHash('sha384').update('x').digest());
  const di256 = encodeDigestInfo('SHA-256', d256);

  it.each([
    ['ok RSA none asn1', 'RSA-2048', { input: d256, inputPadding: 'none', signatureFormat: 'asn1' }, null],
    ['ok RSA digestinfo asn1', 'RSA-3072', { input: di256, inputPadding: 'digestinfo', signatureFormat: 'asn1' }, null],
    ['ok RSA pss asn1', 'RSA-4096', { input: d256, inputPadding: 'pss', signatureFormat: 'asn1' }, null],
    ['ok ECDSA none asn1', 'EC-P256', { input: d256, inputPadding: 'none', signatureFormat: 'asn1' }, null],
    ['ok ECDSA none p1363', 'EC-P256', { input: d256, inputPadding: 'none', signatureFormat: 'p1363' }, null],
    ['ok ECDSA P-384 with a SHA-384 digest', 'EC-P384', { input: d384, inputPadding: 'none', hash: 'SHA-384' }, null],
    ['fail RSA none p1363', 'RSA-2048', { input: d256, inputPadding: 'none', signatureFormat: 'p1363' }, 'signature_format_not_supported_for_key'],
    ['fail RSA pss p1363', 'RSA-2048', { input: d256, inputPadding: 'pss', signatureFormat: 'p1363' }, 'signature_format_not_supported_for_key'],
    ['fail RSA digestinfo p1363', 'RSA-2048', { input: di256, inputPadding: 'digestinfo', signatureFormat: 'p1363' }, 'signature_format_not_supported_for_key'],
    ['fail ECDSA pss', 'EC-P521', { input: d256, inputPadding: 'pss', hash: 'SHA-256' }, 'padding_not_supported_for_key'],
    ['fail ECDSA digestinfo', 'EC-P256', { input: di256, inputPadding: 'digestinfo' }, 'padding_not_supported_for_key'],
    ['fail RSA a DigestInfo sent as a bare digest', 'RSA-2048', { input: di256, inputPadding: 'none' }, 'digest_length_mismatch'],
    ['fail RSA a SHA-384 DigestInfo for a SHA-256 key', 'RSA-2048', { input: encodeDigestInfo('SHA-384', d384), inputPadding: 'digestinfo', hash: 'SHA-256' }, 'digestinfo_hash_mismatch'],
    ['fail RSA bytes that are no DigestInfo', 'RSA-2048', { input: d256, inputPadding: 'digestinfo' }, 'malformed_digestinfo'],
    ['fail a digest for an Ed25519 key', 'Ed25519', { input: d256, inputPadding: 'none' }, 'message_required'],
  ] as const)('%s', (_n, algorithm, req, code) => {
    const run = () => checkDigestOrder(algorithm, req as SignDigestRequest);
    if (code === null) expect(run).not.toThrow();
    else expect(run).toThrow(expect.objectContaining({ code }));
  });

  it('refuses exactly what signDigest refuses, before the token is asked (property)', async () => {
    const algorithms = ['RSA-2048', 'EC-P256', 'EC-P384', 'EC-P521', 'Ed25519'] as const;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...algorithms),
        fc.constantFrom('none', 'digestinfo', 'pss'),
        fc.constantFrom('asn1', 'p1363'),
        fc.constantFrom('SHA-256', 'SHA-384', 'SHA-512'),
        fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 96 }), fc.constantFrom(d256, d384, di256)),
        async (algorithm, inputPadding, signatureFormat, hash, input) => {
          const req: SignDigestRequest = { input, inputPadding, signatureFormat, hash };
          const checked = (() => {
            try {
              checkDigestOrder(algorithm, req);
              return 'ok';
            } catch (e) {
              return (e as { code?: string }).code ?? 'thrown';
            }
          })();
          const s = new RecordingSigner();
          const signed = await signDigest(s, { hsmKeyId: '09', label: 'p', algorithm, spki: new Uint8Array() }, req).then(
            () => 'ok',
            (e: { code?: string }) => e.code ?? 'thrown',
          );
          expect(signed).toBe(checked);
          expect(s.calls).toHaveLength(checked === 'ok' ? 1 : 0);
        },
      ),
      { numRuns: 300 },
    );
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
