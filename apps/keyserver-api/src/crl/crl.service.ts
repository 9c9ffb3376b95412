import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { crlEntriesSha256, CrlRepository, type CrlScope, type StoredCrl } from '@keyserver/data-access';
import { createCrl, CRL_REASONS, type CrlReason, type HsmSigner } from '@keyserver/pki';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { HSM_SIGNER, LOGGER } from '../app/tokens';
import { CrlError, CrlErrorCode } from './crl-error';

/** A CRL is valid for a day; a fresh one is signed at least every hour or as soon as the revoked set changes. */
export const CRL_NEXT_UPDATE_MS = 24 * 3_600_000;
export const CRL_REUSE_MS = 3_600_000;
const VERSION = /^[1-9][0-9]{0,5}$/;

const fresh = (c: StoredCrl, now: number) => now - c.thisUpdate.getTime() < CRL_REUSE_MS && c.nextUpdate.getTime() > now;

/**
 * The public CRLs of ROOT and CA keys, one per key version (ADR 0029): each signed in the HSM by that version's key
 * pair over the certificates it signed, stored, and served from the database, so anonymous GETs cost no HSM work
 * unless the stored CRL is stale. Every replica's {@link CrlRefresher} keeps the live versions' CRLs fresh; a
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
    const stored = await this.crls.stored(scope.versionId);
    if (scope.destroyedAt) {
      // The HSM key is gone: the final CRL signed before destruction is served until its certificates have expired.
      if (stored?.final && stored.nextUpdate.getTime() > now) return stored;
      throw new CrlError(CrlErrorCode.CrlNotAvailable, `key ${keyid} version ${scope.version} was destroyed and its last CRL has expired`);
    }
    if (stored && fresh(stored, now) && stored.entriesSha256 === (await this.entriesSha256(scope))) return stored;
    return this.refresh(scope);
  }

  private async entriesSha256(scope: CrlScope): Promise<string> {
    return crlEntriesSha256(await this.crls.entries(scope));
  }

  /**
   * Signs a new CRL for the version when the stored one is stale or lists another revoked set (decided again under
   * the version's lock, so replicas racing here sign once). `final`: the last one before the HSM key is destroyed,
   * valid until every certificate the version signed has expired (none outlives the version's own certificate).
   */
  async refresh(scope: CrlScope, final = false): Promise<StoredCrl> {
    const stored = await this.crls.refresh(scope, async (previous, entries, entriesSha256, takeNumber) => {
      const nowMs = Date.now();
      if (!final && previous && fresh(previous, nowMs) && previous.entriesSha256 === entriesSha256) return null;
      const hsmKey = await this.signer.getKey(scope.hsmKeyId);
      // Never dated before the CRL it replaces: a replica whose clock is behind the one that signed that CRL
      // reuses its thisUpdate (the number still goes up), so thisUpdate and cRLNumber order CRLs alike.
      const thisUpdate = new Date(Math.max(Math.floor(nowMs / 1000) * 1000, previous?.thisUpdate.getTime() ?? 0));
      const nextUpdate = new Date(Math.max(thisUpdate.getTime() + CRL_NEXT_UPDATE_MS, final ? scope.notAfter.getTime() : 0));
      const crlNumber = await takeNumber();
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

  /** Before a ROOT/CA key's HSM objects are destroyed: each unexpired version signs its final CRL. */
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
      const after = await this.refresh(scope).catch((err: unknown) => {
        this.logger.warn({ err: (err as Error).message, keyid: scope.keyid, version: scope.version }, 'could not refresh a CRL; will retry');
        return before;
      });
      if (after && after.crlNumber !== before?.crlNumber) signed++;
    }
    return signed;
  }
}
