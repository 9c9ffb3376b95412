import type { Key as KeyRow, Prisma } from '../../generated/prisma/client';
import { mapPrismaError, sqlQuery, type Db, type Tx } from '../db';
import { DataAccessError } from '../errors';
import type { AuditInput, HashAlgorithm, Key, KeyAlgorithm, KeyState, KeyType } from '../types';
import { appendAuditTx } from './audit.repository';

export interface CreateKeyInput {
  keyid: string;
  type: KeyType;
  algorithm: KeyAlgorithm;
  hash: HashAlgorithm;
  requiredApprovers?: number;
  /** CKA_ID as lower-case hex. */
  hsmKeyId: string;
  /** keyid of the issuing key (omit for a self-signed root). */
  parentKeyid?: string | null;
  certificatePem: string;
  certificateSerial: string;
  notBefore: Date;
  notAfter: Date;
  product?: string | null;
  profile?: Record<string, unknown>;
  pathLen?: number | null;
  issuerChainPem?: string | null;
}

type KeyWithParent = KeyRow & { parent: { keyid: string } | null };

export const toKey = (k: KeyWithParent): Key => ({
  id: k.id,
  keyid: k.keyid,
  type: k.type,
  algorithm: k.algorithm,
  hash: k.hash,
  requiredApprovers: k.requiredApprovers,
  state: k.state,
  hsmKeyId: k.hsmKeyId,
  parentKeyid: k.parent?.keyid ?? null,
  certificatePem: k.certificatePem,
  certificateSerial: k.certificateSerial,
  notBefore: k.notBefore,
  notAfter: k.notAfter,
  product: k.product,
  profile: k.profile,
  crlNumber: k.crlNumber,
  revokedAt: k.revokedAt,
  revocationReason: k.revocationReason,
  createdAt: k.createdAt,
  currentVersion: k.currentVersion,
  pathLen: k.pathLen,
  issuerChainPem: k.issuerChainPem,
  retiredAt: k.retiredAt,
  destroyedAt: k.destroyedAt,
});

export const withParent = { parent: { select: { keyid: true } } } as const;

function assertApprovers(n: number): void {
  if (!Number.isInteger(n) || n < 0) throw new DataAccessError('invalid_input', 'requiredApprovers must be an integer >= 0');
}

/** Locks the key row for the rest of the transaction and returns what it held when locked. */
async function lockKey(tx: Tx, keyid: string): Promise<{ id: string; requiredApprovers: number }> {
  const rows = await tx.$queryRaw<{ id: string; requiredApprovers: number }[]>`
    SELECT "id", "requiredApprovers" FROM "key" WHERE "keyid" = ${keyid} FOR UPDATE`;
  if (rows.length === 0) throw new DataAccessError('not_found', `key ${keyid} not found`);
  return rows[0];
}

/**
 * Takes the keyid's transaction-scoped advisory lock ('keyid:' namespace, hashed by PostgreSQL). Every transaction
 * that claims a keyid (a key or a pending key: two tables, one namespace) or makes the database name a new HSM key
 * pair for it takes it first, and the cleanup of a failed change decides under it (ADR 0042): a claim sees the
 * other table's committed row, and a cleanup never reads "not named" while a commit that names the key pair is
 * still under way.
 */
export async function lockKeyid(tx: Tx, keyid: string): Promise<void> {
  await tx.$queryRaw`SELECT 1 AS "locked" FROM pg_advisory_xact_lock(hashtextextended(${`keyid:${keyid}`}, 0))`;
}

/** HSM-backed keys (roots, CAs, firmware signing keys) and their certificates. */
export class KeyRepository {
  constructor(private readonly db: Db) {}

  /**
   * Keys matching the filter, by keyid; `orderBy: 'type'` puts them in the hierarchy's order first (ROOT, CA, FW: the
   * enum's order in PostgreSQL), then by keyid.
   */
  async list(filter: { type?: KeyType; state?: KeyState } = {}, orderBy: 'keyid' | 'type' = 'keyid'): Promise<Key[]> {
    const order: Prisma.KeyOrderByWithRelationInput[] = orderBy === 'type' ? [{ type: 'asc' }, { keyid: 'asc' }] : [{ keyid: 'asc' }];
    const rows = await this.db.prisma.key.findMany({ where: { type: filter.type, state: filter.state }, include: withParent, orderBy: order });
    return rows.map(toKey);
  }

  async getByKeyid(keyid: string): Promise<Key> {
    const k = await this.findByKeyid(keyid);
    if (!k) throw new DataAccessError('not_found', `key ${keyid} not found`);
    return k;
  }

  /**
   * {@link findByKeyid} through the access cache (ADR 0028), for the sign path: the reservation statement re-checks
   * the key's state in the database anyway.
   */
  findByKeyidCached(keyid: string): Promise<Key | null> {
    return this.db.access.through('key', keyid, () => this.findByKeyid(keyid));
  }

  async findByKeyid(keyid: string): Promise<Key | null> {
    // On every sign order and certificate: one statement on the raw pool.
    const rows = await sqlQuery<Omit<Key, 'crlNumber'> & { crlNumber: string }>(
      this.db,
      `SELECT k."id", k."keyid", k."type"::text AS "type", k."algorithm"::text AS "algorithm", k."hash"::text AS "hash",
              k."requiredApprovers", k."state"::text AS "state", k."hsmKeyId", p."keyid" AS "parentKeyid", k."certificatePem",
              k."certificateSerial", k."notBefore", k."notAfter", k."product", k."profile", k."crlNumber"::text AS "crlNumber",
              k."revokedAt", k."revocationReason", k."createdAt", k."currentVersion", k."pathLen", k."issuerChainPem",
              k."retiredAt", k."destroyedAt"
       FROM "key" k LEFT JOIN "key" p ON p."id" = k."parentId" WHERE k."keyid" = $1`,
      [keyid],
    );
    const k = rows[0];
    return k ? { ...k, crlNumber: BigInt(k.crlNumber) } : null;
  }

  /**
   * Stores a key and its version 1 (issued by the parent's current version); with `audit`, its event is written in
   * the same transaction (keyid set to the new key's).
   */
  async create(input: CreateKeyInput, audit?: AuditInput): Promise<Key> {
    assertApprovers(input.requiredApprovers ?? 0);
    try {
      return await this.db.transaction(async (tx) => {
        await lockKeyid(tx, input.keyid);
        if (await tx.pendingKey.findUnique({ where: { keyid: input.keyid }, select: { id: true } })) {
          throw new DataAccessError('conflict', `key ${input.keyid} exists (waiting for its certificate)`);
        }
        const k = await insertKeyTx(tx, input);
        if (audit) await appendAuditTx(tx, { ...audit, keyid: k.keyid });
        return toKey(k);
      });
    } catch (err) {
      return mapPrismaError(err, `key ${input.keyid}`);
    }
  }

  /**
   * Marks a key revoked: ACTIVE -> REVOKED exactly once (a conditional update, so of concurrent revocations one
   * wins and the others get `invalid_state`). With `audit`, only the winning revocation writes its event, in the
   * same transaction.
   */
  async revoke(keyid: string, reason: string, at = new Date(), audit?: AuditInput): Promise<Key> {
    try {
      return await this.db.transaction(async (tx) => {
        // A retired key can still be revoked (its certificates are still published until they expire).
        const n = await tx.key.updateMany({
          where: { keyid, state: { in: ['ACTIVE', 'RETIRED'] } },
          data: { state: 'REVOKED', revokedAt: at, revocationReason: reason },
        });
        const k = await tx.key.findUnique({ where: { keyid }, include: withParent });
        if (!k) throw new DataAccessError('not_found', `key ${keyid} not found`);
        if (n.count === 0) throw new DataAccessError('invalid_state', `key ${keyid} is already revoked`);
        // Every version's certificate goes on the issuer's CRL.
        await tx.keyVersion.updateMany({ where: { keyId: k.id, state: { not: 'REVOKED' } }, data: { state: 'REVOKED', revokedAt: at, revocationReason: reason } });
        if (audit) await appendAuditTx(tx, { ...audit, keyid });
        return toKey(k);
      });
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  /**
   * Sets how many approvers each operation on the key needs. The key row is locked (SELECT ... FOR UPDATE) while the
   * old value is read, so with `audit` the event's `requiredApprovers: { before, after }` is true even when
   * administrators change it concurrently; the event is written in the same transaction.
   * A raise applies to the key's open operations at once (ADR 0012): each REQUESTED or APPROVED operation on the key
   * needs the new number for it, and an APPROVED one short of it is REQUESTED again (listed in the event as
   * `reopened`), so an operation ordered while the key needed fewer approvers (a development key about to become a
   * production one) cannot be used past the raise. A lowering applies to new operations only.
   */
  async setRequiredApprovers(keyid: string, requiredApprovers: number, audit?: AuditInput): Promise<Key> {
    assertApprovers(requiredApprovers);
    try {
      return await this.db.transaction(async (tx) => {
        // The open operations first, in id order, as an approval locks its operation before anything of the key
        // (its approval row's foreign key): a concurrent approval is seen whole or waits for this change.
        await tx.$queryRaw`
          SELECT o."id" FROM "operation" o
          WHERE o."state" IN ('REQUESTED', 'APPROVED')
            AND o."id" IN (SELECT ok."operationId" FROM "operation_key" ok JOIN "key" k ON k."id" = ok."keyId" WHERE k."keyid" = ${keyid})
          ORDER BY o."id" FOR UPDATE OF o`;
        const before = await lockKey(tx, keyid);
        const k = await tx.key.update({ where: { keyid }, data: { requiredApprovers }, include: withParent });
        let reopened: string[] = [];
        if (requiredApprovers > before.requiredApprovers) {
          await tx.$executeRaw`
            UPDATE "operation_key" ok SET "requiredApprovers" = ${requiredApprovers}
            FROM "operation" o
            WHERE ok."keyId" = ${before.id}::uuid AND o."id" = ok."operationId" AND o."state" IN ('REQUESTED', 'APPROVED')
              AND ok."requiredApprovers" < ${requiredApprovers}`;
          const rows = await tx.$queryRaw<{ id: string }[]>`
            UPDATE "operation" o SET "state" = 'REQUESTED', "updatedAt" = now()
            WHERE o."state" = 'APPROVED' AND EXISTS (
              SELECT 1 FROM "operation_key" ok
              WHERE ok."operationId" = o."id" AND ok."keyId" = ${before.id}::uuid
                AND (SELECT count(*) FROM "approval" a WHERE a."operationId" = o."id" AND a."keyId" = ok."keyId") < ok."requiredApprovers")
            RETURNING o."id"::text AS "id"`;
          reopened = rows.map((r) => r.id).sort();
        }
        if (audit) {
          await appendAuditTx(tx, {
            ...audit,
            keyid,
            details: { ...audit.details, requiredApprovers: { before: before.requiredApprovers, after: requiredApprovers }, ...(reopened.length ? { reopened } : {}) },
          });
        }
        return toKey(k);
      });
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  /**
   * Whether any key, key version or pending (version of a) key names this HSM key (CKA_ID hex, the exact identity of
   * one generated key pair): a key pair generated for a change whose commit was not confirmed may be in use, and
   * must not be destroyed as an orphan. Read under `keyid`'s lock (ADR 0042), so a transaction of that change still
   * committing is waited for (at most 10 s: then this fails, and the caller leaves the key pair in the HSM).
   */
  async namesHsmKey(hsmKeyId: string, keyid: string): Promise<boolean> {
    const id = hsmKeyId.toLowerCase();
    try {
      return await this.db.transaction(async (tx) => {
        await tx.$executeRaw`SET LOCAL lock_timeout = '10s'`;
        await lockKeyid(tx, keyid);
        const rows = await tx.$queryRaw<{ named: boolean }[]>`
          SELECT EXISTS (SELECT 1 FROM "key" WHERE "hsmKeyId" = ${id}) OR EXISTS (SELECT 1 FROM "key_version" WHERE "hsmKeyId" = ${id})
              OR EXISTS (SELECT 1 FROM "pending_key" WHERE "hsmKeyId" = ${id}) OR EXISTS (SELECT 1 FROM "pending_key_version" WHERE "hsmKeyId" = ${id}) AS "named"`;
        return rows[0]?.named === true;
      });
    } catch (err) {
      return mapPrismaError(err, `HSM key ${id}`);
    }
  }

  /** How much a key has been used: sign orders (raw and firmware) made and certificates issued with it. */
  async usage(keyid: string): Promise<{ signOrders: number; certificatesIssued: number; lastUsedAt: Date | null }> {
    const key = await this.db.prisma.key.findUnique({ where: { keyid }, select: { id: true } });
    if (!key) throw new DataAccessError('not_found', `key ${keyid} not found`);
    const [signOrders, certificatesIssued, lastOrder, lastCert] = await Promise.all([
      this.db.prisma.signOrder.count({ where: { keyId: key.id } }),
      this.db.prisma.certificate.count({ where: { issuerKeyId: key.id } }),
      this.db.prisma.signOrder.findFirst({ where: { keyId: key.id }, orderBy: { createdAt: 'desc' }, select: { createdAt: true } }),
      this.db.prisma.certificate.findFirst({ where: { issuerKeyId: key.id }, orderBy: { createdAt: 'desc' }, select: { createdAt: true } }),
    ]);
    const last = [lastOrder?.createdAt, lastCert?.createdAt].filter((d): d is Date => !!d).sort((a, b) => b.getTime() - a.getTime())[0];
    return { signOrders, certificatesIssued, lastUsedAt: last ?? null };
  }

}

/**
 * Inserts a key with its version 1 under its issuer's current version, in the caller's transaction: one writer for
 * keys created at once (POST /keys, the ceremony) and keys activated after an external CA certified them.
 */
export async function insertKeyTx(tx: Tx, input: CreateKeyInput) {
  let parentId: string | null = null;
  let parentVersion: number | null = null;
  if (input.parentKeyid) {
    const parent = await tx.key.findUnique({ where: { keyid: input.parentKeyid }, select: { id: true, currentVersion: true } });
    if (!parent) throw new DataAccessError('not_found', `key ${input.parentKeyid} not found`);
    parentId = parent.id;
    parentVersion = parent.currentVersion;
  }
  const hsmKeyId = input.hsmKeyId.toLowerCase();
  return tx.key.create({
    data: {
      keyid: input.keyid,
      type: input.type,
      algorithm: input.algorithm,
      hash: input.hash,
      requiredApprovers: input.requiredApprovers ?? 0,
      hsmKeyId,
      parentId,
      certificatePem: input.certificatePem,
      certificateSerial: input.certificateSerial,
      notBefore: input.notBefore,
      notAfter: input.notAfter,
      product: input.product ?? null,
      profile: (input.profile ?? {}) as Prisma.InputJsonObject,
      pathLen: input.pathLen ?? null,
      issuerChainPem: input.issuerChainPem ?? null,
      versions: {
        create: {
          version: 1,
          hsmKeyId,
          certificatePem: input.certificatePem,
          certificateSerial: input.certificateSerial,
          notBefore: input.notBefore,
          notAfter: input.notAfter,
          issuerKeyid: input.parentKeyid ?? null,
          issuerVersion: parentVersion,
        },
      },
    },
    include: withParent,
  });
}
