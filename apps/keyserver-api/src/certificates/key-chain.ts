import { X509Certificate } from 'node:crypto';
import { prepareCmsSigner, prepareIssuer, splitPemCertificates, type CmsSigner, type DeviceCertificateIssuer, type HsmSigner } from '@keyserver/pki';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { externalChainValidity, type ExternalChainValidity, type Key, type KeyLifecycleRepository, type KeyRepository, type KeyType } from '@keyserver/data-access';

/**
 * An ACTIVE key of the given type inside its certificate's validity and that of the external chain above its ROOT, or
 * a 404/409 with a code (the usage reservation re-checks the state in the database). Outside [notBefore, notAfter)
 * the key signs nothing: a bootloader without a clock cannot tell a firmware signature made after its FW certificate
 * expired from one made while it was valid, and a CA past its notAfter would certify devices beyond it (security.md,
 * ADR 0007 addendum). The one check of every signing route: sign orders, firmware CMS, device certificates (the TSA
 * picks its key with {@link usableNow}).
 */
export async function usableKey(keys: KeyRepository, keyid: string, type: KeyType, use: string, now = Date.now()): Promise<Key> {
  const key = await keys.findByKeyidCached(keyid);
  if (!key) throw new ApiError(ApiErrorCode.KeyNotFound, `no key ${keyid}`);
  if (key.type !== type) throw new ApiError(ApiErrorCode.KeyNotUsable, `${keyid} is a ${key.type} key; ${use} use ${type} keys`);
  if (key.state !== 'ACTIVE') throw new ApiError(ApiErrorCode.KeyNotUsable, `${keyid} is ${key.state}`);
  assertCertificateValidNow(key, now, await externalChainAbove(keys, key));
  return key;
}

/**
 * A key signs only inside its certificate's validity (RFC 5280 4.1.2.5): what it signed outside it nobody can verify,
 * and a key past its notAfter must stop being used. From notBefore up to the notAfter instant, exclusive, as the TSA
 * picks its keys (tsa.service.ts); checked before any usage is reserved. `above`: the validity of the external chain
 * above the key's ROOT ({@link externalChainAbove}), which narrows it: an offline intermediate that expired leaves no
 * valid path from any relying party's anchor to the key (ADR 0020 addendum, session 25).
 */
export function assertCertificateValidNow(key: Pick<Key, 'keyid' | 'notBefore' | 'notAfter'>, now = Date.now(), above: ExternalChainValidity | null = null): void {
  if (now < key.notBefore.getTime() || now >= key.notAfter.getTime()) {
    throw new ApiError(ApiErrorCode.KeyNotUsable, `the certificate of ${key.keyid} is valid from ${key.notBefore.toISOString()} until ${key.notAfter.toISOString()}, not now`);
  }
  if (above && (now < above.notBefore.getTime() || now >= above.notAfter.getTime())) {
    throw new ApiError(ApiErrorCode.KeyNotUsable, `the external chain above the ROOT of ${key.keyid} is valid from ${above.notBefore.toISOString()} until ${above.notAfter.toISOString()} (${above.bound}), not now`);
  }
}

/** {@link assertCertificateValidNow} as a yes/no, for a caller that picks among keys (the TSA). */
export async function usableNow(keys: KeyRepository, key: Key, now = Date.now()): Promise<boolean> {
  try {
    assertCertificateValidNow(key, now, await externalChainAbove(keys, key));
    return true;
  } catch (err) {
    if (err instanceof ApiError) return false;
    throw err;
  }
}

/** The key lookups {@link externalChainAbove} makes: the cached row, and a ROOT's versions in the rare case it needs them. */
export type ChainLookups = Pick<KeyRepository, 'findByKeyidCached' | 'versionChains'>;

const MEMO_ENTRIES = 256;
const remember = <V>(map: Map<string, V>, id: string, value: V): V => {
  if (map.size >= MEMO_ENTRIES) map.delete(map.keys().next().value as string);
  map.set(id, value);
  return value;
};
/** Whether the certificate `below` was signed by the key of `issuer` under its name (per pair of PEMs, once per process). */
const issuedMemo = new Map<string, boolean>();
function issued(below: string, issuer: string): boolean {
  const id = `${below}\n${issuer}`;
  const hit = issuedMemo.get(id);
  if (hit !== undefined) return hit;
  let yes = false;
  try {
    const [b, i] = [new X509Certificate(below), new X509Certificate(issuer)];
    yes = b.checkIssued(i) && b.verify(i.publicKey);
  } catch {
    yes = false; // not a certificate (a placeholder row): judged by the ROOT's current chain, as before
  }
  return remember(issuedMemo, id, yes);
}
/** The chain of the earlier ROOT version that certified a key, by (ROOT keyid, that key's certificate): a superseded version's chain never changes. */
const earlierChains = new Map<string, string | null>();

/**
 * The external chain that bounds a key certified by the ROOT `top` (its certificate `below`): that of the ROOT version
 * that certified it (ADR 0020 addendum "the renewed external chain"). The current version's (the key row's) when its
 * certificate certified `below`, which is the case but after a rotation of the ROOT: one memoised signature check;
 * else the chain kept with the earlier version found by signature, or the current one when that version's chain is
 * not known (superseded before chains were kept per version).
 */
async function chainOfCertifyingVersion(keys: ChainLookups, top: Pick<Key, 'keyid' | 'certificatePem' | 'issuerChainPem'>, below: string): Promise<string | null> {
  if (issued(below, top.certificatePem)) return top.issuerChainPem;
  const id = `${top.keyid}\n${below}`;
  let chain = earlierChains.get(id);
  if (chain === undefined) {
    // Remembered found or not: a version added later is a re-issue for the current key pair (checked first above),
    // never one that certified an older certificate.
    const found = (await keys.versionChains(top.keyid)).find((v) => v.certificatePem !== top.certificatePem && issued(below, v.certificatePem));
    chain = remember(earlierChains, id, found?.issuerChainPem ?? null);
  }
  return chain ?? top.issuerChainPem;
}

/**
 * The validity of the external chain above the ROOT at the top of `key`'s path (the key itself if a ROOT), if any:
 * the chain of the ROOT version that certified the path (see {@link chainOfCertifyingVersion}).
 */
export async function externalChainAbove(keys: ChainLookups, key: Pick<Key, 'keyid' | 'parentKeyid' | 'issuerChainPem' | 'certificatePem'>): Promise<ExternalChainValidity | null> {
  let top: Pick<Key, 'keyid' | 'parentKeyid' | 'issuerChainPem' | 'certificatePem'> = key;
  let below: string | null = null;
  for (let depth = 0; top.parentKeyid && depth < 16; depth++) {
    const parent = await keys.findByKeyidCached(top.parentKeyid);
    if (!parent) return null;
    below = top.certificatePem;
    top = parent;
  }
  if (!top.issuerChainPem) return null;
  return externalChainValidity(below === null ? top.issuerChainPem : await chainOfCertifyingVersion(keys, top, below));
}

/**
 * The last instant a certificate issued by `issuer` may reach: the issuer's notAfter, or the end of the external
 * chain above its ROOT when that comes first, with the words for a refusal (`validity_exceeds_root`).
 */
export async function issuerEnd(keys: ChainLookups, issuer: Key): Promise<{ notAfter: Date; bound: string }> {
  const above = await externalChainAbove(keys, issuer);
  if (above && above.notAfter < issuer.notAfter) return { notAfter: above.notAfter, bound: `the external chain above the ROOT of ${issuer.keyid} (${above.bound})` };
  return { notAfter: issuer.notAfter, bound: `${issuer.keyid} (until ${issuer.notAfter.toISOString()})` };
}

/**
 * The key's certificate up to the top, as PEM: each issuer's certificate is that of the version that signed the one
 * below (an issuer rotated since then still has its older version published; its current certificate did not sign
 * it), then an external root's chain if any. The one chain every answer carries: key details, device certificates,
 * CMS signatures and timestamps.
 */
export async function certificateChain(keys: KeyRepository, lifecycle: KeyLifecycleRepository, key: Key): Promise<string[]> {
  const chain = [key.certificatePem];
  let top = key;
  // The external chain above the top: the ROOT version's that certified the path (its own current one for a ROOT).
  let external = key.issuerChainPem;
  for (let below = new X509Certificate(key.certificatePem); top.parentKeyid && chain.length < 10; ) {
    const parent = await keys.findByKeyid(top.parentKeyid);
    if (!parent) break;
    const versions = (await lifecycle.versions(parent.keyid)).reverse();
    const signer = versions.find((v) => {
      const x = new X509Certificate(v.certificatePem);
      return below.checkIssued(x) && below.verify(x.publicKey);
    });
    const pem = signer?.certificatePem ?? parent.certificatePem;
    chain.push(pem);
    below = new X509Certificate(pem);
    top = parent;
    // A version superseded before chains were kept per version has none: the key row's (current) chain, as before.
    external = (signer && signer.version !== parent.currentVersion ? signer.issuerChainPem : null) ?? parent.issuerChainPem;
  }
  if (external) chain.push(...splitPemCertificates(external));
  return chain;
}


const MAX_ENTRIES = 256;

/**
 * What a key's certificate and its issuers parse into, built once per process. The entry is keyed by (key id, HSM key
 * id, certificate) and by what the chain depends on above it: each issuer's current version (a re-issued certificate
 * for the same key pair chains in place of the older one) and the external chain above the ROOT (replaced when the
 * offline CA renews, ADR 0020 addendum "the renewed external chain"); those are read through the access cache the sign
 * path warmed in usableKey, so a warm entry costs no round trip. The key's state is not part of it: callers check it on every request (usableKey, the usage
 * reservation), so a revoked key is refused even with a warm entry. Failed builds are not kept.
 */
export class KeyChainCache {
  private readonly entries = new Map<string, Promise<unknown>>();

  constructor(
    private readonly keys: KeyRepository,
    private readonly lifecycle: KeyLifecycleRepository,
    private readonly signer: HsmSigner,
    private readonly maxEntries = MAX_ENTRIES,
  ) {}

  /** A CA key as the issuer of device certificates: its parsed certificate and the chain up to the root. */
  deviceIssuer(key: Key): Promise<DeviceCertificateIssuer> {
    return this.memo('issuer', key, async () =>
      prepareIssuer({ key: await this.signer.getKey(key.hsmKeyId), certificate: key.certificatePem, chain: (await certificateChain(this.keys, this.lifecycle, key)).slice(1) }),
    );
  }

  /** An FW key as a CMS signer: its certificate and the chain up to the root, parsed. */
  cmsSigner(key: Key): Promise<CmsSigner> {
    return this.memo('cms', key, async () => prepareCmsSigner(await this.signer.getKey(key.hsmKeyId), await certificateChain(this.keys, this.lifecycle, key)));
  }

  /** What the chain built for `key` depends on above it: every issuer's current version, then the external chain above the top. */
  private async above(key: Key): Promise<string> {
    const parts: string[] = [];
    let top: Pick<Key, 'keyid' | 'parentKeyid' | 'currentVersion' | 'issuerChainPem'> | null = key;
    for (let depth = 0; top?.parentKeyid && depth < 16; depth++) {
      top = await this.keys.findByKeyidCached(top.parentKeyid);
      if (top) parts.push(`${top.keyid}@${top.currentVersion}`);
    }
    parts.push(top?.issuerChainPem ?? '');
    return parts.join('\n');
  }

  private async memo<T>(kind: string, key: Key, build: () => Promise<T>): Promise<T> {
    const id = `${kind}\n${key.keyid}\n${key.hsmKeyId}\n${key.certificatePem}\n${await this.above(key)}`;
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
