import { Inject, Injectable } from '@nestjs/common';
import { CertificateRepository, KeyLifecycleRepository, KeyRepository } from '@keyserver/data-access';
import { createCrl, CRL_REASONS, type CrlReason } from '@keyserver/pki';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { HSM_SIGNER } from '../app/tokens';
import type { HsmSigner } from '@keyserver/pki';

/** A CRL is valid for a day; a fresh one is signed at least every hour or as soon as the revoked set changes. */
const NEXT_UPDATE_MS = 24 * 3_600_000;
const REUSE_MS = 3_600_000;

/** The public CRL of a ROOT or CA key, signed in the HSM, cached per revoked set so anonymous GETs cost no HSM work. */
@Injectable()
export class CrlService {
  private readonly cache = new Map<string, { fingerprint: string; at: number; der: Buffer }>();

  constructor(
    private readonly keys: KeyRepository,
    private readonly certificates: CertificateRepository,
    private readonly lifecycle: KeyLifecycleRepository,
    @Inject(HSM_SIGNER) private readonly signer: HsmSigner,
  ) {}

  async get(keyid: string): Promise<Buffer> {
    const key = await this.keys.findByKeyid(keyid);
    // A destroyed key signs nothing any more: its last CRL stays what relying parties hold (docs/operations.md).
    if (!key || (key.type !== 'ROOT' && key.type !== 'CA') || key.destroyedAt) throw new ApiError(ApiErrorCode.KeyNotFound, `no CA key ${keyid.slice(0, 128)}`);
    // Revoked device certificates this key issued, and every certificate (each version) of revoked keys it certified.
    const revokedKeys = await this.lifecycle.revokedVersionsIssuedBy(keyid);
    const revoked = [...(await this.certificates.listRevoked(keyid)), ...revokedKeys];
    const fingerprint = revoked.map((r) => `${r.serialHex}@${r.revokedAt.getTime()}:${r.revocationReason ?? ''}`).join(',');
    const hit = this.cache.get(keyid);
    if (hit && hit.fingerprint === fingerprint && Date.now() - hit.at < REUSE_MS) return hit.der;
    const hsmKey = await this.signer.getKey(key.hsmKeyId);
    const crlNumber = await this.keys.nextCrlNumber(keyid);
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const { crlDer } = await createCrl(
      this.signer,
      hsmKey,
      key.certificatePem,
      revoked.map((r) => ({
        serialHex: r.serialHex,
        revocationDate: r.revokedAt,
        reason: r.revocationReason && r.revocationReason in CRL_REASONS ? (r.revocationReason as CrlReason) : undefined,
      })),
      crlNumber,
      now,
      new Date(now.getTime() + NEXT_UPDATE_MS),
    );
    const der = Buffer.from(crlDer);
    this.cache.set(keyid, { fingerprint, at: Date.now(), der });
    return der;
  }
}
