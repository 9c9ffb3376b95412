import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { crlEntriesSha256, crlNumberSecond, CrlRepository, type CrlScope, type StoredCrl } from '@keyserver/data-access';
import { createCrl, CRL_REASONS, type CrlReason, type HsmSigner } from '@keyserver/pki';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { HSM_SIGNER, LOGGER } from '../app/tokens';
import { CrlError, CrlErrorCode } from './crl-error';

/** A CRL is valid for a day; a fresh one is signed at least every hour or as soon as the revoked set changes. */
export const CRL_NEXT_UPDATE_MS = 24 * 3_600_000;
export const CRL_REUSE_MS = 3_600_000;
const VERSION = /^[1-9][0-9]{0,5}$/;

/** The longest a fetch waits for the second after the newest CRL's thisUpdate, so that a new one is dated after it. */
export const CRL_SECOND_WAIT_MS = 1_500;

const fresh = (c: StoredCrl, now: number) => now - c.thisUpdate.getTime() < CRL_REUSE_MS && c.nextUpdate.getTime() > now;
const wholeSecond = (ms: number) => Math.floor(ms / 1000) * 1000;

/**
 * The public CRLs of ROOT and CA keys, one per key version (ADR 0029): each signed in the HSM by that version's key
 * pair over the certificates it signed, stored, and served from the database, so anonymous GETs cost no HSM work
 * unless the stored CRL is stale. The versions sharing a key pair (renewals) are one CRL issuer (one name, one key):
 * they publish one sequence, every CRL with a larger number than the one before and, when it lists another revoked
 * set, a later thisUpdate, so relying parties that order CRLs by number (RFC 5280) and by thisUpdate (openssl,
 * GnuTLS) take the same one as newest (ADR 0029 addendum). A CRL number is bound to its thisUpdate (its second
 * shifted left 20 bits, plus a count within it), so a restore of a backup, which rewinds the key's counter, never
 * hands out a number already published (ADR 0029 addendum "CRL numbers survive a restore"). Every replica's {@link CrlRefresher} keeps the live versions' CRLs fresh; a
 * revocation refreshes its issuer's at once; a destroyed version serves the final CRL signed before destruction.
 */
@Injectable()
export class CrlService {
  constructor(
    private readonly crls: CrlRepository,
    @Inject(HSM_SIGNER) private readonly signer: HsmSigner,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** The DER of {@link currentCrl}. */
  async current(keyid: string): Promise<Buffer> {
    return (await this.currentCrl(keyid)).der;
  }

  /** The DER of {@link versionCrl}. */
  ofVersion(keyid: string, version: string): Promise<Buffer> {
    return this.versionCrl(keyid, version).then((c) => c.der);
  }

  /** `GET /api/v1/crl/{keyid}`: the CRL of the key's current version (what certificates issued before versions name). */
  currentCrl(keyid: string): Promise<StoredCrl> {
    return this.serve(keyid, null);
  }

  /** `GET /api/v1/crl/{keyid}/versions/{version}`: the CRL named in the certificates that version signed. */
  versionCrl(keyid: string, version: string): Promise<StoredCrl> {
    if (!VERSION.test(version)) throw new CrlError(CrlErrorCode.CrlVersionInvalid, 'the version must be a whole number from 1 to 999999');
    return this.serve(keyid, Number(version));
  }

  private async serve(keyid: string, version: number | null): Promise<StoredCrl> {
    const scope = keyid.length <= 128 ? await this.crls.scope(keyid, version) : null;
    if (!scope) {
      if (version !== null && keyid.length <= 128 && (await this.crls.scope(keyid, null))) throw new CrlError(CrlErrorCode.KeyVersionNotFound, `key ${keyid} has no version ${version}`);
      throw new ApiError(ApiErrorCode.KeyNotFound, `no CA key ${keyid.slice(0, 128)}`);
    }
    const now = Date.now();
    // The newest CRL of the version's key pair, whichever version signed it.
    const stored = await this.crls.stored(scope.versionId);
    if (scope.destroyedAt) {
      // The HSM key is gone: the final CRL signed before destruction is served until its certificates have expired.
      if (stored?.final && stored.nextUpdate.getTime() > now) return stored;
      throw new CrlError(CrlErrorCode.CrlNotAvailable, `key ${keyid} version ${scope.version} was destroyed and its last CRL has expired`);
    }
    if (stored && fresh(stored, now) && stored.entriesSha256 === (await this.entriesSha256(scope))) return stored;
    return this.refresh(scope);
  }

  /**
   * When the key pair's revoked set changed in the second its newest CRL is dated: waits (no lock held) for the next
   * second, so that the new CRL is dated after it and not ahead of this clock. Not when another replica's clock is
   * ahead by more than {@link CRL_SECOND_WAIT_MS} (the new CRL is then dated a second after that one's).
   */
  private async secondAfterNewest(scope: CrlScope): Promise<void> {
    const stored = await this.crls.stored(scope.versionId);
    if (!stored) return;
    const wait = wholeSecond(stored.thisUpdate.getTime()) + 1000 - Date.now();
    if (wait <= 0 || wait > CRL_SECOND_WAIT_MS || stored.entriesSha256 === (await this.entriesSha256(scope))) return;
    await new Promise((res) => setTimeout(res, wait));
  }

  private async entriesSha256(scope: CrlScope): Promise<string> {
    return crlEntriesSha256(await this.crls.entries(scope));
  }

  /**
   * Signs a new CRL for the version's key pair when its newest one is stale or lists another revoked set (decided
   * again under the locks of every version sharing the key pair, so replicas racing here sign once). `final`: the
   * last one before the HSM key is destroyed, valid until every certificate the key pair signed has expired (none
   * outlives its versions' own certificates). A fetch and a revocation wait for the second after the newest CRL's
   * when the revoked set changed in it ({@link secondAfterNewest}, so at most one CRL with another set per second and
   * key pair); the background pass (`wait` false) keeps the stored CRL instead, for the next fetch or pass to sign.
   */
  async refresh(scope: CrlScope, final = false, wait = true): Promise<StoredCrl> {
    if (!final && wait) await this.secondAfterNewest(scope);
    const stored = await this.crls.refresh(scope, async (previous, entries, entriesSha256, takeNumber, latestThisUpdate, recordedUntil) => {
      const nowMs = Date.now();
      const changed = previous?.entriesSha256 !== entriesSha256;
      if (!final && previous && fresh(previous, nowMs) && !changed) return null;
      // Never dated before any CRL of the key pair (a replica whose clock is behind the one that signed it reuses its
      // thisUpdate), and after it when the revoked set differs: two CRLs of one issuer and key dated alike list the
      // same certificates, so whichever a relying party takes as newest by thisUpdate is the one with the larger number.
      const floor = latestThisUpdate ? latestThisUpdate.getTime() + (changed ? 1000 : 0) : 0;
      if (!final && !wait && floor > wholeSecond(nowMs)) return null;
      const hsmKey = await this.signer.getKey(scope.hsmKeyId);
      // The number is bound to thisUpdate (at least its second shifted, ADR 0029 addendum "CRL numbers survive a
      // restore"); the counter within a second runs past it only after 2^20 CRLs in that second, and the CRL is then
      // dated in the number's second, so a number always names its CRL's thisUpdate.
      // Nor before the newest moment the database records (the audit chain's head): after a restore, the backup's time
      // at the latest, so a restored system whose clock is behind it does not date its CRLs before the backup.
      const taken = new Date(Math.max(wholeSecond(nowMs), floor, recordedUntil ? wholeSecond(recordedUntil.getTime()) : 0));
      const crlNumber = await takeNumber(taken);
      const thisUpdate = new Date(Math.max(taken.getTime(), crlNumberSecond(crlNumber).getTime()));
      const nextUpdate = new Date(Math.max(thisUpdate.getTime() + CRL_NEXT_UPDATE_MS, final ? scope.keyPairNotAfter.getTime() : 0));
      const seen = new Set<string>();
      const { crlDer } = await createCrl(
        this.signer,
        hsmKey,
        scope.certificatePem,
        entries
          .filter((e) => !seen.has(e.serialHex) && seen.add(e.serialHex))
          .map((e) => ({ serialHex: e.serialHex, revocationDate: e.revokedAt, reason: e.revocationReason && Object.hasOwn(CRL_REASONS, e.revocationReason) ? (e.revocationReason as CrlReason) : undefined })),
        crlNumber,
        thisUpdate,
        nextUpdate,
      );
      return { crlNumber, der: Buffer.from(crlDer), thisUpdate, nextUpdate, final };
    });
    if (!stored) throw new Error(`no CRL for ${scope.keyid} version ${scope.version}`);
    return stored;
  }

  /** After a revocation: every live version of the issuer re-checks its revoked set now, not on the next fetch. */
  async refreshKey(keyid: string): Promise<void> {
    try {
      for (const scope of (await this.crls.liveScopes()).filter((s) => s.keyid === keyid)) await this.refresh(scope);
    } catch (err) {
      // The revocation is committed; the next fetch or refresh pass signs the CRL that lists it.
      this.logger.error({ err, keyid }, 'could not sign the CRL after a revocation');
    }
  }

  /** Before a ROOT/CA key's HSM objects are destroyed: each unexpired key pair signs its final CRL (every version sharing it serves it). */
  async finalCrls(keyid: string): Promise<number[]> {
    const versions: number[] = [];
    for (const scope of (await this.crls.liveScopes()).filter((s) => s.keyid === keyid)) {
      await this.refresh(scope, true);
      versions.push(scope.version);
    }
    return versions;
  }

  /** One pass of the background job: every live version's CRL refreshed if due; returns how many were signed. */
  async refreshAll(): Promise<number> {
    let signed = 0;
    for (const scope of await this.crls.liveScopes()) {
      const before = await this.crls.stored(scope.versionId);
      const after = await this.refresh(scope, false, false).catch((err: unknown) => {
        this.logger.warn({ err: (err as Error).message, keyid: scope.keyid, version: scope.version }, 'could not refresh a CRL; will retry');
        return before;
      });
      if (after && after.crlNumber !== before?.crlNumber) signed++;
    }
    return signed;
  }
}
