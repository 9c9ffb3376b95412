import { KEY_LIMIT_BOUNDS } from '@keyserver/api-contract';
import type { KeyOperationLimit as LimitRow } from '../../generated/prisma/client';
import { mapPrismaError, type Db } from '../db';
import { DataAccessError, type DataAccessErrorCode } from '../errors';
import type { AuditInput, KeyType } from '../types';
import { holdSession, type SessionScope } from './admin-participation';
import { appendAuditTx } from './audit.repository';

/** What every operation on a key must stay within (seconds and counts). */
export interface KeyOperationLimits {
  /** Longest validFrom..validTo. */
  maxWindowSeconds: number;
  /** Most usages one operation may ask for on the key. */
  maxUsagesPerOperation: number;
  /** How far before "now" validFrom may lie (clock skew between the orderer and the Keyserver). */
  maxBackdateSeconds: number;
  /** How far after "now" validFrom may lie. */
  maxStartAheadSeconds: number;
}

/** The limits of a key and whether an administrator set them or they are its class's defaults. */
export interface EffectiveKeyLimits extends KeyOperationLimits {
  source: 'default' | 'set';
  updatedAt: Date | null;
}

const DAY = 86_400;

/**
 * Defaults of a key nobody set limits for. A key that needs approvers (production) gets the tight set: an approver
 * approves one release or batch, not a standing licence. A key without approvers (development) gets a loose one.
 */
export const DEFAULT_KEY_LIMITS: Record<'production' | 'development', KeyOperationLimits> = {
  production: { maxWindowSeconds: 7 * DAY, maxUsagesPerOperation: 1_000, maxBackdateSeconds: 300, maxStartAheadSeconds: 7 * DAY },
  development: { maxWindowSeconds: 30 * DAY, maxUsagesPerOperation: 100_000, maxBackdateSeconds: 300, maxStartAheadSeconds: 30 * DAY },
};

export const keyClass = (key: { requiredApprovers: number }): 'production' | 'development' => (key.requiredApprovers > 0 ? 'production' : 'development');

/** The limits in force for a key: its stored row, else the defaults of its class. */
export function effectiveLimits(key: { requiredApprovers: number; type?: KeyType }, row: LimitRow | null | undefined): EffectiveKeyLimits {
  if (!row) return { ...DEFAULT_KEY_LIMITS[keyClass(key)], source: 'default', updatedAt: null };
  return {
    maxWindowSeconds: row.maxWindowSeconds,
    maxUsagesPerOperation: row.maxUsagesPerOperation,
    maxBackdateSeconds: row.maxBackdateSeconds,
    maxStartAheadSeconds: row.maxStartAheadSeconds,
    source: 'set',
    updatedAt: row.updatedAt,
  };
}

/** The first limit an operation on one key breaks (null when it stays within them all). */
export function operationLimitViolation(
  limits: KeyOperationLimits,
  op: { validFrom: Date; validTo: Date; usages: number },
  now: Date,
): { code: DataAccessErrorCode; detail: string } | null {
  const from = op.validFrom.getTime();
  const window = (op.validTo.getTime() - from) / 1000;
  if (from < now.getTime() - limits.maxBackdateSeconds * 1000) {
    return { code: 'start_backdated', detail: `validFrom lies more than ${limits.maxBackdateSeconds} s before now` };
  }
  if (from > now.getTime() + limits.maxStartAheadSeconds * 1000) {
    return { code: 'start_too_far_ahead', detail: `validFrom lies more than ${limits.maxStartAheadSeconds} s after now` };
  }
  if (window > limits.maxWindowSeconds) return { code: 'window_too_long', detail: `the window is longer than ${limits.maxWindowSeconds} s` };
  if (op.usages > limits.maxUsagesPerOperation) return { code: 'too_many_usages', detail: `more than ${limits.maxUsagesPerOperation} usages` };
  return null;
}

function assertLimits(limits: KeyOperationLimits): void {
  for (const [name, { min, max }] of Object.entries(KEY_LIMIT_BOUNDS) as [keyof KeyOperationLimits, { min: number; max: number }][]) {
    const v = limits[name];
    if (!Number.isInteger(v) || v < min || v > max) throw new DataAccessError('invalid_input', `${name} must be an integer ${min}..${max}`);
  }
}

/** Per-key operation limits set by administrators. */
export class KeyLimitsRepository {
  constructor(private readonly db: Db) {}

  /** The limits in force for a key (not_found for an unknown keyid). */
  async get(keyid: string): Promise<EffectiveKeyLimits> {
    const key = await this.db.prisma.key.findUnique({ where: { keyid }, select: { requiredApprovers: true, type: true, operationLimit: true } });
    if (!key) throw new DataAccessError('not_found', `key ${keyid} not found`);
    return effectiveLimits(key, key.operationLimit);
  }

  /** The limits in force for several keys, by keyid (unknown keyids are left out). */
  async getMany(keyids: string[]): Promise<Map<string, EffectiveKeyLimits>> {
    const keys = await this.db.prisma.key.findMany({ where: { keyid: { in: keyids } }, select: { keyid: true, requiredApprovers: true, type: true, operationLimit: true } });
    return new Map(keys.map((k) => [k.keyid, effectiveLimits(k, k.operationLimit)]));
  }

  /**
   * Sets a key's limits. The key row is locked (FOR NO KEY UPDATE) while the limits in force are read, so with `audit` the
   * event's `limits: { before, after }` is true even when administrators change them concurrently; the event is
   * written in the same transaction. With `scope` (the session it runs in) the transaction holds that session
   * ({@link holdSession}): refused `session_not_active` once it is closed, expired or lost an administrator.
   */
  async set(keyid: string, limits: KeyOperationLimits, audit?: AuditInput, now?: Date, scope?: SessionScope): Promise<{ before: EffectiveKeyLimits; after: EffectiveKeyLimits }> {
    assertLimits(limits);
    try {
      return await this.db.transaction(async (tx) => {
        // First, before the key's lock: the session's administrators, then the session read again at `now` (a frozen
        // clock) or once the locks were granted (ADR 0012 addendum).
        await holdSession(tx, scope, [], () => now ?? new Date());
        const [key] = await tx.$queryRaw<{ id: string; requiredApprovers: number }[]>`
          SELECT "id", "requiredApprovers" FROM "key" WHERE "keyid" = ${keyid} FOR NO KEY UPDATE`;
        if (!key) throw new DataAccessError('not_found', `key ${keyid} not found`);
        const before = effectiveLimits(key, await tx.keyOperationLimit.findUnique({ where: { keyId: key.id } }));
        const data = {
          maxWindowSeconds: limits.maxWindowSeconds,
          maxUsagesPerOperation: limits.maxUsagesPerOperation,
          maxBackdateSeconds: limits.maxBackdateSeconds,
          maxStartAheadSeconds: limits.maxStartAheadSeconds,
          updatedAt: now ?? new Date(),
        };
        const row = await tx.keyOperationLimit.upsert({ where: { keyId: key.id }, create: { keyId: key.id, ...data }, update: data });
        const after = effectiveLimits(key, row);
        if (audit) {
          // The audit shows the limits, not when the row was written.
          const plain = ({ source, ...l }: EffectiveKeyLimits) => {
            const shown: Partial<EffectiveKeyLimits> = { ...l, source };
            delete shown.updatedAt;
            return shown;
          };
          await appendAuditTx(tx, { ...audit, keyid, details: { ...audit.details, limits: { before: plain(before), after: plain(after) } } });
        }
        return { before, after };
      });
    } catch (err) {
      return mapPrismaError(err, `key ${keyid}`);
    }
  }
}
