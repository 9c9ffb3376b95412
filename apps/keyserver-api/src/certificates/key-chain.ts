import { prepareCmsSigner, prepareIssuer, type CmsSigner, type DeviceCertificateIssuer, type HsmSigner } from '@keyserver/pki';
import { ApiError, ApiErrorCode } from '../common/api-error';
import type { Key, KeyRepository, KeyType } from '@keyserver/data-access';

/** An ACTIVE key of the given type, or a 404/409 with a code (the usage reservation re-checks the state in the database). */
export async function usableKey(keys: KeyRepository, keyid: string, type: KeyType, use: string): Promise<Key> {
  const key = await keys.findByKeyidCached(keyid);
  if (!key) throw new ApiError(ApiErrorCode.KeyNotFound, `no key ${keyid}`);
  if (key.type !== type) throw new ApiError(ApiErrorCode.KeyNotUsable, `${keyid} is a ${key.type} key; ${use} use ${type} keys`);
  if (key.state !== 'ACTIVE') throw new ApiError(ApiErrorCode.KeyNotUsable, `${keyid} is ${key.state}`);
  return key;
}

/** PEM certificates of the issuers above `key`, nearest first, up to the root. */
export async function issuerChain(keys: KeyRepository, key: Key): Promise<string[]> {
  const chain: string[] = [];
  for (let k = key.parentKeyid ? await keys.findByKeyid(key.parentKeyid) : null; k; k = k.parentKeyid ? await keys.findByKeyid(k.parentKeyid) : null) {
    chain.push(k.certificatePem);
  }
  return chain;
}

const MAX_ENTRIES = 256;

/**
 * What a key's certificate and its issuers parse into, built once per process: a key's certificate and its
 * parents never change after creation, so the entry is keyed by (key id, HSM key id, certificate) and never
 * goes stale. The key's state is not part of it: callers check it on every request (usableKey, the usage
 * reservation), so a revoked key is refused even with a warm entry. Failed builds are not kept.
 */
export class KeyChainCache {
  private readonly entries = new Map<string, Promise<unknown>>();

  constructor(
    private readonly keys: KeyRepository,
    private readonly signer: HsmSigner,
    private readonly maxEntries = MAX_ENTRIES,
  ) {}

  /** A CA key as the issuer of device certificates: its parsed certificate and the chain up to the root. */
  deviceIssuer(key: Key): Promise<DeviceCertificateIssuer> {
    return this.memo('issuer', key, async () =>
      prepareIssuer({ key: await this.signer.getKey(key.hsmKeyId), certificate: key.certificatePem, chain: await issuerChain(this.keys, key) }),
    );
  }

  /** An FW key as a CMS signer: its certificate and the chain up to the root, parsed. */
  cmsSigner(key: Key): Promise<CmsSigner> {
    return this.memo('cms', key, async () => prepareCmsSigner(await this.signer.getKey(key.hsmKeyId), [key.certificatePem, ...(await issuerChain(this.keys, key))]));
  }

  private memo<T>(kind: string, key: Key, build: () => Promise<T>): Promise<T> {
    const id = `${kind}\n${key.keyid}\n${key.hsmKeyId}\n${key.certificatePem}`;
    const hit = this.entries.get(id);
    if (hit) return hit as Promise<T>;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    const built = build();
    this.entries.set(id, built);
    built.catch(() => {
      if (this.entries.get(id) === built) this.entries.delete(id);
    });
    return built;
  }
}
