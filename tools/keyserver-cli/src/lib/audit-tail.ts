import type { AuditChainReport } from '@keyserver/audit-chain';

/** The entries of a verified export that no signed checkpoint covers (docs/adr/0048, addendum "the unsealed tail"). */
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

/** The warning line `ksctl audit verify` writes on stderr for an unsealed tail (stable code audit_tail_unsealed). */
export function unsealedTailWarning(t: UnsealedTail): string {
  const where = t.afterSeq === null ? 'no entry is covered by a signed checkpoint' : `the last ${t.entries} entries come after the last signed checkpoint (seq ${t.afterSeq})`;
  return (
    `ksctl: warning: audit_tail_unsealed: the chain verifies, but ${where}: nothing proves this copy holds every one of ` +
    `${t.afterSeq === null ? 'its' : 'those'} ${t.entries} entries (a copy cut within them verifies like a shorter chain). ` +
    'Compare lastHash with a later export, or verify an export taken after the next checkpoint.'
  );
}
