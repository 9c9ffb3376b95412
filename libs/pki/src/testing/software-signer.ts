import { constants, generateKeyPairSync, privateEncrypt, type KeyObject } from 'node:crypto';
import type { HsmKeyInfo, HsmSigner, KeySpec, SignMechanism } from '../lib/hsm-signer';

/**
 * An HsmSigner over node:crypto RSA-2048 keys for the PKI library's own tests: real CKM_RSA_PKCS signatures that
 * openssl and Node verify, without a token (libs/pkcs11-signer runs the same code paths against SoftHSM).
 * Counts sign calls.
 */
export class SoftwareSigner implements HsmSigner {
  signCalls = 0;
  private readonly keys = new Map<string, { info: HsmKeyInfo; privateKey: KeyObject }>();
  private generated = 0;

  async generateKey(spec: KeySpec): Promise<HsmKeyInfo> {
    if (spec.algorithm !== 'RSA-2048') throw new Error('the software signer makes RSA-2048 keys only');
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const info: HsmKeyInfo = {
      hsmKeyId: (++this.generated).toString(16).padStart(4, '0'),
      label: spec.label,
      algorithm: 'RSA-2048',
      spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
    };
    this.keys.set(info.hsmKeyId, { info, privateKey });
    return info;
  }

  async getKey(hsmKeyId: string): Promise<HsmKeyInfo> {
    const k = this.keys.get(hsmKeyId);
    if (!k) throw new Error(`no key ${hsmKeyId}`);
    return k.info;
  }

  async destroyKey(hsmKeyId: string): Promise<void> {
    this.keys.delete(hsmKeyId);
  }

  async sign(hsmKeyId: string, mechanism: SignMechanism, data: Uint8Array): Promise<Uint8Array> {
    const k = this.keys.get(hsmKeyId);
    if (!k || mechanism.kind !== 'rsa-pkcs1') throw new Error(`cannot sign ${mechanism.kind} with ${hsmKeyId}`);
    this.signCalls++;
    // CKM_RSA_PKCS: PKCS#1 v1.5 type-1 padding around the DigestInfo the caller prepared, then the private-key operation.
    return new Uint8Array(privateEncrypt({ key: k.privateKey, padding: constants.RSA_PKCS1_PADDING }, data));
  }

  async health(): Promise<void> {
    return;
  }

  async close(): Promise<void> {
    return;
  }
}
