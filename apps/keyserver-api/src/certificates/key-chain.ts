import { ApiError, ApiErrorCode } from '../common/api-error';
import type { Key, KeyRepository, KeyType } from '@keyserver/data-access';

/** An ACTIVE key of the given type, or a 404/409 with a code. */
export async function usableKey(keys: KeyRepository, keyid: string, type: KeyType, use: string): Promise<Key> {
  const key = await keys.findByKeyid(keyid);
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
