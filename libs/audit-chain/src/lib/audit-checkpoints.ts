import { createHash, X509Certificate } from 'node:crypto';
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

/**
 * Action of the entry the sealer appends in the transaction that stores a checkpoint (docs/adr/0048 addendum): its
 * details name the checkpoint (`checkpointSeq`, `tokenSha256`: SHA-256 of the token's DER, lower-case hex). The next
 * checkpoint seals that entry, so every checkpoint commits, under the TSA's signature, to every earlier one: a deleted
 * checkpoint is `checkpoint_missing`. The entry does not count as a new head for the sealer (no checkpoint of a record
 * alone), and a checkpoint is only stored at or after the last record, so records and checkpoints alternate.
 */
export const AUDIT_CHECKPOINT_ACTION = 'audit.checkpoint';

/** The details of the {@link AUDIT_CHECKPOINT_ACTION} entry of a checkpoint. */
export function auditCheckpointRecordDetails(cp: { seq: string; entryHash: string; tokenDer: Uint8Array; genTime: Date; serialHex: string; tsaKeyid: string; tsaKeyVersion: number }) {
  return {
    checkpointSeq: cp.seq,
    entryHash: cp.entryHash,
    tokenSha256: tokenSha256(cp.tokenDer),
    genTime: cp.genTime.toISOString(),
    serialHex: cp.serialHex,
    tsaKeyid: cp.tsaKeyid,
    tsaKeyVersion: cp.tsaKeyVersion,
  };
}

const tokenSha256 = (der: Uint8Array): string => createHash('sha256').update(der).digest('hex');

/** Why a checkpoint does not hold (stable codes): see {@link AuditCheckpointVerifier}. */
export type AuditCheckpointProblemKind =
  | 'checkpoint_mismatch'
  | 'checkpoint_signature_invalid'
  | 'checkpoint_untrusted'
  | 'checkpoint_out_of_order'
  | 'checkpoint_missing';

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

/** A checkpoint problem: the checkpoint's seq (for checkpoint_missing the seq its record names). */
export interface AuditCheckpointProblem {
  seq: string;
  kind: AuditCheckpointProblemKind;
  reason: string;
}

interface OfferedCheckpoint {
  seq: bigint;
  seqText: string;
  tokenSha256: string;
  /** The entry hash the verified token asserts, or null when its token did not verify (nothing to match). */
  imprintHash: string | null;
  genTime: Date;
  accuracyMs: number;
}

/** What the checkpoint verifier needs of an entry: its place, hash and time, and for a record its action and details. */
export type AuditCheckpointEntry = { seq: string; hash: string; at: Date; action?: string; outcome?: string; details?: Record<string, unknown> | null };

/** How many checkpoint problems a verifier keeps (the count goes on), as the chain verifier lists its own. */
const PROBLEMS_KEPT = 1000;

/**
 * Checks the checkpoints of a chain against the entries the chain verifier walks, streaming: checkpoints are offered
 * in seq order ({@link offer}) no later than the entry they seal arrives ({@link entry}), and the verifier keeps only
 * those not yet matched (one, for a chain as the sealer writes it). Each token verifies (@keyserver/timestamp-token)
 * and is trusted (`trust`), asserts a SHA-256 imprint equal to the stored entry hash at its seq (and to the
 * checkpoint's own entryHash), its genTime (plus the token's accuracy) is not before that entry's `at`, checkpoints are
 * strictly increasing in seq and non-decreasing in genTime, and every {@link AUDIT_CHECKPOINT_ACTION} entry names the
 * last checkpoint before it by seq and token hash (else `checkpoint_missing`). Problems carry the checkpoint's seq and
 * one of {@link AuditCheckpointProblemKind}.
 */
export class AuditCheckpointVerifier {
  /** Offered checkpoints whose entry has not come yet, in seq order. */
  private readonly queue: OfferedCheckpoint[] = [];
  private readonly problems: AuditCheckpointProblem[] = [];
  private problemCount = 0;
  private count = 0;
  private records = 0;
  private entriesAfter = 0;
  private lastOfferedSeq: bigint | null = null;
  private lastVerified: OfferedCheckpoint | null = null;
  private lastOk: OfferedCheckpoint | null = null;
  /** The last checkpoint whose seq the entries have reached or passed: the one the next record must name. */
  private lastPassed: OfferedCheckpoint | null = null;
  /** The checkpoint the previous entry matched: the next entry must not be older than it by more than the slack. */
  private justSealed: OfferedCheckpoint | null = null;

  constructor(
    private readonly trust: CheckpointTrust,
    private readonly anchored = true,
  ) {}

  /** true once a checkpoint or a checkpoint record was seen: the report then has something to say about sealing. */
  get seen(): boolean {
    return this.count > 0 || this.records > 0;
  }

  /** seq of the last checkpoint that verified and matched its entry so far (every entry up to it is sealed), or null. */
  get sealedThrough(): bigint | null {
    return this.lastOk?.seq ?? null;
  }

  /** The next checkpoint in seq order; call before the entry at its seq. */
  offer(cp: AuditCheckpoint): void {
    this.count++;
    if (typeof cp.seq !== 'string' || !/^\d{1,19}$/.test(cp.seq)) {
      this.problem(String(cp.seq), 'checkpoint_mismatch', 'a checkpoint without a valid seq');
      return;
    }
    const seq = BigInt(cp.seq);
    if (this.lastOfferedSeq !== null && seq <= this.lastOfferedSeq) {
      this.problem(cp.seq, 'checkpoint_out_of_order', `checkpoint seq ${cp.seq} does not come after checkpoint seq ${this.lastOfferedSeq}`);
      return;
    }
    this.lastOfferedSeq = seq;
    const der = Buffer.from(typeof cp.token === 'string' ? cp.token : '', 'base64');
    const offered: OfferedCheckpoint = { seq, seqText: cp.seq, tokenSha256: tokenSha256(der), imprintHash: null, genTime: new Date(NaN), accuracyMs: 0 };
    const verified = this.verifyToken(cp, der);
    if (verified) {
      const previous = this.lastVerified;
      if (previous && verified.genTime.getTime() < previous.genTime.getTime()) {
        this.problem(cp.seq, 'checkpoint_out_of_order', `checkpoint seq ${cp.seq} (genTime ${verified.genTime.toISOString()}) is not after checkpoint seq ${previous.seqText} (genTime ${previous.genTime.toISOString()})`);
      } else {
        Object.assign(offered, verified);
        this.lastVerified = offered;
      }
    }
    this.queue.push(offered);
  }

  private verifyToken(cp: AuditCheckpoint, der: Buffer): Pick<OfferedCheckpoint, 'imprintHash' | 'genTime' | 'accuracyMs'> | null {
    let verified: VerifiedTimeStampToken;
    try {
      verified = verifyTimeStampToken(new Uint8Array(der));
    } catch (err) {
      const why = err instanceof TimestampTokenError ? err.message : `token_malformed: ${(err as Error).message}`;
      this.problem(cp.seq, 'checkpoint_signature_invalid', `the checkpoint token does not verify (${why})`);
      return null;
    }
    if (verified.info.policy !== AUDIT_CHECKPOINT_POLICY_OID) {
      this.problem(cp.seq, 'checkpoint_untrusted', `the token was issued under policy ${verified.info.policy}, not the audit checkpoint policy: a time-stamp anyone could ask for is no checkpoint`);
      return null;
    }
    const untrusted = this.trust(verified, cp);
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
    return { imprintHash, genTime: verified.info.genTime, accuracyMs: verified.info.accuracyMs ?? 0 };
  }

  /** Called by the chain verifier for every stored entry in seq order. */
  entry(e: AuditCheckpointEntry): void {
    const seq = /^\d{1,19}$/.test(e.seq) ? BigInt(e.seq) : null;
    this.entriesAfter++;
    const sealed = this.justSealed;
    this.justSealed = null;
    if (sealed && e.at.getTime() < sealed.genTime.getTime() - sealed.accuracyMs - AUDIT_CHECKPOINT_HEAD_SLACK_MS) {
      this.problem(sealed.seqText, 'checkpoint_mismatch', `sealed at ${sealed.genTime.toISOString()}, but entry seq ${e.seq} was already written at ${e.at.toISOString()}: a checkpoint seals the head, this one was made of an older entry`);
    }
    if (seq === null) return;
    while (this.queue.length > 0 && this.queue[0].seq < seq) this.passed(this.queue.shift() as OfferedCheckpoint, true);
    if (e.action === AUDIT_CHECKPOINT_ACTION && e.outcome === 'SUCCESS') this.record(e);
    if (this.queue.length === 0 || this.queue[0].seq !== seq) return;
    const p = this.queue.shift() as OfferedCheckpoint;
    this.passed(p, false);
    if (p.imprintHash === null) return;
    if (p.imprintHash !== e.hash) {
      this.problem(e.seq, 'checkpoint_mismatch', `the entry's stored hash is not the one sealed at ${p.genTime.toISOString()} (${p.imprintHash}): the entry or one before it was rewritten`);
      return;
    }
    if (p.genTime.getTime() + p.accuracyMs < e.at.getTime()) {
      this.problem(e.seq, 'checkpoint_mismatch', `sealed at ${p.genTime.toISOString()}, before the entry's time ${e.at.toISOString()}`);
      return;
    }
    this.lastOk = p;
    this.justSealed = p;
    this.entriesAfter = 0;
  }

  /** A checkpoint the entries reached (matched) or went past (its entry is not in the chain). */
  private passed(p: OfferedCheckpoint, entryMissing: boolean): void {
    this.lastPassed = p;
    if (entryMissing && p.imprintHash !== null) this.problem(p.seqText, 'checkpoint_mismatch', `no entry seq ${p.seqText} in the chain: the sealed entry was deleted`);
  }

  /** An audit.checkpoint entry: it must name the last checkpoint before it, by seq and token hash. */
  private record(e: AuditCheckpointEntry): void {
    this.records++;
    const d = e.details ?? {};
    const named = typeof d['checkpointSeq'] === 'string' ? d['checkpointSeq'] : null;
    const hash = typeof d['tokenSha256'] === 'string' ? d['tokenSha256'] : null;
    if (named === null || hash === null) {
      this.problem(e.seq, 'checkpoint_missing', `entry seq ${e.seq} records a checkpoint without naming its seq and token hash`);
      return;
    }
    const last = this.lastPassed;
    if (last && last.seqText === named && last.tokenSha256 === hash) return;
    this.problem(
      named,
      'checkpoint_missing',
      last?.seqText === named
        ? `entry seq ${e.seq} records checkpoint seq ${named} with token sha256 ${hash}, but the checkpoint at that seq holds another token: the recorded checkpoint was replaced`
        : `entry seq ${e.seq} records checkpoint seq ${named} (token sha256 ${hash}), which is not there: the checkpoint was deleted`,
    );
  }

  /** The checkpoints whose entry never came (deleted entries), then the summary and the problems (the first 1000, in seq order; problemCount counts all). */
  finish(): { seal: AuditSealReport; problems: AuditCheckpointProblem[]; problemCount: number } {
    for (const p of this.queue.splice(0)) this.passed(p, true);
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
      problemCount: this.problemCount,
    };
  }

  private problem(seq: string, kind: AuditCheckpointProblemKind, reason: string): void {
    this.problemCount++;
    if (this.problems.length < PROBLEMS_KEPT) this.problems.push({ seq, kind, reason });
  }
}

function compareSeq(a: string, b: string): number {
  const d = /^\d+$/.test(a) && /^\d+$/.test(b) ? BigInt(a) - BigInt(b) : 0n;
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

// validFromDate/validToDate, not new Date(validTo): Date reads Node's "... 49 GMT" (the year 49) as 2049.
const validAt = (c: X509Certificate, at: Date): boolean => c.validFromDate.getTime() <= at.getTime() && at.getTime() <= c.validToDate.getTime();

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
