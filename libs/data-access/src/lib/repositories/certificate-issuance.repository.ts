import { randomUUID } from 'node:crypto';
import type { PoolClient } from 'pg';
import { sqlQuery, sqlState, sqlTransaction, type Db } from '../db';
import { DataAccessError } from '../errors';
import type { AuditEvent, AuditInput, Certificate } from '../types';
import { appendAuditSql } from './audit.repository';
import { toCertificate } from './certificate-row';
import type { UsageOptions } from './sign-order.repository';
import { finishReservationTx, releaseUsage, reserveUsage } from './usage';

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

async function insertCertificate(client: PoolClient, req: IssueRequest, issuerKeyId: string, issued: IssuedCertificateRecord): Promise<Certificate> {
  const id = randomUUID();
  const serialHex = issued.serialHex.toLowerCase().replace(/^0x/, '');
  const rows = await sqlQuery<{ createdAt: Date }>(
    client,
    `INSERT INTO "certificate" ("id", "issuerKeyId", "serialHex", "subjectDn", "sans", "notBefore", "notAfter", "pem", "operationId", "requesterId")
     VALUES ($1::uuid, $2::uuid, $3, $4, $5::text[], $6, $7, $8, $9::uuid, $10::uuid) RETURNING "createdAt"`,
    [id, issuerKeyId, serialHex, issued.subjectDn, issued.sans, issued.notBefore, issued.notAfter, issued.pem, req.operationId, req.requesterId],
  );
  return {
    id,
    issuerKeyid: req.issuerKeyid,
    serialHex,
    subjectDn: issued.subjectDn,
    sans: issued.sans,
    notBefore: issued.notBefore,
    notAfter: issued.notAfter,
    pem: issued.pem,
    operationId: req.operationId,
    requesterId: req.requesterId,
    revokedAt: null,
    revocationReason: null,
    createdAt: rows[0].createdAt,
  };
}

/** Certificate issuance under an operation: one usage, the certificate row and its audit event, atomically. */
export class CertificateIssuanceRepository {
  constructor(
    private readonly db: Db,
    private readonly options: UsageOptions = {},
  ) {}

  /**
   * Takes one usage of (operation, issuer key), calls `issue()` (the HSM signs) with NO lock held, then stores
   * the certificate and its audit event in one transaction (see usage.ts). If `issue()` or storing throws
   * (e.g. a serial collision), the usage is given back and the error rethrown: nothing is stored.
   */
  async issueWithUsage(req: IssueRequest, issue: () => Promise<IssuedCertificateRecord>): Promise<{ certificate: Certificate; audit: AuditEvent }> {
    const reservation = await reserveUsage(this.db, {
      operationId: req.operationId,
      keyid: req.issuerKeyid,
      subjectId: req.requesterId,
      kind: 'certificate',
      digest: req.digest,
      requestId: req.audit.requestId,
      now: req.now,
      leaseMs: this.options.leaseMs,
    });
    try {
      const issued = await issue();
      return await sqlTransaction(this.db, async (client) => {
        await finishReservationTx(client, reservation);
        const certificate = await insertCertificate(client, req, reservation.keyId, issued);
        const audit = await appendAuditSql(client, {
          ...req.audit,
          operationId: req.operationId,
          keyid: req.issuerKeyid,
          digest: req.digest,
          details: { ...req.audit.details, certificateId: certificate.id, serialHex: certificate.serialHex },
        });
        return { certificate, audit };
      });
    } catch (err) {
      await releaseUsage(this.db, reservation).catch(() => undefined);
      if (sqlState(err) === '23505') throw new DataAccessError('conflict', 'certificate already exists', { cause: err });
      throw err;
    }
  }

  /** One certificate by its id; a malformed or unknown id is `not_found`. */
  async getById(id: string): Promise<Certificate> {
    if (!UUID.test(id)) throw new DataAccessError('not_found', 'certificate not found');
    const c = await this.db.prisma.certificate.findUnique({ where: { id }, include: { issuerKey: { select: { keyid: true } } } });
    if (!c) throw new DataAccessError('not_found', 'certificate not found');
    return toCertificate(c);
  }
}
