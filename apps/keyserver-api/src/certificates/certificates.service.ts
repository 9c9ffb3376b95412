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
import { isUuid } from '@keyserver/api-contract';
import {
  CertificateIssuanceRepository,
  CertificateRepository,
  DataAccessError,
  DeviceProfileRepository,
  KeyLifecycleRepository,
  KeyRepository,
  requestFingerprint,
  type AuditInput,
  type Certificate,
  type Key,
} from '@keyserver/data-access';
import { parseCsr, prepareDeviceCertificate, signDeviceCertificate, verifyCsrPossession, type CertificateFields, type DeviceCertificateProfile } from '@keyserver/pki';
import { ApiError, ApiErrorCode } from '../common/api-error';
import type { Actor } from '../common/actor';
import { Audited, auditEvent, type AuditedOptions } from '../common/audited';
import { IDEMPOTENT_ROUTE, auditReplay, checkIdempotencyKey } from '../common/idempotency-key';
import { API_CONFIG, HSM_SIGNER } from '../app/tokens';
import { visiblePage } from '../operations/paging';
import { CertificateError, CertificateErrorCode } from './certificate-error';
import { KeyChainCache, usableKey } from './key-chain';
import { ReservedNames, storedDeviceProfile } from './device-profile.service';
import { holds, isAdministrator, requireAccess, visibility } from '@keyserver/authz';
import type { HsmSigner } from '@keyserver/pki';
import type { ApiConfig } from '../config/api-config';
import { crlUrl } from '../crl/crl-url';
import { CrlService } from '../crl/crl.service';

const ROUTE = IDEMPOTENT_ROUTE.certificates;

/**
 * The pki profile of a CA key: its stored device profile (docs/device-profile.md), the validity cut to what the
 * CA itself still covers, the CRL distribution point of this server and the DNs no device may take.
 */
// The validated stored profile per key row object: rows come from the access cache (ADR 0028), so a certificate
// burst validates it once; a changed profile is a new row object. Only valid profiles are kept; nothing mutates them.
const validatedProfiles = new WeakMap<Key, ReturnType<typeof storedDeviceProfile>>();

export function deviceProfile(key: Key, publicUrl: string, reserved?: ReadonlySet<string>): DeviceCertificateProfile {
  let p = validatedProfiles.get(key);
  if (!p) validatedProfiles.set(key, (p = storedDeviceProfile(key)));
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
    // The CRL of the version that signs (the key row's current one): its signature and AKI match this certificate.
    crlDistributionPointUrl: crlUrl(publicUrl, key.keyid, key.currentVersion),
  };
}

/** The certificate table's description of a certificate, as Node prints it (the shapes prepareDeviceCertificate does not print itself). */
function certificateFieldsOf(pem: string): CertificateFields {
  const x = new X509Certificate(pem);
  return { subjectDn: x.subject.split('\n').join(', '), sans: x.subjectAltName ? x.subjectAltName.split(', ') : [], notBefore: x.validFromDate, notAfter: x.validToDate };
}

/**
 * POST /api/v1/certificates as stages: authorize (ISSUE on the CA key) -> check the key -> parse and verify PoP of
 * the CSR (once) -> policy, profile and the TBS certificate against the cached issuer (all refusals happen here,
 * before any usage is touched) -> reserve one usage, HSM signature and assembly, store and audit (one
 * transaction) -> respond.
 */
@Injectable()
export class CertificatesService {
  private readonly chains: KeyChainCache;
  private readonly reserved: ReservedNames;

  constructor(
    private readonly keys: KeyRepository,
    private readonly certificates: CertificateRepository,
    private readonly issuance: CertificateIssuanceRepository,
    private readonly profiles: DeviceProfileRepository,
    @Inject(HSM_SIGNER) private readonly signer: HsmSigner,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    private readonly audited: Audited,
    private readonly crls: CrlService,
    lifecycle: KeyLifecycleRepository,
  ) {
    this.chains = new KeyChainCache(this.keys, lifecycle, this.signer);
    this.reserved = new ReservedNames(this.profiles);
  }

  /**
   * With an Idempotency-Key (ADR 0012 addendum "idempotency, session 25", the same code path as sign orders): a retry
   * with the same key and body is the stored answer, byte for byte (certificate, serial, chain, ignored extensions),
   * without a usage or a signature, audited `certificate.replayed`; access, the key and the CSR are checked first.
   */
  async issue(actor: Actor, dto: IssueCertificateRequest, requestId: string, idempotencyKey?: string): Promise<IssueCertificateResponse> {
    return this.audited.run(auditEvent('certificate.issue', actor, requestId, { keyid: dto.keyid, operationId: dto.operationid }), async (a) => {
      checkIdempotencyKey(idempotencyKey);
      requireAccess(actor, 'ISSUE', dto.keyid, () => new ApiError(ApiErrorCode.KeyNotPermitted, `not allowed to issue with ${dto.keyid}`));
      const key = await usableKey(this.keys, dto.keyid, 'CA', 'device certificates');
      const profile = deviceProfile(key, this.config.publicUrl, await this.reserved.current());
      const csr = verifyCsrPossession(parseCsr(dto.csr));
      const deviceIssuer = await this.chains.deviceIssuer(key);
      const prepared = prepareDeviceCertificate(deviceIssuer, csr, profile);
      const digest = createHash('sha256').update(csr.der).digest('hex');
      // Only the HSM signature and the assembly around it run inside the usage transaction.
      const issued = await this.issuance.issueWithUsage(
        {
          operationId: dto.operationid,
          issuerKeyid: dto.keyid,
          issuerVersion: key.currentVersion,
          requesterId: actor.subjectId,
          digest,
          idempotencyKey: idempotencyKey ?? null,
          // The key is bound to every field of the validated body: any difference on a retry is a 422.
          requestHash: idempotencyKey ? requestFingerprint(ROUTE, idempotencyKey, dto) : null,
          answer: { chain: prepared.chainPems, ignoredExtensions: prepared.ignoredExtensions },
          audit: { ...a.event, details: { csrSha256: digest, ...(prepared.ignoredExtensions.length ? { ignoredExtensions: prepared.ignoredExtensions } : {}) } },
        },
        async (attempt) => {
          // The issuer already used the serial (another replica, or a key certificate): a fresh TBS, a fresh serial.
          const signed = await signDeviceCertificate(this.signer, attempt === 0 ? prepared : prepareDeviceCertificate(deviceIssuer, csr, profile));
          return { serialHex: signed.serialHex, ...(prepared.fields ?? certificateFieldsOf(signed.certificatePem)), pem: signed.certificatePem };
        },
      );
      const { certificate, answer } = issued;
      if (issued.replayed) await auditReplay(this.audited, a, 'certificate', issued.firstRequestId, { digest, details: { certificateId: certificate.id, serialHex: certificate.serialHex } });
      // Requested non-critical extensions the profile did not honour: the caller learns what it did not get.
      return { id: certificate.id, certificate: certificate.pem, chain: answer.chain, serial: certificate.serialHex, ignoredExtensions: answer.ignoredExtensions };
    }, REFUSAL);
  }

  /** Search by serial, subject substring and issuer; non-administrators see certificates of CA keys they hold a grant on. */
  async list(actor: Actor, q: CertificateListQuery): Promise<CertificatePage> {
    const page = await visiblePage(
      (cursor) =>
        this.certificates.list({
          serialHex: q.serial?.toLowerCase().replace(/^0x/, ''),
          subjectContains: q.subject,
          issuerKeyid: q.issuer,
          // Visibility in the query too: the end of a long scan must not hand out the id of an invisible certificate.
          visibleIssuerKeyids: visibility.everything(actor) ? undefined : [...actor.keyGrants].filter(([keyid]) => visibility.certificate(actor, { issuerKeyid: keyid })).map(([keyid]) => keyid),
          cursor,
          limit: 100,
        }),
      (c) => visibility.certificate(actor, c),
      q.cursor,
      q.limit ?? 50,
    );
    return { items: page.items.map(view), nextCursor: page.nextCursor };
  }

  /** Revokes once (then the issuer's CRL lists it): an administrator or a holder of ISSUE on the issuing key. */
  async revoke(actor: Actor, id: string, dto: RevokeCertificateRequest, requestId: string): Promise<CertificateView> {
    return this.audited.run(auditEvent('certificate.revoke', actor, requestId, { details: { reason: dto.reason } }), async (a) => {
      const cert = await this.issuance.getById(id).catch((err: unknown) => {
        if (err instanceof DataAccessError && err.code === 'not_found') throw new CertificateError(CertificateErrorCode.CertificateNotFound, 'no such certificate');
        throw err;
      });
      if (!visibility.certificate(actor, cert)) throw new CertificateError(CertificateErrorCode.CertificateNotFound, 'no such certificate');
      a.event.keyid = cert.issuerKeyid;
      a.event.details = { ...a.event.details, certificateId: cert.id, serialHex: cert.serialHex };
      if (!isAdministrator(actor) && !holds(actor, 'ISSUE', cert.issuerKeyid)) {
        throw new CertificateError(CertificateErrorCode.RevocationNotAllowed, 'only an administrator or an issuer of this CA can revoke');
      }
      const issuer = await this.keys.findByKeyid(cert.issuerKeyid);
      // A destroyed issuer signs no CRL any more: its final CRL cannot list a new revocation (ADR 0029).
      if (issuer?.destroyedAt) throw new CertificateError(CertificateErrorCode.IssuerDestroyed, `the issuer ${cert.issuerKeyid} was destroyed: its last CRL is final`);
      const revoked = await this.certificates.revoke(cert.issuerKeyid, cert.serialHex, dto.reason, new Date(), a.event);
      a.committed();
      // The version that signed it lists it on its CRL now, not on the next fetch or refresh pass.
      await this.crls.refreshKey(cert.issuerKeyid);
      return view(revoked);
    }, REFUSAL);
  }
}

/** A refused request's event keeps only a UUID-shaped operation id (the column holds UUIDs). */
const REFUSAL: AuditedOptions = { refusal: (e: AuditInput) => ({ ...e, operationId: e.operationId && isUuid(e.operationId) ? e.operationId : null }) };

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
