import { createHash } from 'node:crypto';
import type { Crl as CrlRow } from '../../generated/prisma/client';
import { mapPrismaError, type Db, type Tx } from '../db';
import { DataAccessError } from '../errors';
import type { KeyState, KeyType } from '../types';

/**
 * The key version a CRL belongs to (ADR 0029): a version of a ROOT or CA key. The versions sharing its key pair (its
 * renewals: the same name, the same key) are one CRL issuer for relying parties and publish one CRL sequence (ADR 0029
 * addendum "one CRL issuer per key pair"): a refresh of any of them signs for all, and each serves the newest.
 */
export interface CrlScope {
  keyid: string;
  keyId: string;
  keyType: KeyType;
  keyState: KeyState;
  version: number;
  versionId: string;
  hsmKeyId: string;
  certificatePem: string;
  notAfter: Date;
  destroyedAt: Date | null;
  /** The versions sharing this version's key pair (renewals): their certificates are this CRL's scope. */
  keyPairVersions: number[];
  /** The latest notAfter of those versions: a final CRL of the key pair is valid until then. */
  keyPairNotAfter: Date;
}

/** One revoked serial on a CRL. */
export interface CrlEntry {
  serialHex: string;
  revokedAt: Date;
  revocationReason: string | null;
}

/** The newest CRL a version signed. */
export interface StoredCrl {
  crlNumber: bigint;
  der: Buffer;
  entriesSha256: string;
  thisUpdate: Date;
  nextUpdate: Date;
  final: boolean;
}

/** What the signer returns for {@link CrlRepository.refresh}. */
export interface SignedCrl {
  crlNumber: bigint;
  der: Buffer;
  thisUpdate: Date;
  nextUpdate: Date;
  final: boolean;
}

/**
 * CRL numbers are bound to time (ADR 0029 addendum "CRL numbers survive a restore"): a number is its thisUpdate in
 * seconds since 1970 shifted left by these bits, plus a count within that second. The key's counter (`key.crlNumber`)
 * hands each out once under the key's row lock, never below the floor of the thisUpdate it is taken for, so a restore
 * of a backup, which rewinds the counter, cannot hand out a number already published: every published number is below
 * the floor of a later second. 2^20 numbers a second; today a number has 51 bits (7 octets as a DER INTEGER), through
 * the year 9999 at most 58 (8 octets; the bigint column holds 63 bits, RFC 5280 5.2.3 allows 20 octets).
 */
export const CRL_NUMBER_SECOND_BITS = 20;

/** The smallest CRL number of a CRL dated `thisUpdate` (its second, milliseconds dropped). */
export function crlNumberFloor(thisUpdate: Date): bigint {
  return BigInt(Math.max(0, Math.floor(thisUpdate.getTime() / 1000))) << BigInt(CRL_NUMBER_SECOND_BITS);
}

/** The second a CRL number belongs to: a CRL with this number is dated no earlier. */
export function crlNumberSecond(crlNumber: bigint): Date {
  return new Date(Number(crlNumber >> BigInt(CRL_NUMBER_SECOND_BITS)) * 1000);
}

/**
 * The decision of a refresh: null keeps the stored CRL; otherwise the new one is signed (with the number given).
 * `stored` is the newest CRL the key pair signed (the largest number, whichever version stored it); `latestThisUpdate`
 * the latest thisUpdate of any CRL stored for the key pair's versions (null: none), which a new one may not precede.
 * `recordedUntil` the time of the audit chain's head, the newest moment the database records (null: an empty chain):
 * after a restore, the time of the backup at the latest, which a new CRL may not precede either (its second).
 */
export type CrlSigner = (
  stored: StoredCrl | null,
  entries: CrlEntry[],
  entriesSha256: string,
  takeNumber: (thisUpdate: Date) => Promise<bigint>,
  latestThisUpdate: Date | null,
  recordedUntil: Date | null,
) => Promise<SignedCrl | null>;

/** The canonical fingerprint of a revoked set: a different set needs a new CRL. */
export function crlEntriesSha256(entries: CrlEntry[]): string {
  const text = entries.map((e) => `${e.serialHex}@${e.revokedAt.getTime()}:${e.revocationReason ?? ''}`).join(',');
  return createHash('sha256').update(text).digest('hex');
}

const toStored = (c: CrlRow): StoredCrl => ({
  crlNumber: c.crlNumber,
  der: Buffer.from(c.der),
  entriesSha256: c.entriesSha256,
  thisUpdate: c.thisUpdate,
  nextUpdate: c.nextUpdate,
  final: c.final,
});

/** Keys of the advisory locks one per key version (the 'crl:' namespace, hashed by PostgreSQL). */
const lockCrl = (tx: Tx, versionId: string) => tx.$queryRaw`SELECT 1 AS "locked" FROM pg_advisory_xact_lock(hashtextextended(${`crl:${versionId}`}, 0))`;

/** The ids of a key's versions sharing one key pair, in the one order every taker of their CRL locks uses. */
const keyPairVersionIds = async (tx: Tx, keyId: string, hsmKeyId: string): Promise<string[]> =>
  (await tx.$queryRaw<{ id: string }[]>`SELECT "id"::text AS "id" FROM "key_version" WHERE "keyId" = ${keyId}::uuid AND "hsmKeyId" = ${hsmKeyId} ORDER BY 1`).map((v) => v.id);

/** The newest of a key pair's stored CRLs: the largest number (a final one first: it is never replaced). */
const newest = (rows: CrlRow[]): CrlRow | null => rows.reduce<CrlRow | null>((best, c) => (!best || (c.final && !best.final) || (c.final === best.final && c.crlNumber > best.crlNumber) ? c : best), null);

/**
 * For a revocation in `tx` of what (issuerKeyId, issuerVersions) signed: takes the CRL lock of every version whose
 * CRL lists it (the versions sharing those versions' key pairs), all in one id order, and refuses (`invalid_state`)
 * when one of those CRLs is final. A final CRL is signed just before the key pair is destroyed and never re-signed,
 * so a revocation committed after it would be missing from every CRL while the issuer is not marked destroyed yet (or
 * a destruction that failed after its final CRLs is retried). Under the locks a refresh either ran before (and its
 * CRL is final: refused here) or runs after this commits and lists the revocation. Taken after every key row lock of
 * the transaction (a refresh locks its key row before its CRL lock: ADR 0045).
 */
export async function lockCrlScopeForRevocation(tx: Tx, issuerKeyId: string, issuerVersions: number | number[]): Promise<void> {
  const wanted = Array.isArray(issuerVersions) ? issuerVersions : [issuerVersions];
  const versions = await tx.$queryRaw<{ id: string }[]>`
    SELECT DISTINCT w."id"::text AS "id" FROM "key_version" v
    JOIN "key_version" w ON w."keyId" = v."keyId" AND w."hsmKeyId" = v."hsmKeyId"
    WHERE v."keyId" = ${issuerKeyId}::uuid AND v."version" = ANY(${wanted}::int[]) ORDER BY 1`;
  for (const v of versions) await lockCrl(tx, v.id);
  if (versions.length === 0) return;
  const final = await tx.crl.findFirst({ where: { keyVersionId: { in: versions.map((v) => v.id) }, final: true }, select: { keyVersionId: true } });
  if (final) throw new DataAccessError('invalid_state', 'the issuer signed its final CRL (its key pair is being destroyed): a revocation can no longer be published');
}

/**
 * CRLs per ROOT/CA key version (ADR 0029): the scope of each (the certificates and key versions its key pair
 * signed), the newest signed one, and its refresh under a per-version transaction-scoped advisory lock, so replicas
 * refreshing the same version at the same time sign once and the second finds the first one's CRL.
 */
export class CrlRepository {
  constructor(private readonly db: Db) {}

  /** A ROOT/CA key's version (null: its current version); null when there is no such key or version. */
  async scope(keyid: string, version: number | null): Promise<CrlScope | null> {
    const key = await this.db.prisma.key.findUnique({ where: { keyid }, select: { id: true, keyid: true, type: true, state: true, currentVersion: true, versions: { orderBy: { version: 'asc' } } } });
    if (!key || (key.type !== 'ROOT' && key.type !== 'CA')) return null;
    const v = key.versions.find((x) => x.version === (version ?? key.currentVersion));
    if (!v) return null;
    return {
      keyid: key.keyid,
      keyId: key.id,
      keyType: key.type,
      keyState: key.state,
      version: v.version,
      versionId: v.id,
      hsmKeyId: v.hsmKeyId,
      certificatePem: v.certificatePem,
      notAfter: v.notAfter,
      destroyedAt: v.destroyedAt,
      keyPairVersions: key.versions.filter((x) => x.hsmKeyId === v.hsmKeyId).map((x) => x.version),
      keyPairNotAfter: new Date(Math.max(...key.versions.filter((x) => x.hsmKeyId === v.hsmKeyId).map((x) => x.notAfter.getTime()))),
    };
  }

  /** Every version of every ROOT/CA key whose certificate has not expired and whose HSM key still exists. */
  async liveScopes(now = new Date()): Promise<CrlScope[]> {
    const rows = await this.db.prisma.keyVersion.findMany({
      where: { destroyedAt: null, notAfter: { gt: now }, key: { type: { in: ['ROOT', 'CA'] } } },
      select: { version: true, key: { select: { keyid: true } } },
      orderBy: [{ keyId: 'asc' }, { version: 'asc' }],
    });
    const scopes = await Promise.all(rows.map((r) => this.scope(r.key.keyid, r.version)));
    return scopes.filter((s): s is CrlScope => s !== null);
  }

  /** The CRL the version serves: the newest its key pair signed (stored under any version sharing it). */
  async stored(versionId: string): Promise<StoredCrl | null> {
    const v = await this.db.prisma.keyVersion.findUnique({ where: { id: versionId }, select: { keyId: true, hsmKeyId: true } });
    if (!v) return null;
    const c = newest(await this.db.prisma.crl.findMany({ where: { keyVersion: { keyId: v.keyId, hsmKeyId: v.hsmKeyId } } }));
    return c ? toStored(c) : null;
  }

  /** The revoked certificates and key versions the scope's key pair signed, oldest revocation first. */
  async entries(scope: CrlScope, tx: Tx = this.db.prisma as unknown as Tx): Promise<CrlEntry[]> {
    const [certs, keys] = await Promise.all([
      tx.certificate.findMany({
        where: { issuerKeyId: scope.keyId, issuerVersion: { in: scope.keyPairVersions }, revokedAt: { not: null } },
        select: { serialHex: true, revokedAt: true, revocationReason: true },
      }),
      tx.keyVersion.findMany({
        where: { issuerKeyid: scope.keyid, issuerVersion: { in: scope.keyPairVersions }, state: 'REVOKED', revokedAt: { not: null } },
        select: { certificateSerial: true, revokedAt: true, revocationReason: true },
      }),
    ]);
    const all: CrlEntry[] = [
      ...certs.map((c) => ({ serialHex: c.serialHex, revokedAt: c.revokedAt as Date, revocationReason: c.revocationReason })),
      ...keys.map((k) => ({ serialHex: k.certificateSerial.toLowerCase().replace(/^0x/, ''), revokedAt: k.revokedAt as Date, revocationReason: k.revocationReason })),
    ];
    return all.sort((a, b) => a.revokedAt.getTime() - b.revokedAt.getTime() || (a.serialHex < b.serialHex ? -1 : a.serialHex > b.serialHex ? 1 : 0));
  }

  /**
   * Under the key's row lock and the advisory locks of every version sharing the scope's key pair (one CRL issuer):
   * reads the key pair's newest CRL and the revoked set again, lets `sign` decide (and sign in the HSM, with a CRL
   * number taken from the key's counter in this transaction, at least {@link crlNumberFloor} of its thisUpdate; the
   * signer dates the CRL no earlier than {@link crlNumberSecond} of the number) and stores the result for every one of those versions,
   * so each serves it. Kept (null), the newest is copied to a version whose row is older (rows stored per version
   * before). A final CRL is never replaced: the key pair is gone.
   */
  async refresh(scope: CrlScope, sign: CrlSigner): Promise<StoredCrl | null> {
    try {
      return await this.db.transaction(async (tx) => {
        // The key row first, then the CRL lock: the order of a revocation (its key rows, then its issuer's CRL locks),
        // so that no refresh holds a CRL lock while it waits for a key row a revocation holds (ADR 0045). It also
        // waits for a revocation below this key (a cascade) and then lists it.
        await tx.$queryRaw`SELECT 1 AS "locked" FROM "key" WHERE "id" = ${scope.keyId}::uuid FOR NO KEY UPDATE`;
        const ids = await keyPairVersionIds(tx, scope.keyId, scope.hsmKeyId);
        for (const id of ids) await lockCrl(tx, id);
        const rows = await tx.crl.findMany({ where: { keyVersionId: { in: ids } } });
        const row = newest(rows);
        const stored = row ? toStored(row) : null;
        if (stored?.final) return stored;
        const latest = rows.reduce<Date | null>((at, c) => (!at || c.thisUpdate > at ? c.thisUpdate : at), null);
        const entries = await this.entries(scope, tx);
        // The audit chain's head (the index on "at"): a restored database's newest moment, a floor for thisUpdate.
        const [head] = await tx.$queryRaw<{ at: Date | null }[]>`SELECT max("at") AS "at" FROM "audit_event"`;
        // The key's counter, never below the floor of the thisUpdate the number is for (a restored counter jumps to it).
        const takeNumber = async (thisUpdate: Date) => {
          const floor = crlNumberFloor(thisUpdate).toString();
          const rows = await tx.$queryRaw<{ crlNumber: bigint }[]>`UPDATE "key" SET "crlNumber" = GREATEST("crlNumber" + 1, ${floor}::bigint) WHERE "id" = ${scope.keyId}::uuid RETURNING "crlNumber"`;
          return BigInt(rows[0].crlNumber);
        };
        const signed = await sign(stored, entries, crlEntriesSha256(entries), takeNumber, latest, head?.at ?? null);
        const data = signed
          ? { crlNumber: signed.crlNumber, der: new Uint8Array(signed.der), entriesSha256: crlEntriesSha256(entries), thisUpdate: signed.thisUpdate, nextUpdate: signed.nextUpdate, final: signed.final }
          : row && { crlNumber: row.crlNumber, der: row.der, entriesSha256: row.entriesSha256, thisUpdate: row.thisUpdate, nextUpdate: row.nextUpdate, final: row.final };
        if (!data) return null;
        const have = new Map(rows.map((c) => [c.keyVersionId, c.crlNumber]));
        for (const id of ids) {
          if (have.get(id) === data.crlNumber) continue;
          await tx.crl.upsert({ where: { keyVersionId: id }, create: { keyVersionId: id, ...data }, update: data });
        }
        return toStored({ keyVersionId: scope.versionId, ...data });
      });
    } catch (err) {
      return mapPrismaError(err, `CRL of ${scope.keyid} version ${scope.version}`);
    }
  }
}
