import { randomUUID } from 'node:crypto';
import { UUID, isSerialInUse, sqlState, type Db } from '../db';
import { DataAccessError } from '../errors';
import type { AuditEvent, AuditInput, Certificate } from '../types';
import { toCertificate, withIssuer } from './certificate-row';
import { withIdempotentUsage } from './idempotency';
import type { UsageOptions } from './sign-order.repository';
import { finishReservation, type Reservation } from './usage';

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
  /**
   * The caller's Idempotency-Key (ADR 0012 addendum "idempotency, session 25"): a repeated (requester, key) returns the
   * stored certificate and answer without signing or a usage ({@link withIdempotentUsage}, shared with sign orders).
   */
  idempotencyKey?: string | null;
  /** With an idempotencyKey: {@link requestFingerprint} of the whole request; any difference is `idempotency_key_reused`. */
  requestHash?: string | null;
  /** The rest of the answer (the chain, the extensions not honoured): stored with a key, so a replay is the same answer. */
  answer?: CertificateAnswer;
  now?: Date;
}

/** What an issuance answers beside the certificate, kept for a replay. */
export interface CertificateAnswer {
  chain: string[];
  ignoredExtensions: string[];
}

/** Result of {@link CertificateIssuanceRepository.issueWithUsage}. */
export interface IssuedCertificate {
  certificate: Certificate;
  /** The request's answer (fresh), or the stored one (a replay). */
  answer: CertificateAnswer;
  /** True when an earlier certificate with the same (requester, idempotencyKey) was returned and nothing was signed. */
  replayed: boolean;
  /** The request id that issued it (a replay names it in its audit event). */
  firstRequestId: string | null;
  /** The issuance's audit event; null on a replay. */
  audit: AuditEvent | null;
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
   * the error rethrown: nothing is stored. With an idempotency key: a repeated (requester, key) is the stored
   * certificate and answer, byte for byte, without signing or a usage; one still in flight is `conflict`; another
   * request under it is `idempotency_key_reused` (the same code path as sign orders).
   */
  async issueWithUsage(req: IssueRequest, issue: (attempt: number) => Promise<IssuedCertificateRecord>): Promise<IssuedCertificate> {
    try {
      const done = await withIdempotentUsage<IssuedCertificate>(this.db, {
        reserve: {
          operationId: req.operationId,
          keyid: req.issuerKeyid,
          subjectId: req.requesterId,
          kind: 'certificate',
          digest: req.digest,
          idempotencyKey: req.idempotencyKey,
          requestId: req.audit.requestId,
          now: req.now,
          leaseMs: this.options.leaseMs,
        },
        replay: () => this.replay(req),
        perform: async (reservation) => {
          for (let attempt = 0; ; attempt++) {
            try {
              return await this.store(req, reservation, await issue(attempt));
            } catch (err) {
              if (!isSerialInUse(err)) throw err;
              if (attempt + 1 >= SERIAL_ATTEMPTS) throw new DataAccessError('serial_in_use', `the issuer already used ${SERIAL_ATTEMPTS} serial numbers in a row`, { cause: err });
            }
          }
        },
      });
      return done.value;
    } catch (err) {
      if (sqlState(err) === '23505') throw new DataAccessError('conflict', 'certificate already exists', { cause: err });
      throw err;
    }
  }

  /** The stored answer for a repeated (requester, idempotency key), or null when there is none yet. */
  private async replay(req: IssueRequest): Promise<IssuedCertificate | null> {
    if (!req.idempotencyKey) return null;
    const c = await this.db.prisma.certificate.findUnique({
      where: { requesterId_idempotencyKey: { requesterId: req.requesterId, idempotencyKey: req.idempotencyKey } },
      include: withIssuer,
    });
    if (!c) return null;
    if (c.requestHash !== (req.requestHash ?? null)) throw new DataAccessError('idempotency_key_reused', 'this Idempotency-Key was used for a different request');
    return { certificate: toCertificate(c), answer: { chain: c.replayChain, ignoredExtensions: c.replayIgnored }, replayed: true, firstRequestId: c.requestId, audit: null };
  }

  private async store(req: IssueRequest, reservation: Reservation, issued: IssuedCertificateRecord): Promise<IssuedCertificate> {
    const id = randomUUID();
    const serialHex = issued.serialHex.toLowerCase().replace(/^0x/, '');
    const answer: CertificateAnswer = { chain: req.answer?.chain ?? [], ignoredExtensions: req.answer?.ignoredExtensions ?? [] };
    const key = req.idempotencyKey ?? null;
    const requestId = req.audit.requestId ?? null;
    // The answer beside the certificate is kept only under a key (a replay needs it; nothing else reads it).
    const done = await finishReservation(
      this.db,
      reservation,
      (p) => `INSERT INTO "certificate" ("id", "issuerKeyId", "issuerVersion", "serialHex", "subjectDn", "sans", "notBefore", "notAfter", "pem", "operationId", "requesterId",
                "idempotencyKey", "requestHash", "requestId", "replayChain", "replayIgnored")
              SELECT ${p(id, 'uuid')}, d."keyId", ${p(req.issuerVersion, 'int4')}, ${p(serialHex)}, ${p(issued.subjectDn)}, ${p(issued.sans, 'text[]')}, ${p(issued.notBefore, 'timestamptz')},
                ${p(issued.notAfter, 'timestamptz')}, ${p(issued.pem)}, d."operationId", ${p(req.requesterId, 'uuid')},
                ${p(key)}, ${p(key ? (req.requestHash ?? null) : null)}, ${p(requestId)}, ${p(key ? answer.chain : [], 'text[]')}, ${p(key ? answer.ignoredExtensions : [], 'text[]')}
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
    return { certificate, answer, replayed: false, firstRequestId: requestId, audit: done.audit };
  }

  /** One certificate by its id; a malformed or unknown id is `not_found`. */
  async getById(id: string): Promise<Certificate> {
    if (!UUID.test(id)) throw new DataAccessError('not_found', 'certificate not found');
    const c = await this.db.prisma.certificate.findUnique({ where: { id }, include: { issuerKey: { select: { keyid: true } } } });
    if (!c) throw new DataAccessError('not_found', 'certificate not found');
    return toCertificate(c);
  }
}
