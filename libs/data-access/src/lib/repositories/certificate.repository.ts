import { mapPrismaError, type Db } from '../db';
import { DataAccessError } from '../errors';
import type { AuditInput, Certificate, Page } from '../types';
import { toCertificate, withIssuer } from './certificate-row';
import { appendAuditTx, clampLimit } from './audit.repository';
import { lockCrlScopeForRevocation } from './crl.repository';

export interface InsertCertificateInput {
  issuerKeyid: string;
  /** The issuing key's version that signed it (default: its current version). */
  issuerVersion?: number;
  /** Serial number as lower-case hex without leading "0x". */
  serialHex: string;
  subjectDn: string;
  sans?: string[];
  notBefore: Date;
  notAfter: Date;
  pem: string;
  operationId?: string | null;
  requesterId?: string | null;
}

export interface CertificateFilter {
  issuerKeyid?: string;
  serialHex?: string;
  /** Case-insensitive substring of the subject DN. */
  subjectContains?: string;
  operationId?: string;
  revoked?: boolean;
  /**
   * Only certificates of these issuing keys (the visibility policy, @keyserver/authz `visibility.certificate`: keys the
   * caller holds a grant on). Applied in the query, so that no page or cursor is ever made of certificates the caller
   * may not see; absent for callers who see everything.
   */
  visibleIssuerKeyids?: readonly string[];
  cursor?: string;
  limit?: number;
}

const normSerial = (s: string): string => s.toLowerCase().replace(/^0x/, '');

/** Certificates issued by CA keys and their revocation (CRLs: crl.repository.ts). */
export class CertificateRepository {
  constructor(private readonly db: Db) {}

  /** Stores an issued certificate; a serial already used by the issuer is `conflict`. */
  async insert(input: InsertCertificateInput, audit?: AuditInput): Promise<Certificate> {
    try {
      return await this.db.transaction(async (tx) => {
        const key = await tx.key.findUnique({ where: { keyid: input.issuerKeyid } });
        if (!key) throw new DataAccessError('not_found', `key ${input.issuerKeyid} not found`);
        const c = await tx.certificate.create({
          data: {
            issuerKeyId: key.id,
            issuerVersion: input.issuerVersion ?? key.currentVersion,
            serialHex: normSerial(input.serialHex),
            subjectDn: input.subjectDn,
            sans: input.sans ?? [],
            notBefore: input.notBefore,
            notAfter: input.notAfter,
            pem: input.pem,
            operationId: input.operationId ?? null,
            requesterId: input.requesterId ?? null,
          },
          include: withIssuer,
        });
        if (audit) {
          await appendAuditTx(tx, {
            ...audit,
            keyid: input.issuerKeyid,
            operationId: input.operationId ?? audit.operationId ?? null,
            details: { ...audit.details, serialHex: c.serialHex },
          });
        }
        return toCertificate(c);
      });
    } catch (err) {
      return mapPrismaError(err, 'certificate serial');
    }
  }

  async get(issuerKeyid: string, serialHex: string): Promise<Certificate> {
    const c = await this.db.prisma.certificate.findFirst({
      where: { issuerKey: { keyid: issuerKeyid }, serialHex: normSerial(serialHex) },
      include: withIssuer,
    });
    if (!c) throw new DataAccessError('not_found', 'certificate not found');
    return toCertificate(c);
  }

  /** Lists newest first; the cursor is the last item's id. */
  async list(filter: CertificateFilter = {}): Promise<Page<Certificate>> {
    const limit = clampLimit(filter.limit);
    const rows = await this.db.prisma.certificate.findMany({
      where: {
        AND: [
          ...(filter.issuerKeyid ? [{ issuerKey: { keyid: filter.issuerKeyid } }] : []),
          ...(filter.visibleIssuerKeyids ? [{ issuerKey: { keyid: { in: [...filter.visibleIssuerKeyids] } } }] : []),
        ],
        serialHex: filter.serialHex ? normSerial(filter.serialHex) : undefined,
        subjectDn: filter.subjectContains ? { contains: filter.subjectContains, mode: 'insensitive' } : undefined,
        operationId: filter.operationId,
        revokedAt: filter.revoked === undefined ? undefined : filter.revoked ? { not: null } : null,
      },
      include: withIssuer,
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: limit + 1,
      ...(filter.cursor ? { cursor: { id: filter.cursor }, skip: 1 } : {}),
    });
    const items = rows.slice(0, limit).map(toCertificate);
    return { items, nextCursor: rows.length > limit ? items[items.length - 1].id : null };
  }

  /**
   * Revokes once; revoking an already revoked certificate is `invalid_state`, and so is a revocation after the issuing
   * key pair signed its final CRL (the CRL could not list it: {@link lockCrlScopeForRevocation}).
   */
  async revoke(issuerKeyid: string, serialHex: string, reason: string, at = new Date(), audit?: AuditInput): Promise<Certificate> {
    return this.db.transaction(async (tx) => {
      const signedBy = await tx.certificate.findFirst({ where: { issuerKey: { keyid: issuerKeyid }, serialHex: normSerial(serialHex) }, select: { issuerKeyId: true, issuerVersion: true } });
      if (!signedBy) throw new DataAccessError('not_found', 'certificate not found');
      await lockCrlScopeForRevocation(tx, signedBy.issuerKeyId, signedBy.issuerVersion);
      const n = await tx.certificate.updateMany({
        where: { issuerKey: { keyid: issuerKeyid }, serialHex: normSerial(serialHex), revokedAt: null },
        data: { revokedAt: at, revocationReason: reason },
      });
      const c = await tx.certificate.findFirst({
        where: { issuerKey: { keyid: issuerKeyid }, serialHex: normSerial(serialHex) },
        include: withIssuer,
      });
      if (!c) throw new DataAccessError('not_found', 'certificate not found');
      if (n.count === 0) throw new DataAccessError('invalid_state', 'certificate is already revoked');
      if (audit) await appendAuditTx(tx, { ...audit, keyid: issuerKeyid, details: { ...audit.details, serialHex: c.serialHex } });
      return toCertificate(c);
    });
  }

}
