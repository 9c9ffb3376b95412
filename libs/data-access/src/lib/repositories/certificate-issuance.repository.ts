import type { Certificate as CertificateRow } from '../../generated/prisma/client';
import { mapPrismaError, type Db, type Tx } from '../db';
import { DataAccessError } from '../errors';
import type { AuditEvent, AuditInput, Certificate } from '../types';
import { appendAuditTx } from './audit.repository';
import { lockOperation } from './operation.repository';

/** One usage of (operation, key) checked under the operation's row lock; see {@link reserveUsageTx}. */
export interface ReservedUsage {
  operationId: string;
  opKeyId: string;
  keyId: string;
  usagesAllowed: number;
  usagesUsed: number;
  /** True when this usage is the last one of the whole operation (it becomes EXHAUSTED on consume). */
  lastOfOperation: boolean;
}

/**
 * Inside a transaction: locks the operation and its key row and checks, exactly like
 * {@link SignOrderRepository.recordWithUsage}, that one usage of `keyid` may be consumed now
 * (usable state, window, usages left, digest allowed when the operation lists digests).
 */
export async function reserveUsageTx(tx: Tx, req: { operationId: string; keyid: string; digest: string | null; now?: Date }): Promise<ReservedUsage> {
  await lockOperation(tx, req.operationId);
  const op = await tx.operation.findUniqueOrThrow({ where: { id: req.operationId }, include: { keys: true } });
  const rows = await tx.$queryRaw<{ opKeyId: string; keyId: string; usagesAllowed: number; usagesUsed: number; keyState: string }[]>`
    SELECT ok."id" AS "opKeyId", ok."keyId", ok."usagesAllowed", ok."usagesUsed", k."state"::text AS "keyState"
    FROM "operation_key" ok JOIN "key" k ON k."id" = ok."keyId"
    WHERE ok."operationId" = ${req.operationId}::uuid AND k."keyid" = ${req.keyid}
    FOR UPDATE OF ok`;
  const usage = rows[0];
  if (!usage) throw new DataAccessError('key_not_in_operation', `key ${req.keyid} is not part of the operation`);
  if (usage.keyState !== 'ACTIVE') throw new DataAccessError('key_revoked', `key ${req.keyid} is revoked`);
  const openWithoutApproval = op.state === 'REQUESTED' && op.keys.every((k) => k.requiredApprovers === 0);
  if (op.state === 'EXHAUSTED') throw new DataAccessError('usage_exhausted', 'operation is exhausted');
  if (op.state !== 'APPROVED' && !openWithoutApproval) throw new DataAccessError('operation_not_usable', `operation is ${op.state}`);
  const now = req.now ?? new Date();
  if (now < op.validFrom || now >= op.validTo) throw new DataAccessError('outside_window', 'operation is not valid now');
  if (usage.usagesUsed >= usage.usagesAllowed) throw new DataAccessError('usage_exhausted', 'no usages left for this key');
  const digest = req.digest?.toLowerCase() ?? null;
  if (op.digests.length > 0 && (digest === null || !op.digests.includes(digest))) {
    throw new DataAccessError('digest_not_allowed', 'digest is not allowed by the operation');
  }
  const lastOfOperation = op.keys.every((k) => (k.id === usage.opKeyId ? usage.usagesUsed + 1 : k.usagesUsed) >= k.usagesAllowed);
  return { operationId: op.id, opKeyId: usage.opKeyId, keyId: usage.keyId, usagesAllowed: usage.usagesAllowed, usagesUsed: usage.usagesUsed, lastOfOperation };
}

/** Consumes the usage reserved by {@link reserveUsageTx} in the same transaction. */
export async function consumeUsageTx(tx: Tx, r: ReservedUsage): Promise<void> {
  await tx.operationKey.update({ where: { id: r.opKeyId }, data: { usagesUsed: { increment: 1 } } });
  if (r.lastOfOperation) await tx.operation.update({ where: { id: r.operationId }, data: { state: 'EXHAUSTED' } });
}

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

type Row = CertificateRow & { issuerKey: { keyid: string } };

const toCertificate = (c: Row): Certificate => ({
  id: c.id,
  issuerKeyid: c.issuerKey.keyid,
  serialHex: c.serialHex,
  subjectDn: c.subjectDn,
  sans: c.sans,
  notBefore: c.notBefore,
  notAfter: c.notAfter,
  pem: c.pem,
  operationId: c.operationId,
  requesterId: c.requesterId,
  revokedAt: c.revokedAt,
  revocationReason: c.revocationReason,
  createdAt: c.createdAt,
});

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
