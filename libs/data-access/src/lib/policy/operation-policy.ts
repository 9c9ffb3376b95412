import type { OperationState } from '../types';

// The operation policy in one place, pure (no database, no clock of its own): when an operation counts as
// EXPIRED, when its approvals are complete, and whether one of its keys may be used now. The repositories apply
// it: `reserveUsage` runs the same rules in ONE SQL statement (RESERVE_SQL, usage.ts) so that the check and the
// usage counter change atomically, and names a refusal with `usability` below; `approve` stores APPROVED when
// `approvalComplete` holds. operation-policy.pg.spec.ts proves on real PostgreSQL that the SQL and this module
// agree on generated cases (fast-check).

/** What the policy needs of an operation. */
export interface PolicyOperation {
  state: OperationState;
  validFrom: Date;
  validTo: Date;
  /** Allowed digests (lower-case hex); empty allows any input. */
  digests: readonly string[];
  keys: readonly PolicyOperationKey[];
}

export interface PolicyOperationKey {
  keyid: string;
  /** The key's own state: a revoked key is never used. */
  keyState: 'ACTIVE' | 'REVOKED';
  usagesAllowed: number;
  usagesUsed: number;
  requiredApprovers: number;
  /**
   * How many distinct approvers approved this key and may still approve it: an approval whose approver was disabled
   * or lost APPROVE on the key since is withdrawn (moved to withdrawn_approval) and counts for nothing.
   */
  approvals: number;
}

/** Why a key of an operation may not be used now (DataAccessError codes). */
export type UsabilityRefusal =
  | 'key_not_in_operation'
  | 'key_revoked'
  | 'usage_exhausted'
  | 'operation_not_usable'
  | 'outside_window'
  | 'digest_not_allowed';

/** An open operation whose window has passed is EXPIRED, whether or not the stored state says so. */
export function effectiveState(op: Pick<PolicyOperation, 'state' | 'validTo'>, now: Date): OperationState {
  return (op.state === 'REQUESTED' || op.state === 'APPROVED') && op.validTo <= now ? 'EXPIRED' : op.state;
}

/** True when some key needs approvers: such an operation is usable only once APPROVED. */
export function needsApproval(keys: readonly Pick<PolicyOperationKey, 'requiredApprovers'>[]): boolean {
  return keys.some((k) => k.requiredApprovers > 0);
}

/** True when every key has at least its required number of approvals (REQUESTED -> APPROVED). */
export function approvalComplete(keys: readonly Pick<PolicyOperationKey, 'requiredApprovers' | 'approvals'>[]): boolean {
  return keys.every((k) => k.approvals >= k.requiredApprovers);
}

/**
 * The state of an open operation after approvals were withdrawn (an approver disabled or his APPROVE taken): an
 * APPROVED one whose remaining approvals are not complete is REQUESTED again, so it is not used until enough
 * currently entitled approvers approve; any other state stays (ADR 0017 addendum 2026-12-07).
 */
export function stateAfterWithdrawal(state: OperationState, stillComplete: boolean): OperationState {
  return state === 'APPROVED' && !stillComplete ? 'REQUESTED' : state;
}

/**
 * Whether key `keyid` of the operation may be used now for `digest` (lower-case hex, null when none applies):
 * null when it may, else the first reason it may not, in this order.
 */
export function usability(op: PolicyOperation, keyid: string, digest: string | null, now: Date): UsabilityRefusal | null {
  const key = op.keys.find((k) => k.keyid === keyid);
  if (!key) return 'key_not_in_operation';
  if (key.keyState !== 'ACTIVE') return 'key_revoked';
  if (op.state === 'EXHAUSTED') return 'usage_exhausted';
  if (op.state !== 'APPROVED' && !(op.state === 'REQUESTED' && !needsApproval(op.keys))) return 'operation_not_usable';
  if (now < op.validFrom || now >= op.validTo) return 'outside_window';
  if (op.digests.length > 0 && (digest === null || !op.digests.includes(digest))) return 'digest_not_allowed';
  if (key.usagesUsed >= key.usagesAllowed) return 'usage_exhausted';
  return null;
}

/** True when {@link usability} finds no reason to refuse. */
export function isUsable(op: PolicyOperation, keyid: string, digest: string | null, now: Date): boolean {
  return usability(op, keyid, digest, now) === null;
}

/** When a key's certificate, and every certificate above it, may be used: from notBefore up to notAfter, exclusive. */
export interface CertificateValidity {
  notBefore: Date;
  notAfter: Date;
}

/**
 * Whether every instant at which the operation could still use the key lies inside the key's certificate validity:
 * `[max(validFrom, now), validTo)` inside `[notBefore, notAfter)`. validTo is exclusive like notAfter, so a window
 * ending exactly at notAfter is covered. The part of a backdated window that lies before now is never used (nothing
 * signs in the past), so only the window still ahead counts; a window whose start still lies ahead must not start
 * before notBefore. The sign path checks the instant itself (`assertCertificateValidNow`); this refuses, at creation
 * and at each approval, an operation that could only end in `key_not_usable` (ADR 0017 addendum, session 25).
 */
export function certificateCoversWindow(window: { validFrom: Date; validTo: Date }, validity: CertificateValidity, now: Date): boolean {
  const start = Math.max(window.validFrom.getTime(), now.getTime());
  return start >= validity.notBefore.getTime() && window.validTo.getTime() <= validity.notAfter.getTime();
}
