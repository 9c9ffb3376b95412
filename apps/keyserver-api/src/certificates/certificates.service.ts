import { createHash, X509Certificate } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type {
  CertificateListQuery,
  CertificatePage,
  CertificateView,
  IssueCertificateRequest,
  IssueCertificateResponse,
  RevokeCertificateRequest,
} from '@keyserver/api-contract';
import {
  AuditRepository,
  CertificateIssuanceRepository,
  CertificateRepository,
  DataAccessError,
  DeviceProfileRepository,
  KeyRepository,
  type AuditInput,
  type Certificate,
  type Key,
} from '@keyserver/data-access';
import { KeyserverError } from '@keyserver/errors';
import { parseCsr, prepareDeviceCertificate, signDeviceCertificate, verifyCsrPossession, type DeviceCertificateProfile } from '@keyserver/pki';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { actorAudit, type Actor } from '../common/actor';
import { DEPS, type ApiDeps } from '../app/tokens';
import { visiblePage } from '../operations/paging';
import { CertificateError, CertificateErrorCode } from './certificate-error';
import { KeyChainCache, usableKey } from './key-chain';
import { ReservedNames, storedDeviceProfile } from './device-profile.service';
import { holds, isAdministrator, requireAccess, visibility } from '@keyserver/authz';

/**
 * The pki profile of a CA key: its stored device profile (docs/device-profile.md), the validity cut to what the
 * CA itself still covers, the CRL distribution point of this server and the DNs no device may take.
 */
export function deviceProfile(key: Key, publicUrl: string, reserved?: ReadonlySet<string>): DeviceCertificateProfile {
  const p = storedDeviceProfile(key);
  // Never past the CA's own notAfter: the profile is cut to what the issuer can cover.
  const maxDays = Math.floor((key.notAfter.getTime() - Date.now()) / 86_400_000);
  return {
    validityDays: Math.max(1, Math.min(p.validityDays, maxDays)),
    keyAgreementForEc: p.keyAgreement,
    allowedSanTypes: [...p.allowedSanTypes],
    maxSanCount: p.maxSanCount,
    dnsDomains: [...p.dnsDomains],
    uriSchemes: [...p.uriSchemes],
    reservedNames: reserved,
    crlDistributionPointUrl: `${publicUrl.replace(/\/+$/, '')}/api/v1/crl/${encodeURIComponent(key.keyid)}`,
  };
}

/**
 * POST /api/v1/certificates as stages: authorize (ISSUE on the CA key) -> check the key -> parse and verify PoP of
 * the CSR (once) -> policy, profile and the TBS certificate against the cached issuer (all refusals happen here,
 * before any usage is touched) -> reserve one usage, HSM signature and assembly, store and audit (one
 * transaction) -> respond.
 */
@Injectable()
export class CertificatesService {
  private readonly keys: KeyRepository;
  private readonly certificates: CertificateRepository;
  private readonly issuance: CertificateIssuanceRepository;
  private readonly audit: AuditRepository;
  private readonly chains: KeyChainCache;
  private readonly reserved: ReservedNames;

  constructor(@Inject(DEPS) private readonly deps: ApiDeps) {
    this.keys = new KeyRepository(deps.db);
    this.certificates = new CertificateRepository(deps.db);
    this.issuance = new CertificateIssuanceRepository(deps.db, { leaseMs: deps.config.usageLeaseMs });
    this.audit = new AuditRepository(deps.db);
    this.chains = new KeyChainCache(this.keys, deps.signer);
    this.reserved = new ReservedNames(new DeviceProfileRepository(deps.db));
  }

  async issue(actor: Actor, dto: IssueCertificateRequest, requestId: string): Promise<IssueCertificateResponse> {
    const base: AuditInput = { ...actorAudit(actor), action: 'certificate.issue', outcome: 'SUCCESS', keyid: dto.keyid, operationId: dto.operationid, requestId };
    try {
      requireAccess(actor, 'ISSUE', dto.keyid, () => new ApiError(ApiErrorCode.KeyNotPermitted, `not allowed to issue with ${dto.keyid}`));
      const key = await usableKey(this.keys, dto.keyid, 'CA', 'device certificates');
      const profile = deviceProfile(key, this.deps.config.publicUrl, await this.reserved.current());
      const csr = verifyCsrPossession(parseCsr(dto.csr));
      const prepared = prepareDeviceCertificate(await this.chains.deviceIssuer(key), csr, profile);
      const digest = createHash('sha256').update(csr.der).digest('hex');
      // Only the HSM signature and the assembly around it run inside the usage transaction.
      const { certificate } = await this.issuance.issueWithUsage(
        { operationId: dto.operationid, issuerKeyid: dto.keyid, requesterId: actor.subjectId, digest, audit: { ...base, details: { csrSha256: digest } } },
        async () => {
          const issued = await signDeviceCertificate(this.deps.signer, prepared);
          const x = new X509Certificate(issued.certificatePem);
          return {
            serialHex: issued.serialHex,
            subjectDn: x.subject.split('\n').join(', '),
            sans: x.subjectAltName ? x.subjectAltName.split(', ') : [],
            notBefore: new Date(x.validFrom),
            notAfter: new Date(x.validTo),
            pem: issued.certificatePem,
          };
        },
      );
      return { id: certificate.id, certificate: certificate.pem, chain: prepared.chainPems, serial: certificate.serialHex };
    } catch (err) {
      await this.refused(base, err);
      throw err;
    }
  }

  /** Search by serial, subject substring and issuer; non-administrators see certificates of CA keys they hold a grant on. */
  async list(actor: Actor, q: CertificateListQuery): Promise<CertificatePage> {
    const page = await visiblePage(
      (cursor) =>
        this.certificates.list({ serialHex: q.serial?.toLowerCase().replace(/^0x/, ''), subjectContains: q.subject, issuerKeyid: q.issuer, cursor, limit: 100 }),
      (c) => visibility.certificate(actor, c),
      q.cursor,
      q.limit ?? 50,
    );
    return { items: page.items.map(view), nextCursor: page.nextCursor };
  }

  /** Revokes once (then the issuer's CRL lists it): an administrator or a holder of ISSUE on the issuing key. */
  async revoke(actor: Actor, id: string, dto: RevokeCertificateRequest, requestId: string): Promise<CertificateView> {
    const base: AuditInput = { ...actorAudit(actor), action: 'certificate.revoke', outcome: 'SUCCESS', requestId, details: { reason: dto.reason } };
    try {
      const cert = await this.issuance.getById(id).catch((err: unknown) => {
        if (err instanceof DataAccessError && err.code === 'not_found') throw new CertificateError(CertificateErrorCode.CertificateNotFound, 'no such certificate');
        throw err;
      });
      if (!visibility.certificate(actor, cert)) throw new CertificateError(CertificateErrorCode.CertificateNotFound, 'no such certificate');
      base.keyid = cert.issuerKeyid;
      base.details = { ...base.details, certificateId: cert.id, serialHex: cert.serialHex };
      if (!isAdministrator(actor) && !holds(actor, 'ISSUE', cert.issuerKeyid)) {
        throw new CertificateError(CertificateErrorCode.RevocationNotAllowed, 'only an administrator or an issuer of this CA can revoke');
      }
      const revoked = await this.certificates.revoke(cert.issuerKeyid, cert.serialHex, dto.reason, new Date(), base);
      return view(revoked);
    } catch (err) {
      await this.refused(base, err);
      throw err;
    }
  }


  private async refused(audit: AuditInput, err: unknown): Promise<void> {
    await this.audit.append({
      ...audit,
      operationId: audit.operationId && UUID.test(audit.operationId) ? audit.operationId : null,
      outcome: err instanceof KeyserverError && err.status < 500 ? 'DENIED' : 'FAILED',
      errorCode: err instanceof KeyserverError ? err.code : 'internal_error',
    });
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function view(c: Certificate): CertificateView {
  return {
    id: c.id,
    issuer: c.issuerKeyid,
    serial: c.serialHex,
    subject: c.subjectDn,
    sans: c.sans,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    certificate: c.pem,
    operationId: c.operationId,
    revokedAt: c.revokedAt?.toISOString() ?? null,
    revocationReason: c.revocationReason,
    createdAt: c.createdAt.toISOString(),
  };
}
