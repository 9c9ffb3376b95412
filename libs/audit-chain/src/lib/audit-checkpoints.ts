import { X509Certificate } from 'node:crypto';
import { TimestampTokenError, verifyTimeStampToken, type VerifiedTimeStampToken } from '@keyserver/timestamp-token';

// Signed checkpoints of the audit chain (docs/adr/0048-signed-audit-checkpoints.md). An entry's hash is
// sha256(canonicalJson(content with prevHash)), so an RFC 3161 token whose messageImprint is (sha256, that hash) is
// literally a timestamp of the entry's canonical JSON, and through prevHash of every entry before it. Whoever
// rewrites an entry at or before a checkpoint's seq must change that entry's hash (or leave a content_changed
// entry), and cannot make the TSA key in the HSM sign the new one for the old time.

/**
 * The TSTInfo policy of every checkpoint token, fixed by the product (X.667 UUID arc): the Keyserver's TSA issues it
 * only to its sealer, never on the anonymous route (`TSA_POLICY_OID` may not be this one; a query asking for it is
 * refused `policy_not_accepted`). Without it, anyone could have the public TSA stamp a recomputed entry hash, and an
 * insider could store that token as a checkpoint.
 */
export const AUDIT_CHECKPOINT_POLICY_OID = '2.25.71213305904928989567330069075920600616';

/**
 * How long before a checkpoint's genTime the entry after the sealed one may have been written: the sealer reads the
 * head, then signs, and entries appended meanwhile come before genTime; plus clock skew between the database and the
 * API. A checkpoint whose next entry is older than that was not made of the head (ADR 0048): an insider who cut the
 * chain back to an old entry, had it sealed anew and restored the rest.
 */
export const AUDIT_CHECKPOINT_HEAD_SLACK_MS = 5 * 60_000;

/** DER prefix of MessageImprint { AlgorithmIdentifier { id-sha256 } (parameters absent), OCTET STRING (32) }. */
const IMPRINT_PREFIX = Buffer.from('302f300b06096086480165030402010420', 'hex');
/** The same with parameters NULL (RFC 5754 allows both; our TSA echoes what was asked, we ask without). */
const IMPRINT_PREFIX_NULL = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/** The MessageImprint a checkpoint of the entry whose hash is `entryHashHex` asserts: (sha256, the hash's 32 bytes). */
export function auditCheckpointImprintDer(entryHashHex: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(entryHashHex)) throw new Error('an audit entry hash is 64 lower-case hex digits');
  return new Uint8Array(Buffer.concat([IMPRINT_PREFIX, Buffer.from(entryHashHex, 'hex')]));
}

/** The entry hash (lower-case hex) a MessageImprint asserts, or null when it is no SHA-256 imprint. */
export function entryHashOfImprint(der: Uint8Array): string | null {
  const b = Buffer.from(der);
  for (const prefix of [IMPRINT_PREFIX, IMPRINT_PREFIX_NULL]) {
    if (b.length === prefix.length + 32 && b.subarray(0, prefix.length).equals(prefix)) return b.subarray(prefix.length).toString('hex');
  }
  return null;
}

/** A checkpoint as the table `audit_checkpoint` and an export line keep it. */
export interface AuditCheckpoint {
  /** seq of the sealed entry. */
  seq: string;
  /** That entry's hash when it was sealed (what the token's imprint asserts). */
  entryHash: string;
  /** The RFC 3161 TimeStampToken (ContentInfo, DER), base64. */
  token: string;
  /** The token's genTime, ISO 8601 (informative: the token's own is checked). */
  genTime: string;
  /** The TSA key and version that signed it. */
  tsaKeyid: string;
  tsaKeyVersion: number;
}

/** Why a checkpoint does not hold (stable codes): see {@link AuditCheckpointVerifier}. */
export type AuditCheckpointProblemKind =
  | 'checkpoint_mismatch'
  | 'checkpoint_signature_invalid'
  | 'checkpoint_untrusted'
  | 'checkpoint_out_of_order';

/**
 * Whether the token's signer is trusted at the token's genTime: null when it is, else why not. The API trusts the
 * TSA key version named by the checkpoint whose key pair is in its HSM; an auditor the TSA certificate and ROOT given
 * out of band ({@link anchoredCheckpointTrust}).
 */
export type CheckpointTrust = (token: VerifiedTimeStampToken, checkpoint: AuditCheckpoint) => string | null;

/** What verification says of the checkpoints. */
export interface AuditSealReport {
  /** true when at least one checkpoint verified. */
  sealed: boolean;
  /** false when the checkpoints were checked only against the certificate each token carries (no trust anchor given). */
  anchored: boolean;
  /** Checkpoints examined. */
  checkpoints: number;
  /** seq and genTime of the last checkpoint that verified: every entry up to it is sealed. */
  lastSealedSeq: string | null;
  lastSealedAt: string | null;
  /** Entries after the last verified checkpoint (the unsealed tail: verified by the chain alone). */
  unsealedEntries: number;
}

interface PendingCheckpoint {
  seq: bigint;
  seqText: string;
  /** The entry hash the verified token asserts, or null when its token did not verify. */
  imprintHash: string | null;
  genTime: Date;
  accuracyMs: number;
}

/**
 * Checks the checkpoints of a chain against the entries the chain verifier walks: each token verifies
 * (@keyserver/timestamp-token) and is trusted (`trust`), asserts a SHA-256 imprint equal to the stored entry hash at
 * its seq (and to the checkpoint's own entryHash), its genTime (plus the token's accuracy) is not before that entry's
 * `at`, and checkpoints are strictly increasing in seq and non-decreasing in genTime. Problems carry the checkpoint's
 * seq and one of {@link AuditCheckpointProblemKind}.
 */
export class AuditCheckpointVerifier {
  private readonly pending = new Map<string, PendingCheckpoint>();
  private readonly problems: { seq: string; kind: AuditCheckpointProblemKind; reason: string }[] = [];
  private seen = 0;
  private entriesAfter = 0;
  private lastOk: PendingCheckpoint | null = null;
  /** The checkpoint the previous entry matched: the next entry must not be older than it by more than the slack. */
  private justSealed: PendingCheckpoint | null = null;

  private constructor(
    private readonly count: number,
    private readonly anchored: boolean,
  ) {}

  /** Verifies every token first (signature, trust), then waits for the entries. */
  static of(checkpoints: readonly AuditCheckpoint[], trust: CheckpointTrust, anchored = true): AuditCheckpointVerifier {
    const v = new AuditCheckpointVerifier(checkpoints.length, anchored);
    const ordered = [...checkpoints].sort((a, b) => compareSeq(a.seq, b.seq));
    let previous: PendingCheckpoint | null = null;
    for (const cp of ordered) {
      const p = v.verifyToken(cp, trust);
      if (!p) continue;
      if (previous && (p.seq === previous.seq || p.genTime.getTime() < previous.genTime.getTime())) {
        v.problem(cp.seq, 'checkpoint_out_of_order', `checkpoint seq ${cp.seq} (genTime ${p.genTime.toISOString()}) is not after checkpoint seq ${previous.seqText} (genTime ${previous.genTime.toISOString()})`);
        continue;
      }
      previous = p;
      v.pending.set(p.seqText, p);
    }
    return v;
  }

  private verifyToken(cp: AuditCheckpoint, trust: CheckpointTrust): PendingCheckpoint | null {
    if (typeof cp.seq !== 'string' || !/^\d{1,19}$/.test(cp.seq)) {
      this.problem(String(cp.seq), 'checkpoint_mismatch', 'a checkpoint without a valid seq');
      return null;
    }
    let verified: VerifiedTimeStampToken;
    try {
      verified = verifyTimeStampToken(new Uint8Array(Buffer.from(typeof cp.token === 'string' ? cp.token : '', 'base64')));
    } catch (err) {
      const why = err instanceof TimestampTokenError ? err.message : `token_malformed: ${(err as Error).message}`;
      this.problem(cp.seq, 'checkpoint_signature_invalid', `the checkpoint token does not verify (${why})`);
      return null;
    }
    if (verified.info.policy !== AUDIT_CHECKPOINT_POLICY_OID) {
      this.problem(cp.seq, 'checkpoint_untrusted', `the token was issued under policy ${verified.info.policy}, not the audit checkpoint policy: a time-stamp anyone could ask for is no checkpoint`);
      return null;
    }
    const untrusted = trust(verified, cp);
    if (untrusted) {
      this.problem(cp.seq, 'checkpoint_untrusted', untrusted);
      return null;
    }
    const imprintHash = entryHashOfImprint(verified.info.messageImprintDer);
    if (!imprintHash) {
      this.problem(cp.seq, 'checkpoint_mismatch', 'the checkpoint token is not over a SHA-256 entry hash');
      return null;
    }
    if (imprintHash !== cp.entryHash) {
      this.problem(cp.seq, 'checkpoint_mismatch', `the checkpoint's entryHash is not the hash its token asserts (${imprintHash})`);
      return null;
    }
    return { seq: BigInt(cp.seq), seqText: cp.seq, imprintHash, genTime: verified.info.genTime, accuracyMs: verified.info.accuracyMs ?? 0 };
  }

  /** Called by the chain verifier for every stored entry in seq order. */
  entry(seq: string, hash: string, at: Date): void {
    this.entriesAfter++;
    const sealed = this.justSealed;
    this.justSealed = null;
    if (sealed && at.getTime() < sealed.genTime.getTime() - sealed.accuracyMs - AUDIT_CHECKPOINT_HEAD_SLACK_MS) {
      this.problem(sealed.seqText, 'checkpoint_mismatch', `sealed at ${sealed.genTime.toISOString()}, but entry seq ${seq} was already written at ${at.toISOString()}: a checkpoint seals the head, this one was made of an older entry`);
    }
    const p = this.pending.get(seq);
    if (!p) return;
    this.pending.delete(seq);
    this.seen++;
    if (p.imprintHash !== hash) {
      this.problem(seq, 'checkpoint_mismatch', `the entry's stored hash is not the one sealed at ${p.genTime.toISOString()} (${p.imprintHash}): the entry or one before it was rewritten`);
      return;
    }
    if (p.genTime.getTime() + p.accuracyMs < at.getTime()) {
      this.problem(seq, 'checkpoint_mismatch', `sealed at ${p.genTime.toISOString()}, before the entry's time ${at.toISOString()}`);
      return;
    }
    this.lastOk = p;
    this.justSealed = p;
    this.entriesAfter = 0;
  }

  /** The checkpoints whose entry never came (deleted entries), then the summary and every problem. */
  finish(): { seal: AuditSealReport; problems: { seq: string; kind: AuditCheckpointProblemKind; reason: string }[] } {
    for (const p of this.pending.values()) this.problem(p.seqText, 'checkpoint_mismatch', `no entry seq ${p.seqText} in the chain: the sealed entry was deleted`);
    this.pending.clear();
    return {
      seal: {
        sealed: this.lastOk !== null,
        anchored: this.anchored,
        checkpoints: this.count,
        lastSealedSeq: this.lastOk?.seqText ?? null,
        lastSealedAt: this.lastOk?.genTime.toISOString() ?? null,
        unsealedEntries: this.entriesAfter,
      },
      problems: [...this.problems].sort((a, b) => compareSeq(a.seq, b.seq)),
    };
  }

  private problem(seq: string, kind: AuditCheckpointProblemKind, reason: string): void {
    this.problems.push({ seq, kind, reason });
  }
}

function compareSeq(a: string, b: string): number {
  const d = /^\d+$/.test(a) && /^\d+$/.test(b) ? BigInt(a) - BigInt(b) : 0n;
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

const validAt = (c: X509Certificate, at: Date): boolean => new Date(c.validFrom).getTime() <= at.getTime() && at.getTime() <= new Date(c.validTo).getTime();

/**
 * Trust for an auditor (`ksctl audit verify --root FILE [--tsa-cert FILE]`): the signer is one of `tsaCerts` when any
 * are given, and chains (through the certificates the token carries or `tsaCerts`, at most 4 links) to one of
 * `roots`, every certificate valid at the token's genTime.
 */
export function anchoredCheckpointTrust(anchors: { roots: X509Certificate[]; tsaCerts?: X509Certificate[] }): CheckpointTrust {
  return (t) => {
    const genTime = t.info.genTime;
    const tsaCerts = anchors.tsaCerts ?? [];
    if (tsaCerts.length > 0 && !tsaCerts.some((c) => c.raw.equals(t.signer.raw))) return 'the checkpoint is signed by a certificate other than the given TSA certificate';
    const pool = [...t.carried, ...tsaCerts];
    let cert = t.signer;
    for (let depth = 0; depth < 5; depth++) {
      if (!validAt(cert, genTime)) return `certificate ${cert.subject.replace(/\n/g, ', ')} is not valid at genTime ${genTime.toISOString()}`;
      const root = anchors.roots.find((r) => cert.checkIssued(r) && cert.verify(r.publicKey));
      if (root) return validAt(root, genTime) ? null : `the ROOT is not valid at genTime ${genTime.toISOString()}`;
      const up = pool.find((c) => !c.raw.equals(cert.raw) && cert.checkIssued(c) && cert.verify(c.publicKey));
      if (!up) break;
      cert = up;
    }
    return 'the TSA certificate does not chain to the given ROOT';
  };
}
