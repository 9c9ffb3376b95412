import type { Key as KeyRow, Prisma } from '../../generated/prisma/client';
import { mapPrismaError, retryDeadlocks, sqlQuery, type Db, type Tx } from '../db';
import { DataAccessError } from '../errors';
import type { AuditInput, HashAlgorithm, Key, KeyAlgorithm, KeyState, KeyType } from '../types';
import { appendAuditTx } from './audit.repository';
import { lockCrlScopeForRevocation } from './crl.repository';
import { holdSession, type SessionScope } from './admin-participation';

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
  /** The issuing key's version that signed the certificate (default: its current one). */
  parentVersion?: number;
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
    SELECT "id", "requiredApprovers" FROM "key" WHERE "keyid" = ${keyid} FOR NO KEY UPDATE`;
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

/** A key a revocation revoked because a key above it was revoked (ADR 0041). */
export interface RevokedBelow {
  keyid: string;
  type: KeyType;
  /** keyid of the key that certified it. */
  issuer: string;
  previousState: Exclude<KeyState, 'REVOKED'>;
  /** Its versions this revocation revoked (every one not revoked before), ascending. */
  versions: number[];
  /** The reason recorded for it (and on its CRL entries): {@link cascadeReason}. */
  reason: string;
}

/** A revoked key and the keys revoked with it, top-down (an issuer before the keys it certified). */
export type KeyRevocation = Key & { revokedBelow: RevokedBelow[] };

/** The audit action of a key revoked because a key above it was (ADR 0041); details.cascade names that key. */
export const REVOKE_CASCADE_ACTION = 'key.revoke_cascade';

/**
 * The CRL reason of a key revoked below a revoked key: its own key pair was not compromised, its issuer's was
 * (RFC 5280 cACompromise); any other reason (superseded, cessationOfOperation, ...) applies to it as it is.
 */
export function cascadeReason(reason: string): string {
  return reason === 'keyCompromise' || reason === 'cACompromise' ? 'cACompromise' : reason;
}

type TreeRow = { id: string; keyid: string; type: KeyType; state: KeyState; parentKeyid: string | null; destroyed: boolean };

/**
 * Locks the key `keyid` and every key below it, in id order (the order operation creation locks keys in), and
 * returns them top-down (by depth, then keyid; empty when there is no such key). FOR NO KEY UPDATE: it conflicts with
 * every other key lock (FOR SHARE of a key creation on its issuer, FOR NO KEY UPDATE of a renewal, a retirement or a
 * destruction, FOR UPDATE NOWAIT of a new key pair) but not with the foreign-key checks of sign orders and certificates being stored. Creation locks its
 * issuer FOR SHARE before it inserts ({@link insertKeyTx}), so once a key is locked nothing can be created below it;
 * a key committed below between the read of the tree and its lock is found by the next read and locked in turn. That
 * second round is out of id order: against another transaction locking in id order it may deadlock, and PostgreSQL
 * aborts one of them, which its repository runs again ({@link retryDeadlocks}, ADR 0045).
 */
async function lockTree(tx: Tx, keyid: string): Promise<TreeRow[]> {
  const locked = new Set<string>();
  for (;;) {
    const ids = await tx.$queryRaw<{ id: string }[]>`
      WITH RECURSIVE t AS (SELECT "id" FROM "key" WHERE "keyid" = ${keyid} UNION SELECT c."id" FROM "key" c JOIN t ON c."parentId" = t."id")
      SELECT "id"::text AS "id" FROM t`;
    const fresh = ids.map((r) => r.id).filter((id) => !locked.has(id));
    if (fresh.length === 0) break;
    await tx.$queryRaw`SELECT 1 AS "locked" FROM "key" WHERE "id" = ANY(${fresh}::uuid[]) ORDER BY "id" FOR NO KEY UPDATE`;
    for (const id of fresh) locked.add(id);
  }
  return tx.$queryRaw<TreeRow[]>`
    WITH RECURSIVE t AS (
      SELECT "id", 0 AS "depth" FROM "key" WHERE "keyid" = ${keyid}
      UNION SELECT c."id", t."depth" + 1 FROM "key" c JOIN t ON c."parentId" = t."id")
    SELECT k."id"::text AS "id", k."keyid", k."type"::text AS "type", k."state"::text AS "state", p."keyid" AS "parentKeyid",
           k."destroyedAt" IS NOT NULL AS "destroyed"
    FROM t JOIN "key" k ON k."id" = t."id" LEFT JOIN "key" p ON p."id" = k."parentId"
    ORDER BY t."depth", k."keyid"`;
}

/** REVOKED: the key row and every version not revoked yet (their serials go on their issuer versions' CRLs); returns those versions. */
async function revokeKeyTx(tx: Tx, id: string, reason: string, at: Date): Promise<number[]> {
  const versions = await tx.keyVersion.findMany({ where: { keyId: id, state: { not: 'REVOKED' } }, select: { version: true }, orderBy: { version: 'asc' } });
  await tx.key.update({ where: { id }, data: { state: 'REVOKED', revokedAt: at, revocationReason: reason } });
  await tx.keyVersion.updateMany({ where: { keyId: id, state: { not: 'REVOKED' } }, data: { state: 'REVOKED', revokedAt: at, revocationReason: reason } });
  return versions.map((v) => v.version);
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

  /**
   * The certificates of a ROOT's versions with the external chain above each (ADR 0020 addendum "the renewed external
   * chain"), newest first: what a key certified by an earlier version of a rotated external ROOT is judged by.
   * Only read when the ROOT's current certificate did not certify that key (after a rotation); not cached here.
   */
  async versionChains(keyid: string): Promise<{ version: number; certificatePem: string; issuerChainPem: string | null }[]> {
    return sqlQuery<{ version: number; certificatePem: string; issuerChainPem: string | null }>(
      this.db,
      `SELECT v."version", v."certificatePem", v."issuerChainPem" FROM "key_version" v JOIN "key" k ON k."id" = v."keyId" WHERE k."keyid" = $1 ORDER BY v."version" DESC`,
      [keyid],
    );
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
  async create(input: CreateKeyInput, audit?: AuditInput, scope?: SessionScope): Promise<Key> {
    assertApprovers(input.requiredApprovers ?? 0);
    try {
      return await this.db.transaction(async (tx) => {
        // First, before any key, operation or CRL lock: the session's administrators, then the session read again (ADR 0012 addendum).
        await holdSession(tx, scope);
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
   * Revokes a key and, in the same transaction, every key below it (ADR 0041): keys it certified and keys they
   * certified, at every level, with every version, so that each serial goes on the CRL of the issuer version that
   * certified it (ADR 0029). Keys below that were revoked before keep their own revocation; destroyed ones keep their
   * state (nothing of them can sign). The key and every key below are locked first ({@link lockTree}): of concurrent
   * revocations one wins and the others get `invalid_state`; a key created, renewed or rotated below at the same time
   * is either seen and revoked, or refused because its issuer (or the key itself) is REVOKED. With `audit`, the
   * revocation writes its event (`details.revokedBelow` names the keys revoked with it) and one
   * {@link REVOKE_CASCADE_ACTION} event per key below, in the same transaction.
   */
  async revoke(keyid: string, reason: string, at = new Date(), audit?: AuditInput, scope?: SessionScope): Promise<KeyRevocation> {
    try {
      return await retryDeadlocks(() => this.db.transaction(async (tx) => {
        // First, before any key, operation or CRL lock: the session's administrators, then the session read again (ADR 0012 addendum).
        await holdSession(tx, scope);
        const [top, ...below] = await lockTree(tx, keyid);
        if (!top) throw new DataAccessError('not_found', `key ${keyid} not found`);
        // A retired key can still be revoked (its certificates are still published until they expire).
        if (top.state === 'REVOKED') throw new DataAccessError('invalid_state', `key ${keyid} is already revoked`);
        // Its serials go on its issuer's CRLs: after the key rows, the CRL locks of the issuer versions that signed its
        // versions, refused once one of them is final (the issuer is being destroyed; ADR 0045). The keys below need
        // none: their issuers are locked above, and a refresh of their CRLs locks the issuer's row first.
        const signers = await tx.$queryRaw<{ issuerId: string; issuerVersion: number }[]>`
          SELECT DISTINCT p."id"::text AS "issuerId", v."issuerVersion" FROM "key_version" v JOIN "key" p ON p."keyid" = v."issuerKeyid"
          WHERE v."keyId" = ${top.id}::uuid AND v."state" <> 'REVOKED' AND v."issuerVersion" IS NOT NULL`;
        for (const issuerId of new Set(signers.map((x) => x.issuerId))) {
          await lockCrlScopeForRevocation(tx, issuerId, signers.filter((x) => x.issuerId === issuerId).map((x) => x.issuerVersion));
        }
        await revokeKeyTx(tx, top.id, reason, at);
        const belowReason = cascadeReason(reason);
        const revokedBelow: RevokedBelow[] = [];
        for (const k of below) {
          if (k.state === 'REVOKED' || k.destroyed) continue;
          const versions = await revokeKeyTx(tx, k.id, belowReason, at);
          revokedBelow.push({ keyid: k.keyid, type: k.type, issuer: k.parentKeyid ?? keyid, previousState: k.state, versions, reason: belowReason });
        }
        if (audit) {
          await appendAuditTx(tx, revokedBelow.length ? { ...audit, keyid, details: { ...audit.details, revokedBelow: revokedBelow.map((b) => b.keyid) } } : { ...audit, keyid });
          for (const b of revokedBelow) {
            await appendAuditTx(tx, {
              ...audit,
              action: REVOKE_CASCADE_ACTION,
              keyid: b.keyid,
              details: { cascade: keyid, cascadeReason: reason, reason: b.reason, issuer: b.issuer, previousState: b.previousState, versions: b.versions },
            });
          }
        }
        const k = await tx.key.findUnique({ where: { id: top.id }, include: withParent });
        if (!k) throw new DataAccessError('not_found', `key ${keyid} not found`);
        return { ...toKey(k), revokedBelow };
      }));
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  /**
   * Sets how many approvers each operation on the key needs. The key row is locked (SELECT ... FOR NO KEY UPDATE) while the
   * old value is read, so with `audit` the event's `requiredApprovers: { before, after }` is true even when
   * administrators change it concurrently; the event is written in the same transaction.
   * A raise applies to the key's open operations at once (ADR 0012): each REQUESTED or APPROVED operation on the key
   * needs the new number for it, and an APPROVED one short of it is REQUESTED again (listed in the event as
   * `reopened`), so an operation ordered while the key needed fewer approvers (a development key about to become a
   * production one) cannot be used past the raise. A lowering applies to new operations only, and with `scope` (the
   * session it runs in) needs a session opened with powers (`admin_session_scope`).
   */
  async setRequiredApprovers(keyid: string, requiredApprovers: number, audit?: AuditInput, scope?: SessionScope): Promise<Key> {
    assertApprovers(requiredApprovers);
    try {
      return await this.db.transaction(async (tx) => {
        // First, before any key, operation or CRL lock: the session's administrators, then the session read again (ADR 0012 addendum).
        await holdSession(tx, scope);
        // The open operations next, in id order, as an approval locks its operation before anything of the key
        // (its approval row's foreign key): a concurrent approval is seen whole or waits for this change.
        await tx.$queryRaw`
          SELECT o."id" FROM "operation" o
          WHERE o."state" IN ('REQUESTED', 'APPROVED')
            AND o."id" IN (SELECT ok."operationId" FROM "operation_key" ok JOIN "key" k ON k."id" = ok."keyId" WHERE k."keyid" = ${keyid})
          ORDER BY o."id" FOR NO KEY UPDATE OF o`;
        const before = await lockKey(tx, keyid);
        // A lowering undoes the four-eyes rule of every later operation on the key, as unmaking an approver does:
        // only a session opened with powers may (ADR 0044 addendum). Read under the key's lock, so no race.
        if (scope && !scope.powers && requiredApprovers < before.requiredApprovers) {
          throw new DataAccessError('admin_session_scope', `lowering ${keyid}'s required approvers from ${before.requiredApprovers} to ${requiredApprovers}: only a session opened with powers may`);
        }
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
/** An issuer as {@link lockIssuer} locked it. */
export interface LockedIssuer {
  id: string;
  keyid: string;
  state: string;
  destroyed: boolean;
  currentVersion: number;
}

/**
 * Locks an issuer FOR SHARE until the commit, for a certificate it signed (a new key, ADR 0041, or a key's new
 * version, ADR 0045): its revocation (or one of a key above it) locks it first and then finds the new key or version
 * and revokes it too, or the certification waits for it and finds the issuer no longer ACTIVE. Null when there is none.
 */
export async function lockIssuer(tx: Tx, by: { id: string } | { keyid: string }): Promise<LockedIssuer | null> {
  const rows =
    'id' in by
      ? await tx.$queryRaw<LockedIssuer[]>`
          SELECT "id"::text AS "id", "keyid", "state"::text AS "state", "destroyedAt" IS NOT NULL AS "destroyed", "currentVersion" FROM "key" WHERE "id" = ${by.id}::uuid FOR SHARE`
      : await tx.$queryRaw<LockedIssuer[]>`
          SELECT "id"::text AS "id", "keyid", "state"::text AS "state", "destroyedAt" IS NOT NULL AS "destroyed", "currentVersion" FROM "key" WHERE "keyid" = ${by.keyid} FOR SHARE`;
  return rows[0] ?? null;
}

/** `invalid_state` unless the locked issuer may still certify: ACTIVE and not destroyed. */
export function assertIssuerCertifies(issuer: LockedIssuer): void {
  if (issuer.state !== 'ACTIVE' || issuer.destroyed) {
    throw new DataAccessError('invalid_state', `the issuer ${issuer.keyid} is ${issuer.destroyed ? 'destroyed' : issuer.state}: it certifies nothing new`);
  }
}

export async function insertKeyTx(tx: Tx, input: CreateKeyInput) {
  let parentId: string | null = null;
  let parentVersion: number | null = null;
  if (input.parentKeyid) {
    const parent = await lockIssuer(tx, { keyid: input.parentKeyid });
    if (!parent) throw new DataAccessError('not_found', `key ${input.parentKeyid} not found`);
    assertIssuerCertifies(parent);
    parentId = parent.id;
    parentVersion = input.parentVersion ?? parent.currentVersion;
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
          issuerChainPem: input.issuerChainPem ?? null,
        },
      },
    },
    include: withParent,
  });
}
