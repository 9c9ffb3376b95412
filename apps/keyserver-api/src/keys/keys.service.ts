import { Injectable } from '@nestjs/common';
import type { z } from 'zod';
import type { KeyDetail, KeyFacts, KeyLimitsView, KeyList, KeyListQuery, KeySummary, LegacyKey } from '@keyserver/api-contract';
import { KeyLifecycleRepository, KeyLimitsRepository, KeyRepository, type EffectiveKeyLimits, type Key } from '@keyserver/data-access';
import { certificateChain } from '../certificates/key-chain';
import { ApiError, ApiErrorCode } from '../common/api-error';
import type { Actor } from '../common/actor';

import { keyInfo } from './key-algorithms';
import { visibility } from '@keyserver/authz';

/** What the list and the detail route both say of a key. */
function facts(k: Key): KeyFacts {
  return {
    keyid: k.keyid,
    type: k.type,
    algorithm: k.algorithm,
    hash: k.hash,
    requiredApprovers: k.requiredApprovers,
    state: k.state,
    product: k.product,
    certificate: k.certificatePem,
    notBefore: k.notBefore.toISOString(),
    notAfter: k.notAfter.toISOString(),
  };
}

/** The limits in force for a key as the contract shows them (key detail, operation view). */
export function limitsView(l: EffectiveKeyLimits): KeyLimitsView {
  return {
    maxWindowSeconds: l.maxWindowSeconds,
    maxUsagesPerOperation: l.maxUsagesPerOperation,
    maxBackdateSeconds: l.maxBackdateSeconds,
    maxStartAheadSeconds: l.maxStartAheadSeconds,
    source: l.source,
    updatedAt: l.updatedAt?.toISOString() ?? null,
  };
}

function summary(k: Key): KeySummary {
  return { ...facts(k), parentKeyid: k.parentKeyid, revokedAt: k.revokedAt?.toISOString() ?? null, revocationReason: k.revocationReason };
}

@Injectable()
export class KeysService {

  constructor(
    private readonly keys: KeyRepository,
    private readonly limits: KeyLimitsRepository,
    private readonly lifecycle: KeyLifecycleRepository,
  ) {}

  /** The keys this caller may use (any per-key permission), in the legacy shape clients read. */
  async listUsable(actor: Actor): Promise<z.infer<typeof LegacyKey>[]> {
    const all = await this.keys.list({ state: 'ACTIVE' });
    return all
      .filter((k) => visibility.key(actor, k.keyid))
      .map((k) => ({ keyid: k.keyid, keyinfo: keyInfo(k), certificate: k.certificatePem }));
  }

  /** Every key this caller may see (the access policy's `visibility.key`) in any state unless filtered, ROOT first, then CAs, then FW keys. */
  async list(actor: Actor, q: KeyListQuery): Promise<KeyList> {
    const visible = (await this.keys.list({ state: q.state, type: q.type }, 'type')).filter((k) => visibility.key(actor, k.keyid));
    return { items: visible.map(summary) };
  }

  async detail(actor: Actor, keyid: string): Promise<z.infer<typeof KeyDetail>> {
    const key = await this.keys.findByKeyid(keyid);
    if (!key || !visibility.key(actor, key.keyid)) throw new ApiError(ApiErrorCode.KeyNotFound, `no key ${keyid}`);
    const chain = await certificateChain(this.keys, this.lifecycle, key);
    const usage = await this.keys.usage(key.keyid);
    const limits = limitsView(await this.limits.get(key.keyid));
    return { ...facts(key), chain, usage: { ...usage, lastUsedAt: usage.lastUsedAt?.toISOString() ?? null }, limits };
  }
}
