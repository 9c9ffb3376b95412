import type { Tx } from '../db';
import { DataAccessError } from '../errors';
import { lockOperation } from './operation.repository';

// The one place that decides whether an operation's key may be used now: sign orders, firmware
// signatures and certificate issuance all reserve and consume usages through these two functions.

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
 * Inside a transaction: locks the operation and its key row and checks, that one usage of `keyid` may be consumed now
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

