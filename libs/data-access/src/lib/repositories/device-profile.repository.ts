import type { Prisma } from '../../generated/prisma/client';
import { mapPrismaError, type Db } from '../db';
import { DataAccessError } from '../errors';
import type { AuditInput, Key } from '../types';
import { holdSession, type SessionScope } from './admin-participation';
import { appendAuditTx } from './audit.repository';
import { toKey } from './key.repository';

/** The device-certificate profile of CA keys (the `profile` column of `key`); its shape is api-contract's DeviceProfile. */
export class DeviceProfileRepository {
  constructor(private readonly db: Db) {}

  /**
   * Replaces a CA key's device profile: the row is locked, the change and its audit event (profile before and
   * after) are written in one transaction. Not a CA key: invalid_state; no such key: not_found.
   */
  async set(keyid: string, profile: Record<string, unknown>, audit: AuditInput, scope?: SessionScope): Promise<Key> {
    try {
      return await this.db.transaction(async (tx) => {
        // First, before any key, operation or CRL lock: the session's administrators, then the session read again (ADR 0012 addendum).
        await holdSession(tx, scope);
        const rows = await tx.$queryRaw<{ type: string; profile: unknown }[]>`
          SELECT "type"::text AS "type", "profile" FROM "key" WHERE "keyid" = ${keyid} FOR NO KEY UPDATE`;
        if (rows.length === 0) throw new DataAccessError('not_found', `key ${keyid} not found`);
        if (rows[0].type !== 'CA') throw new DataAccessError('invalid_state', `key ${keyid} is a ${rows[0].type} key; only CA keys issue device certificates`);
        const k = await tx.key.update({ where: { keyid }, data: { profile: profile as Prisma.InputJsonObject }, include: { parent: { select: { keyid: true } } } });
        await appendAuditTx(tx, { ...audit, keyid, details: { ...audit.details, deviceProfile: { before: rows[0].profile, after: profile } } as Record<string, unknown> });
        return toKey(k);
      });
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }

  /** Which certificates the keys have (any type, any state): ids only, cheap to ask on every issuance. */
  async keyCertificateIds(): Promise<string[]> {
    // Asked on every device certificate: through the access cache (ADR 0028; the key table notifies its changes).
    const ids = await this.db.access.through('key', '\u0000certificate-ids', async () => {
      const rows = await this.db.prisma.key.findMany({ select: { keyid: true, certificateSerial: true }, orderBy: { keyid: 'asc' } });
      return rows.map((r) => `${r.keyid}/${r.certificateSerial}`);
    });
    return [...(ids ?? [])];
  }

  /** The certificates of every key (any type, any state): the DNs no device certificate may carry. */
  async keyCertificates(): Promise<string[]> {
    const rows = await this.db.prisma.key.findMany({ select: { certificatePem: true }, orderBy: { keyid: 'asc' } });
    return rows.map((r) => r.certificatePem);
  }
}
