import type { KeyVersion as KeyVersionRow, PendingKey as PendingKeyRow, PendingKeyVersion as PendingKeyVersionRow } from '../../generated/prisma/client';
import { mapPrismaError, retryBusyRows, retryDeadlocks, type Db, type Tx } from '../db';
import { AUDIT_APPEND_LOCK } from '../audit-hash';
import { DataAccessError } from '../errors';
import type { AuditInput, Key, KeyType, KeyVersion, PendingKey } from '../types';
import { holdSession, type SessionScope } from './admin-participation';
import { appendAuditTx } from './audit.repository';
import { assertIssuerCertifies, insertKeyTx, lockIssuer, lockKeyid, toKey, withParent, type CreateKeyInput, type LockedIssuer } from './key.repository';


const toVersion = (keyid: string, v: KeyVersionRow): KeyVersion => ({
  keyid,
  version: v.version,
  hsmKeyId: v.hsmKeyId,
  certificatePem: v.certificatePem,
  certificateSerial: v.certificateSerial,
  notBefore: v.notBefore,
  notAfter: v.notAfter,
  issuerKeyid: v.issuerKeyid,
  issuerVersion: v.issuerVersion,
  state: v.state,
  createdAt: v.createdAt,
  retiredAt: v.retiredAt,
  revokedAt: v.revokedAt,
  revocationReason: v.revocationReason,
  destroyedAt: v.destroyedAt,
  issuerChainPem: v.issuerChainPem,
});

const toPending = (p: PendingKeyRow): PendingKey => ({
  keyid: p.keyid,
  type: p.type,
  algorithm: p.algorithm,
  hash: p.hash,
  requiredApprovers: p.requiredApprovers,
  hsmKeyId: p.hsmKeyId,
  csrPem: p.csrPem,
  adminSessionId: p.adminSessionId,
  createdAt: p.createdAt,
  cancelledAt: p.cancelledAt,
});

const toPendingVersion = (keyid: string, p: PendingKeyVersionRow): PendingKeyVersion => ({
  keyid,
  version: p.version,
  hsmKeyId: p.hsmKeyId,
  csrPem: p.csrPem,
  adminSessionId: p.adminSessionId,
  createdAt: p.createdAt,
  cancelledAt: p.cancelledAt,
});

/** A new certificate generation: a renewal (same hsmKeyId) or a rotation (a new key pair). */
export interface NewKeyVersion {
  hsmKeyId: string;
  certificatePem: string;
  certificateSerial: string;
  notBefore: Date;
  notAfter: Date;
  issuerKeyid: string | null;
  issuerVersion: number | null;
}

export type CreatePendingKeyInput = Omit<PendingKey, 'createdAt' | 'cancelledAt'>;

/** A rotation of an externally certified key waiting for the certificate its external root issues (ADR 0029). */
export interface PendingKeyVersion {
  keyid: string;
  version: number;
  hsmKeyId: string;
  csrPem: string;
  adminSessionId: string;
  createdAt: Date;
  /** Set by a cancellation that has not finished (ADR 0042): nothing imports it any more. */
  cancelledAt: Date | null;
}

/**
 * A key pair waiting for an external certificate that a cancellation marked (ADR 0042): version 1 is a pending key
 * (an external ceremony), a higher version the pending rotation of an externally certified key.
 */
export interface CancelledPending {
  keyid: string;
  version: number;
  hsmKeyId: string;
  createdAt: Date;
  cancelledAt: Date;
}

/** A key pair a cancellation gave up, recorded until the HSM no longer holds it (ADR 0042 addendum). */
export interface HsmKeyDisposal {
  hsmKeyId: string;
  keyid: string;
  version: number;
  createdAt: Date;
  attempts: number;
  lastError: string | null;
}

/**
 * Before a rotation changes the key row's "hsmKeyId" (a column of a unique index, so the UPDATE takes the row's FOR
 * UPDATE strength, which the foreign-key checks of sign orders and certificates being stored wait for): the audit append
 * lock first, then that row lock without waiting (ADR 0045 addendum "the lock-order review"). Holding the row while it
 * waited for the append lock deadlocked with a finish (the append lock, then its KEY SHARE on the key); waiting for the
 * row while holding the append lock would deadlock with an approval (its KEY SHARE, then the append lock). A row still
 * held is 55P03, and the caller runs the transaction again ({@link retryBusyRows}). A renewal (same key pair) changes no
 * key column and needs neither.
 */
async function lockKeyColumns(tx: Tx, id: string, hsmKeyId: string): Promise<void> {
  const [row] = await tx.$queryRaw<{ hsmKeyId: string }[]>`SELECT "hsmKeyId" FROM "key" WHERE "id" = ${id}::uuid`;
  if (row.hsmKeyId === hsmKeyId) return;
  await tx.$queryRaw`SELECT 1 AS "locked" FROM pg_advisory_xact_lock(${AUDIT_APPEND_LOCK}::bigint)`;
  await tx.$queryRaw`SELECT 1 AS "locked" FROM "key" WHERE "id" = ${id}::uuid FOR UPDATE NOWAIT`;
}

/** Makes `version` (= the current one + 1) the key's current version; the versions it supersedes become RETIRED. */
async function addVersionTx(tx: Tx, keyid: string, locked: { id: string }, version: number, v: NewKeyVersion, extra: { issuerChainPem?: string; pathLen?: number | null }) {
  await lockKeyColumns(tx, locked.id, v.hsmKeyId.toLowerCase());
  const now = new Date();
  await tx.keyVersion.updateMany({ where: { keyId: locked.id, state: 'ACTIVE' }, data: { state: 'RETIRED', retiredAt: now } });
  const row = await tx.keyVersion.create({
    data: {
      keyId: locked.id,
      version,
      hsmKeyId: v.hsmKeyId.toLowerCase(),
      certificatePem: v.certificatePem,
      certificateSerial: v.certificateSerial,
      notBefore: v.notBefore,
      notAfter: v.notAfter,
      issuerKeyid: v.issuerKeyid,
      issuerVersion: v.issuerVersion,
      issuerChainPem: extra.issuerChainPem ?? null,
    },
  });
  const k = await tx.key.update({
    where: { id: locked.id },
    data: { hsmKeyId: v.hsmKeyId.toLowerCase(), certificatePem: v.certificatePem, certificateSerial: v.certificateSerial, notBefore: v.notBefore, notAfter: v.notAfter, currentVersion: version, ...extra },
    include: withParent,
  });
  return { key: toKey(k), version: toVersion(keyid, row) };
}

/** Locks the key row; refuses a missing key. */
async function lockKey(tx: Tx, keyid: string): Promise<{ id: string; state: string; currentVersion: number; destroyedAt: Date | null }> {
  const rows = await tx.$queryRaw<{ id: string; state: string; currentVersion: number; destroyedAt: Date | null }[]>`
    SELECT "id", "state"::text AS "state", "currentVersion", "destroyedAt" FROM "key" WHERE "keyid" = ${keyid} FOR NO KEY UPDATE`;
  if (rows.length === 0) throw new DataAccessError('not_found', `key ${keyid} not found`);
  return rows[0];
}

/**
 * Locks a key row FOR NO KEY UPDATE and its issuer's FOR SHARE, in id order (the order of a revocation's tree and of operation
 * creation, ADR 0045); returns both as they were when locked (issuer null for a key without one).
 */
async function lockKeyAndIssuer(tx: Tx, keyid: string): Promise<{ key: Awaited<ReturnType<typeof lockKey>>; issuer: LockedIssuer | null }> {
  const rows = await tx.$queryRaw<{ id: string; parentId: string | null }[]>`SELECT "id"::text AS "id", "parentId"::text AS "parentId" FROM "key" WHERE "keyid" = ${keyid}`;
  if (rows.length === 0) throw new DataAccessError('not_found', `key ${keyid} not found`);
  // A key's issuer never changes; both ids are lower-case uuid text, which sorts as PostgreSQL orders uuids.
  const { id, parentId } = rows[0];
  const issuerFirst = parentId !== null && parentId < id;
  const issuer = issuerFirst ? await lockIssuer(tx, { id: parentId }) : null;
  const key = await lockKey(tx, keyid);
  return { key, issuer: issuerFirst || parentId === null ? issuer : await lockIssuer(tx, { id: parentId }) };
}

/** Keyids of the ACTIVE keys anywhere below the key `id` (certified by it, or by a key below it). */
async function activeBelow(tx: Tx, id: string): Promise<string[]> {
  const rows = await tx.$queryRaw<{ keyid: string }[]>`
    WITH RECURSIVE t AS (SELECT "id" FROM "key" WHERE "parentId" = ${id}::uuid UNION SELECT c."id" FROM "key" c JOIN t ON c."parentId" = t."id")
    SELECT k."keyid" FROM t JOIN "key" k ON k."id" = t."id" WHERE k."state" = 'ACTIVE' AND k."destroyedAt" IS NULL ORDER BY k."keyid"`;
  return rows.map((r) => r.keyid);
}

/** An ACTIVE key below an externally certified ROOT, read under the ROOT's lock: what a new external chain must still cover. */
export interface KeyBelow {
  keyid: string;
  type: KeyType;
  notAfter: Date;
  pathLen: number | null;
  /** 1: certified by the ROOT itself; 2: by a CA the ROOT certified; ... */
  depth: number;
}

/** Every ACTIVE key below the key `id`, at any depth, with its depth (1 = certified by it). */
async function keysBelow(tx: Tx, id: string): Promise<KeyBelow[]> {
  return tx.$queryRaw<KeyBelow[]>`
    WITH RECURSIVE t AS (SELECT "id", 1 AS "depth" FROM "key" WHERE "parentId" = ${id}::uuid
                         UNION SELECT c."id", t."depth" + 1 FROM "key" c JOIN t ON c."parentId" = t."id" WHERE t."depth" < 16)
    SELECT k."keyid", k."type"::text AS "type", k."notAfter", k."pathLen", t."depth"
      FROM t JOIN "key" k ON k."id" = t."id" WHERE k."state" = 'ACTIVE' AND k."destroyedAt" IS NULL ORDER BY t."depth", k."keyid"`;
}

/**
 * A new external chain (and possibly a re-issued certificate for the same key pair) for an externally certified ROOT
 * (ADR 0020 addendum "the renewed external chain").
 */
export interface ExternalChainChange {
  /** The state the caller verified the change against: anything committed since is `conflict`. */
  expected: { version: number; certificatePem: string; issuerChainPem: string };
  /** The ROOT's certificate re-issued for its current key pair: it becomes the next version (null: the certificate stays). */
  certificate: { certificatePem: string; certificateSerial: string; notBefore: Date; notAfter: Date } | null;
  issuerChainPem: string;
  /** The CA levels the certificate and the new chain allow below the ROOT (null: no constraint). */
  pathLen: number | null;
}

/** What a destruction of a key has to know, read under the key's lock ({@link KeyLifecycleRepository.destructionPlan}). */
export interface DestructionPlan {
  state: Key['state'];
  destroyed: boolean;
  /** The ACTIVE keys below it, at any depth: while there is one, it is not destroyed. */
  activeBelow: string[];
  /** Every HSM key of its versions and of a pending version: what the destruction deletes. */
  hsmKeyIds: string[];
}

/**
 * Versions, retirement, destruction and externally certified keys (ADR 0020). Every change locks the key row and
 * is conditional on the state it read, and writes its audit event in the same transaction: of concurrent changes
 * exactly one commits (the others get `invalid_state` or `conflict`).
 */
export class KeyLifecycleRepository {
  constructor(private readonly db: Db) {}

  /** Every version of a key, oldest first. */
  async versions(keyid: string): Promise<KeyVersion[]> {
    const k = await this.db.prisma.key.findUnique({ where: { keyid }, select: { id: true } });
    if (!k) throw new DataAccessError('not_found', `key ${keyid} not found`);
    const rows = await this.db.prisma.keyVersion.findMany({ where: { keyId: k.id }, orderBy: { version: 'asc' } });
    return rows.map((v) => toVersion(keyid, v));
  }

  /**
   * Adds version `expectedVersion + 1` to an ACTIVE key and makes it current: the key's columns (hsmKeyId,
   * certificate, validity) describe it from the commit on, so new sign orders use it; the versions it supersedes
   * become RETIRED (their certificates stay published). `conflict` when another change made a version first.
   */
  async addVersion(keyid: string, expectedVersion: number, v: NewKeyVersion, audit: AuditInput, scope?: SessionScope): Promise<{ key: Key; version: KeyVersion }> {
    try {
      return await retryBusyRows(() => retryDeadlocks(() => this.db.transaction(async (tx) => {
        await holdSession(tx, scope); // first: the session's administrators, the session read again (ADR 0012 addendum)
        await lockKeyid(tx, keyid);
        // The issuer FOR SHARE until the commit (ADR 0045): its retirement, revocation or destruction waits for this
        // version, or this waits for it and is refused; `invalid_state` either way (the key's own state is checked first).
        const { key: locked, issuer } = await lockKeyAndIssuer(tx, keyid);
        if (locked.state !== 'ACTIVE') throw new DataAccessError('invalid_state', `key ${keyid} is ${locked.state}`);
        if (issuer) assertIssuerCertifies(issuer);
        if (locked.currentVersion !== expectedVersion) throw new DataAccessError('conflict', `key ${keyid} has a newer version (${locked.currentVersion})`);
        if (await tx.pendingKeyVersion.findUnique({ where: { keyId: locked.id }, select: { id: true } })) throw new DataAccessError('conflict', `key ${keyid} has a pending version`);
        const version = locked.currentVersion + 1;
        const added = await addVersionTx(tx, keyid, locked, version, v, {});
        await appendAuditTx(tx, { ...audit, keyid, details: { ...audit.details, version, previousVersion: expectedVersion } });
        return added;
      })), `key ${keyid}`);
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  /**
   * Replaces the external chain above an ACTIVE externally certified ROOT and, when the external CA re-issued the
   * ROOT's certificate (same key pair), adds that certificate as the next version (the versions it supersedes become
   * RETIRED, their certificates stay published). One transaction under the keyid's lock and the key row's (FOR NO KEY
   * UPDATE: a key being created below the ROOT, which locks it FOR SHARE, commits first or waits); `assertBelow` is
   * called with the ACTIVE keys below the ROOT as they are under that lock and throws to refuse. Exactly once:
   * `conflict` when the key's version, certificate or chain is no longer `expected` (another change committed since
   * the caller verified), or a re-issued certificate meets a pending rotation; `invalid_state` when the key is not an
   * ACTIVE externally certified ROOT.
   */
  async replaceExternalChain(keyid: string, change: ExternalChainChange, assertBelow: (below: KeyBelow[]) => void, audit: AuditInput, scope?: SessionScope): Promise<{ key: Key; version: number }> {
    try {
      return await retryDeadlocks(() => this.db.transaction(async (tx) => {
        await holdSession(tx, scope); // first: the session's administrators, the session read again (ADR 0012 addendum)
        await lockKeyid(tx, keyid);
        const locked = await lockKey(tx, keyid);
        if (locked.state !== 'ACTIVE' || locked.destroyedAt) throw new DataAccessError('invalid_state', `key ${keyid} is ${locked.destroyedAt ? 'destroyed' : locked.state}`);
        const [row] = await tx.$queryRaw<{ hsmKeyId: string; certificatePem: string; issuerChainPem: string | null; parentId: string | null }[]>`
          SELECT "hsmKeyId", "certificatePem", "issuerChainPem", "parentId"::text AS "parentId" FROM "key" WHERE "id" = ${locked.id}::uuid`;
        if (row.parentId !== null || row.issuerChainPem === null) throw new DataAccessError('invalid_state', `key ${keyid} is not certified by an external root`);
        const { expected } = change;
        if (locked.currentVersion !== expected.version || row.certificatePem !== expected.certificatePem || row.issuerChainPem !== expected.issuerChainPem) {
          throw new DataAccessError('conflict', `the certificate or external chain of ${keyid} changed since this change was verified (version ${locked.currentVersion})`);
        }
        if (change.certificate && (await tx.pendingKeyVersion.findUnique({ where: { keyId: locked.id }, select: { id: true } }))) {
          throw new DataAccessError('conflict', `key ${keyid} has a pending version`);
        }
        assertBelow(await keysBelow(tx, locked.id));
        let version = locked.currentVersion;
        if (change.certificate) {
          version = locked.currentVersion + 1;
          await addVersionTx(tx, keyid, locked, version, { ...change.certificate, hsmKeyId: row.hsmKeyId, issuerKeyid: null, issuerVersion: null }, { issuerChainPem: change.issuerChainPem, pathLen: change.pathLen });
        } else {
          await tx.key.update({ where: { id: locked.id }, data: { issuerChainPem: change.issuerChainPem, pathLen: change.pathLen } });
          await tx.keyVersion.updateMany({ where: { keyId: locked.id, version: locked.currentVersion }, data: { issuerChainPem: change.issuerChainPem } });
        }
        await appendAuditTx(tx, { ...audit, keyid, details: { ...audit.details, version, previousVersion: locked.currentVersion } });
        const k = await tx.key.findUniqueOrThrow({ where: { id: locked.id }, include: withParent });
        return { key: toKey(k), version };
      }));
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  /** ACTIVE -> RETIRED (every version): no new use; certificates stay published until they expire. */
  async retire(keyid: string, audit: AuditInput, scope?: SessionScope): Promise<Key> {
    try {
      return await this.db.transaction(async (tx) => {
        await holdSession(tx, scope); // first: the session's administrators, the session read again (ADR 0012 addendum)
        const locked = await lockKey(tx, keyid);
        if (locked.state !== 'ACTIVE') throw new DataAccessError('invalid_state', `key ${keyid} is ${locked.state}`);
        const now = new Date();
        await tx.keyVersion.updateMany({ where: { keyId: locked.id, state: 'ACTIVE' }, data: { state: 'RETIRED', retiredAt: now } });
        const k = await tx.key.update({ where: { id: locked.id }, data: { state: 'RETIRED', retiredAt: now }, include: withParent });
        await appendAuditTx(tx, { ...audit, keyid });
        return toKey(k);
      });
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  /**
   * What a destruction checks before it deletes anything, read under the key's lock (FOR NO KEY UPDATE: a creation below it,
   * which locks it FOR SHARE, has committed or waits and then finds it not ACTIVE): its state, the ACTIVE keys at
   * any depth below it (a destroyed CA would leave them unverifiable) and the HSM keys to delete. Once the key is not
   * ACTIVE nothing new is created, renewed or rotated below it and no key below becomes ACTIVE again, so an empty
   * `activeBelow` stays true until the destruction is marked (ADR 0045).
   */
  async destructionPlan(keyid: string, scope?: SessionScope): Promise<DestructionPlan> {
    try {
      return await this.db.transaction(async (tx) => {
        await holdSession(tx, scope); // first: the session's administrators, the session read again (ADR 0012 addendum)
        const locked = await lockKey(tx, keyid);
        const versions = await tx.keyVersion.findMany({ where: { keyId: locked.id }, select: { hsmKeyId: true }, orderBy: { version: 'asc' } });
        const pending = await tx.pendingKeyVersion.findUnique({ where: { keyId: locked.id }, select: { hsmKeyId: true } });
        return {
          state: locked.state as Key['state'],
          destroyed: locked.destroyedAt !== null,
          activeBelow: await activeBelow(tx, locked.id),
          hsmKeyIds: [...new Set([...versions.map((x) => x.hsmKeyId), ...(pending ? [pending.hsmKeyId] : [])])],
        };
      });
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  /**
   * Records that the HSM objects of a RETIRED or REVOKED key are gone (the caller deleted them first: deleting an
   * unknown object is a no-op, so a retry after a failure here is safe). Exactly once: `invalid_state` otherwise.
   */
  async markDestroyed(keyid: string, hsmKeyIds: string[], audit: AuditInput): Promise<Key> {
    try {
      return await this.db.transaction(async (tx) => {
        const locked = await lockKey(tx, keyid);
        if (locked.state === 'ACTIVE') throw new DataAccessError('invalid_state', `key ${keyid} is ACTIVE: retire or revoke it first`);
        if (locked.destroyedAt) throw new DataAccessError('invalid_state', `key ${keyid} was already destroyed`);
        const now = new Date();
        await tx.keyVersion.updateMany({ where: { keyId: locked.id }, data: { destroyedAt: now } });
        // A pending rotation's key pair went with the others (the caller deleted it too).
        await tx.pendingKeyVersion.deleteMany({ where: { keyId: locked.id } });
        const k = await tx.key.update({ where: { id: locked.id }, data: { destroyedAt: now }, include: withParent });
        await appendAuditTx(tx, { ...audit, keyid, details: { ...audit.details, hsmKeyIds } });
        return toKey(k);
      });
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  async findPending(keyid: string): Promise<PendingKey | null> {
    const p = await this.db.prisma.pendingKey.findUnique({ where: { keyid } });
    return p ? toPending(p) : null;
  }

  /** Records a key generated in the HSM whose certificate an external CA will issue; `conflict` if the keyid is taken. */
  async createPending(input: CreatePendingKeyInput, audit: AuditInput, scope?: SessionScope): Promise<PendingKey> {
    try {
      return await this.db.transaction(async (tx) => {
        await holdSession(tx, scope); // first: the session's administrators, the session read again (ADR 0012 addendum)
        // The keyid's lock first: a key being created with this keyid commits before the check below, or waits.
        await lockKeyid(tx, input.keyid);
        if (await tx.key.findUnique({ where: { keyid: input.keyid }, select: { id: true } })) throw new DataAccessError('conflict', `key ${input.keyid} exists`);
        const p = await tx.pendingKey.create({ data: { ...input, hsmKeyId: input.hsmKeyId.toLowerCase() } });
        await appendAuditTx(tx, { ...audit, keyid: input.keyid });
        return toPending(p);
      });
    } catch (err) {
      return mapPrismaError(err, `key ${input.keyid}`);
    }
  }

  /** The pending key becomes an ACTIVE key with its imported certificate (once: the pending row is deleted). */
  async activatePending(keyid: string, input: CreateKeyInput, audit: AuditInput, scope?: SessionScope): Promise<Key> {
    try {
      return await this.db.transaction(async (tx) => {
        await holdSession(tx, scope); // first: the session's administrators, the session read again (ADR 0012 addendum)
        await lockKeyid(tx, keyid);
        // A cancelled one is not imported: its key pair is being destroyed (ADR 0042).
        const n = await tx.pendingKey.deleteMany({ where: { keyid, cancelledAt: null } });
        if (n.count === 0) throw new DataAccessError('invalid_state', `key ${keyid} is not waiting for a certificate`);
        const k = await insertKeyTx(tx, { ...input, keyid });
        await appendAuditTx(tx, { ...audit, keyid });
        return toKey(k);
      });
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  async findPendingVersion(keyid: string): Promise<PendingKeyVersion | null> {
    const p = await this.db.prisma.pendingKeyVersion.findFirst({ where: { key: { keyid } } });
    return p ? toPendingVersion(keyid, p) : null;
  }

  /**
   * Records the new key pair of an externally certified key's rotation as version `expectedVersion + 1`, pending
   * until its certificate is imported: the key keeps using its current version. `conflict` when the key moved on
   * or already has a pending version, `invalid_state` when it is not ACTIVE.
   */
  async createPendingVersion(keyid: string, expectedVersion: number, input: { hsmKeyId: string; csrPem: string; adminSessionId: string }, audit: AuditInput, scope?: SessionScope): Promise<PendingKeyVersion> {
    try {
      return await this.db.transaction(async (tx) => {
        await holdSession(tx, scope); // first: the session's administrators, the session read again (ADR 0012 addendum)
        await lockKeyid(tx, keyid);
        const locked = await lockKey(tx, keyid);
        if (locked.state !== 'ACTIVE' || locked.destroyedAt) throw new DataAccessError('invalid_state', `key ${keyid} is ${locked.state}`);
        if (locked.currentVersion !== expectedVersion) throw new DataAccessError('conflict', `key ${keyid} has a newer version (${locked.currentVersion})`);
        const version = expectedVersion + 1;
        const p = await tx.pendingKeyVersion.create({ data: { keyId: locked.id, version, hsmKeyId: input.hsmKeyId.toLowerCase(), csrPem: input.csrPem, adminSessionId: input.adminSessionId } });
        await appendAuditTx(tx, { ...audit, keyid, details: { ...audit.details, version, pending: true } });
        return toPendingVersion(keyid, p);
      });
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  /**
   * The pending version becomes the key's current version with its imported certificate and chain (once: the
   * pending row is deleted in the same transaction). `invalid_state` when the key has no pending version `version`
   * or is no longer ACTIVE. `pathLen` (the CA levels the new certificate and its chain allow below the key) replaces
   * the key's, so keys created below it from now on fit the current version's certificate.
   */
  async activatePendingVersion(keyid: string, version: number, v: NewKeyVersion & { issuerChainPem: string; pathLen?: number | null }, audit: AuditInput, scope?: SessionScope): Promise<{ key: Key; version: KeyVersion }> {
    try {
      return await retryBusyRows(() => this.db.transaction(async (tx) => {
        await holdSession(tx, scope); // first: the session's administrators, the session read again (ADR 0012 addendum)
        await lockKeyid(tx, keyid);
        const locked = await lockKey(tx, keyid);
        const n = await tx.pendingKeyVersion.deleteMany({ where: { keyId: locked.id, version, hsmKeyId: v.hsmKeyId.toLowerCase(), cancelledAt: null } });
        if (n.count === 0) throw new DataAccessError('invalid_state', `key ${keyid} has no version ${version} waiting for a certificate`);
        if (locked.state !== 'ACTIVE' || locked.destroyedAt) throw new DataAccessError('invalid_state', `key ${keyid} is ${locked.state}`);
        if (version !== locked.currentVersion + 1) throw new DataAccessError('conflict', `key ${keyid} has a newer version (${locked.currentVersion})`);
        const { issuerChainPem, pathLen, ...nv } = v;
        const added = await addVersionTx(tx, keyid, locked, version, nv, { issuerChainPem, ...(pathLen !== undefined ? { pathLen } : {}) });
        await appendAuditTx(tx, { ...audit, keyid, details: { ...audit.details, version, previousVersion: locked.currentVersion } });
        return added;
      }), `key ${keyid}`);
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  /**
   * A cancellation's decision (ADR 0042 addendum), one transaction under the keyid's lock (and, for a pending version,
   * the key row's): deletes what waits for an external certificate under `keyid` — the pending key (version 1) or
   * else the key's pending version — records its key pair in `hsm_key_disposal` and appends the SUCCESS event. From
   * this commit on the keyid shows nothing pending (no `pendingVersion`, free for a new ceremony or rotation), no
   * import can take the key pair (imports delete the pending row under the same lock), and the key pair the HSM still
   * holds is named by the disposal row until it is destroyed. A row marked by the earlier three-step cancellation is
   * taken the same way. `invalid_state` when nothing waits, or not `version`; of two cancellations one decides.
   */
  async cancelPending(keyid: string, version: number | undefined, audit: (p: CancelledPending) => AuditInput, scope?: SessionScope): Promise<CancelledPending> {
    try {
      return await this.db.transaction(async (tx) => {
        await holdSession(tx, scope); // first: the session's administrators, the session read again (ADR 0012 addendum)
        await lockKeyid(tx, keyid);
        let cancelled: CancelledPending;
        const p = await tx.pendingKey.findUnique({ where: { keyid } });
        if (p) {
          if (version !== undefined && version !== 1) throw new DataAccessError('invalid_state', `key ${keyid} waits for the certificate of version 1, not ${version}`);
          await tx.pendingKey.delete({ where: { id: p.id } });
          cancelled = { keyid, version: 1, hsmKeyId: p.hsmKeyId, createdAt: p.createdAt, cancelledAt: new Date() };
        } else {
          // The key row too, in the order of the lifecycle's other changes: a destruction deleting the pending version waits.
          const rows = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "key" WHERE "keyid" = ${keyid} FOR NO KEY UPDATE`;
          const pv = rows.length ? await tx.pendingKeyVersion.findUnique({ where: { keyId: rows[0].id } }) : null;
          if (!pv) throw new DataAccessError('invalid_state', `key ${keyid} is not waiting for a certificate`);
          if (version !== undefined && version !== pv.version) throw new DataAccessError('invalid_state', `version ${version} of ${keyid} is not pending (version ${pv.version} is)`);
          await tx.pendingKeyVersion.delete({ where: { id: pv.id } });
          cancelled = { keyid, version: pv.version, hsmKeyId: pv.hsmKeyId, createdAt: pv.createdAt, cancelledAt: new Date() };
        }
        await tx.hsmKeyDisposal.create({ data: { hsmKeyId: cancelled.hsmKeyId.toLowerCase(), keyid, version: cancelled.version } });
        await appendAuditTx(tx, { ...audit(cancelled), keyid });
        return cancelled;
      });
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  /**
   * Key pairs a cancellation decided to destroy whose HSM objects may remain (oldest first; `hsmKeyId` narrows it to
   * one). A CKA_ID the database names anywhere else is never returned: that cannot happen (each generated pair has
   * its own), and if it did, keeping a key pair is recoverable, destroying one in use is not.
   */
  async disposalsDue(limit = 20, hsmKeyId?: string): Promise<HsmKeyDisposal[]> {
    const id = hsmKeyId?.toLowerCase() ?? null;
    return this.db.prisma.$queryRaw<HsmKeyDisposal[]>`
      SELECT d."hsmKeyId", d."keyid", d."version", d."createdAt", d."attempts", d."lastError" FROM "hsm_key_disposal" d
       WHERE (${id}::text IS NULL OR d."hsmKeyId" = ${id}::text)
         AND NOT EXISTS (SELECT 1 FROM "key" k WHERE lower(k."hsmKeyId") = d."hsmKeyId")
         AND NOT EXISTS (SELECT 1 FROM "key_version" v WHERE lower(v."hsmKeyId") = d."hsmKeyId")
         AND NOT EXISTS (SELECT 1 FROM "pending_key" p WHERE lower(p."hsmKeyId") = d."hsmKeyId")
         AND NOT EXISTS (SELECT 1 FROM "pending_key_version" pv WHERE lower(pv."hsmKeyId") = d."hsmKeyId")
       ORDER BY d."createdAt", d."hsmKeyId" LIMIT ${limit}`;
  }

  /**
   * The HSM no longer holds the key pair: its disposal row goes with the SUCCESS event `key.hsm_dispose` in one
   * transaction. Resolves to false when another pass (a replica, a later cancellation) recorded it first.
   */
  async disposed(hsmKeyId: string, audit: AuditInput): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.$queryRaw<{ keyid: string; version: number; attempts: number; createdAt: Date }[]>`
        DELETE FROM "hsm_key_disposal" WHERE "hsmKeyId" = ${hsmKeyId.toLowerCase()} RETURNING "keyid", "version", "attempts", "createdAt"`;
      if (rows.length === 0) return false;
      const d = rows[0];
      await appendAuditTx(tx, { ...audit, keyid: d.keyid, details: { ...audit.details, version: d.version, hsmKeyId: hsmKeyId.toLowerCase(), failedAttempts: d.attempts, cancelledAt: d.createdAt.toISOString() } });
      return true;
    });
  }

  /** A destruction that failed: counted, with its error, for the next pass and for whoever looks at the table. */
  async disposalFailed(hsmKeyId: string, error: string): Promise<void> {
    await this.db.prisma.hsmKeyDisposal.updateMany({ where: { hsmKeyId: hsmKeyId.toLowerCase() }, data: { attempts: { increment: 1 }, lastError: error.slice(0, 500) } });
  }
}
