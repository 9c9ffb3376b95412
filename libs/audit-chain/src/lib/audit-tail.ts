import type { AuditChainReport } from './audit-chain';

/**
 * What an offline verifier of an export says about a chain that verifies (docs/adr/0048, addendum "export errors and
 * the unsealed tail"), one vocabulary for `ksctl audit verify` and `keyserver-api audit-verify`: `valid_sealed` when a
 * verified checkpoint covers the last entry, `valid_unsealed_tail` otherwise (an empty export included).
 */
export const AUDIT_VERIFY_STATUSES = ['valid_sealed', 'valid_unsealed_tail'] as const;
export type AuditVerifyStatus = (typeof AUDIT_VERIFY_STATUSES)[number];

/** The stable code of the warning both verifiers write on stderr for an unsealed tail. */
export const AUDIT_TAIL_UNSEALED = 'audit_tail_unsealed';

/** The entries of a verified export that no signed checkpoint covers. */
export interface UnsealedTail {
  /** How many entries lie after the last checkpoint that verified (every entry when none did). */
  entries: number;
  /** seq of the last entry a checkpoint covers; null: none is covered. */
  afterSeq: string | null;
}

/**
 * The export's unsealed tail, or null when its last entry is covered by a verified checkpoint. Nothing proves such a
 * tail whole: a copy cut within it verifies like a shorter chain. An empty export is not covered either.
 */
export function unsealedTail(r: Pick<AuditChainReport, 'total' | 'seal'>): UnsealedTail | null {
  const seal = r.seal;
  if (!seal || !seal.sealed) return { entries: seal?.unsealedEntries ?? r.total, afterSeq: null };
  return seal.unsealedEntries === 0 ? null : { entries: seal.unsealedEntries, afterSeq: seal.lastSealedSeq };
}

/** The status of a chain that verifies, from its {@link unsealedTail}. */
export function auditVerifyStatus(tail: UnsealedTail | null): AuditVerifyStatus {
  return tail ? 'valid_unsealed_tail' : 'valid_sealed';
}

/** The warning line (no newline) `tool` writes on stderr for an unsealed tail: `<tool>: warning: audit_tail_unsealed: …`. */
export function unsealedTailWarning(tool: string, t: UnsealedTail): string {
  const where = t.afterSeq === null ? 'no entry is covered by a signed checkpoint' : `the last ${t.entries} entries come after the last signed checkpoint (seq ${t.afterSeq})`;
  return (
    `${tool}: warning: ${AUDIT_TAIL_UNSEALED}: the chain verifies, but ${where}: nothing proves this copy holds every one of ` +
    `${t.afterSeq === null ? 'its' : 'those'} ${t.entries} entries (a copy cut within them verifies like a shorter chain). ` +
    'Compare lastHash with a later export, or verify an export taken after the next checkpoint.'
  );
}
