import { mapPrismaError, type Db } from '../db';
import { DataAccessError } from '../errors';
import type { AuditEvent, AuditInput, Certificate } from '../types';
import { appendAuditTx } from './audit.repository';
import { toCertificate } from './certificate-row';
import { consumeUsageTx, reserveUsageTx } from './usage';

/** What the issuing callback of {@link CertificateIssuanceRepository.issueWithUsage} returns. */
export interface IssuedCertificateRecord {
  serialHex: string;
  subjectDn: string;
  sans: string[];
  notBefore: Date;
  notAfter: Date;
  pem: string;
}

export interface IssueRequest {
  operationId: string;
  /** The issuing CA key. */
  issuerKeyid: string;
  requesterId: string;
  /** Digest checked against the operation's allowed digests (lower-case hex), null when none applies. */
  digest: string | null;
  /** Audit event appended in the same transaction (operationId, keyid and the serial are filled in). */
  audit: AuditInput;
  now?: Date;
}


const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Certificate issuance under an operation: one usage, the certificate row and its audit event, atomically. */
export class CertificateIssuanceRepository {
  constructor(private readonly db: Db) {}

  /**
   * In ONE transaction: reserves a usage of (operation, issuer key) under the operation's row lock, calls
   * `issue()` (the HSM signs) while the lock is held, then consumes the usage, stores the certificate and
   * appends the audit event. If `issue()` throws, nothing is consumed or stored and its error is rethrown.
   */
  async issueWithUsage(req: IssueRequest, issue: () => Promise<IssuedCertificateRecord>): Promise<{ certificate: Certificate; audit: AuditEvent }> {
    return this.db
      .transaction(async (tx) => {
        const reserved = await reserveUsageTx(tx, { operationId: req.operationId, keyid: req.issuerKeyid, digest: req.digest, now: req.now });
        const issued = await issue();
        await consumeUsageTx(tx, reserved);
        const c = await tx.certificate.create({
          data: {
            issuerKeyId: reserved.keyId,
            serialHex: issued.serialHex.toLowerCase().replace(/^0x/, ''),
            subjectDn: issued.subjectDn,
            sans: issued.sans,
            notBefore: issued.notBefore,
            notAfter: issued.notAfter,
            pem: issued.pem,
            operationId: req.operationId,
            requesterId: req.requesterId,
          },
          include: { issuerKey: { select: { keyid: true } } },
        });
        const audit = await appendAuditTx(tx, {
          ...req.audit,
          operationId: req.operationId,
          keyid: req.issuerKeyid,
          digest: req.digest,
          details: { ...req.audit.details, certificateId: c.id, serialHex: c.serialHex },
        });
        return { certificate: toCertificate(c), audit };
      })
      .catch((err: unknown) => mapPrismaError(err, 'certificate'));
  }

  /** One certificate by its id; a malformed or unknown id is `not_found`. */
  async getById(id: string): Promise<Certificate> {
    if (!UUID.test(id)) throw new DataAccessError('not_found', 'certificate not found');
    const c = await this.db.prisma.certificate.findUnique({ where: { id }, include: { issuerKey: { select: { keyid: true } } } });
    if (!c) throw new DataAccessError('not_found', 'certificate not found');
    return toCertificate(c);
  }
}
