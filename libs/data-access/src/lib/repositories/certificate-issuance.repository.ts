import { randomUUID } from 'node:crypto';
import { UUID, isSerialInUse, sqlState, type Db } from '../db';
import { DataAccessError } from '../errors';
import type { AuditEvent, AuditInput, Certificate } from '../types';
import { toCertificate } from './certificate-row';
import type { UsageOptions } from './sign-order.repository';
import { finishReservation, releaseUsage, reserveUsage, type Reservation } from './usage';

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
  /** The version of the issuing key that signs (the one the caller read: its key pair and certificate). */
  issuerVersion: number;
  requesterId: string;
  /** Digest checked against the operation's allowed digests (lower-case hex), null when none applies. */
  digest: string | null;
  /** Audit event appended in the same transaction (operationId, keyid and the serial are filled in). */
  audit: AuditInput;
  now?: Date;
}

/**
 * Signings per issuance when the serial is already the issuer's: 127 random bits make a second collision in a row
 * impossible in practice, so a third means a broken serial source, refused (`serial_in_use`) rather than looped on.
 */
export const SERIAL_ATTEMPTS = 3;

/** Certificate issuance under an operation: one usage, the certificate row and its audit event, atomically. */
export class CertificateIssuanceRepository {
  constructor(
    private readonly db: Db,
    private readonly options: UsageOptions = {},
  ) {}

  /**
   * Takes one usage of (operation, issuer key), calls `issue(attempt)` (the HSM signs) with NO lock held, then stores
   * the certificate and its audit event in one transaction (see usage.ts). A serial the issuer already used (another
   * replica's certificate, or a key certificate of the same issuer) is refused by the database; `issue` is then called
   * again (attempt 1, 2) and must sign with a fresh serial, under the same reservation: one usage whatever the tries.
   * If `issue()` or storing throws otherwise, or every attempt collides (`serial_in_use`), the usage is given back and
   * the error rethrown: nothing is stored.
   */
  async issueWithUsage(req: IssueRequest, issue: (attempt: number) => Promise<IssuedCertificateRecord>): Promise<{ certificate: Certificate; audit: AuditEvent }> {
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
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.store(req, reservation, await issue(attempt));
        } catch (err) {
          if (!isSerialInUse(err)) throw err;
          if (attempt + 1 >= SERIAL_ATTEMPTS) throw new DataAccessError('serial_in_use', `the issuer already used ${SERIAL_ATTEMPTS} serial numbers in a row`, { cause: err });
        }
      }
    } catch (err) {
      await releaseUsage(this.db, reservation).catch(() => undefined);
      if (sqlState(err) === '23505') throw new DataAccessError('conflict', 'certificate already exists', { cause: err });
      throw err;
    }
  }

  private async store(req: IssueRequest, reservation: Reservation, issued: IssuedCertificateRecord): Promise<{ certificate: Certificate; audit: AuditEvent }> {
    const id = randomUUID();
    const serialHex = issued.serialHex.toLowerCase().replace(/^0x/, '');
    const done = await finishReservation(
      this.db,
      reservation,
      (p) => `INSERT INTO "certificate" ("id", "issuerKeyId", "issuerVersion", "serialHex", "subjectDn", "sans", "notBefore", "notAfter", "pem", "operationId", "requesterId")
              SELECT ${p(id, 'uuid')}, d."keyId", ${p(req.issuerVersion, 'int4')}, ${p(serialHex)}, ${p(issued.subjectDn)}, ${p(issued.sans, 'text[]')}, ${p(issued.notBefore, 'timestamptz')},
                ${p(issued.notAfter, 'timestamptz')}, ${p(issued.pem)}, d."operationId", ${p(req.requesterId, 'uuid')}
              FROM d RETURNING "createdAt"`,
      {
        ...req.audit,
        operationId: req.operationId,
        keyid: req.issuerKeyid,
        digest: req.digest,
        details: { ...req.audit.details, certificateId: id, serialHex },
      },
    );
    const certificate: Certificate = {
      id,
      issuerKeyid: req.issuerKeyid,
      issuerVersion: req.issuerVersion,
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
      createdAt: done.createdAt,
    };
    return { certificate, audit: done.audit };
  }

  /** One certificate by its id; a malformed or unknown id is `not_found`. */
  async getById(id: string): Promise<Certificate> {
    if (!UUID.test(id)) throw new DataAccessError('not_found', 'certificate not found');
    const c = await this.db.prisma.certificate.findUnique({ where: { id }, include: { issuerKey: { select: { keyid: true } } } });
    if (!c) throw new DataAccessError('not_found', 'certificate not found');
    return toCertificate(c);
  }
}
