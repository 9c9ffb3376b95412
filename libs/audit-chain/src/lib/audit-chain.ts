import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { AuditCheckpointVerifier, type AuditCheckpoint, type AuditCheckpointProblemKind, type AuditSealReport, type CheckpointTrust } from './audit-checkpoints';

/** prevHash of the first event in the chain. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);

/**
 * The hash rule new entries are written with. v2 hashes the canonical (storable) content plus `"v":2`; v1 (entries
 * written before migration 20261205000100) hashed the values as the request sent them, which PostgreSQL sometimes
 * stored differently (docs/adr/0009-audit-canonical-form.md).
 */
export const AUDIT_HASH_RULE = 2;

/** The content of an audit event that its hash covers (everything but `seq`, which the database assigns, and `hash`). */
export interface AuditHashInput {
  id: string;
  at: Date;
  action: string;
  outcome: string;
  errorCode: string | null;
  actorTid: string | null;
  actorOid: string | null;
  actorName: string | null;
  actorClient: string | null;
  actorSubjectId: string | null;
  keyid: string | null;
  operationId: string | null;
  adminSessionId: string | null;
  digest: string | null;
  requestId: string | null;
  details: Record<string, unknown>;
  prevHash: string;
}

/** What a writer hands to {@link canonicalAuditContent}: any strings, any JSON-able details. */
export type AuditContentInput = Omit<AuditHashInput, 'prevHash' | 'details'> & { details?: unknown };

/** Columns of type uuid: PostgreSQL stores (and reads back) a UUID lower-case, and refuses anything else. */
export const AUDIT_UUID_FIELDS = ['id', 'actorSubjectId', 'operationId', 'adminSessionId'] as const;
/** Text columns under a btree index: a value longer than a btree row allows cannot be stored. */
export const AUDIT_INDEXED_TEXT_FIELDS = ['action', 'keyid'] as const;
/** Text columns without an index. */
export const AUDIT_TEXT_FIELDS = ['errorCode', 'actorTid', 'actorOid', 'actorName', 'actorClient', 'digest', 'requestId'] as const;
/** Longest value (UTF-16 code units) an indexed text column keeps; at most 4 UTF-8 bytes each, far below btree's ~2700. */
export const AUDIT_INDEXED_TEXT_MAX = 512;
/** details key under which a column value the column cannot hold is kept whole (`column:keyid`, …). */
export const AUDIT_MOVED_PREFIX = 'column:';
/**
 * Prefixed to a caller's top-level details key that starts with {@link AUDIT_MOVED_PREFIX} or with this prefix itself,
 * so that `column:…` keys are only ever the writer's and no two events store the same details.
 */
export const AUDIT_ESCAPED_PREFIX = 'caller:';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
// eslint-disable-next-line no-control-regex -- NUL is exactly what PostgreSQL cannot store
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * The text as PostgreSQL can store it: NUL (refused by text and jsonb) and each lone surrogate (which UTF-8
 * encoding turns into U+FFFD on the way to the database anyway) become U+FFFD. Identity for every other string.
 */
export function storableText(s: string): string {
  return s.replace(UNSTORABLE, '\ufffd');
}

/**
 * The canonical form of an audit event's content: exactly the values PostgreSQL stores and reads back, so the
 * hash the writer computes and the one every verifier recomputes from the stored row cover the same bytes.
 * - every string (columns, details values and keys) through {@link storableText};
 * - a UUID column holds its lower-case form; a value that is not a UUID goes to `details["column:<field>"]`
 *   and the column holds null (the writer generates `id`, always a UUID);
 * - an indexed text column holds at most {@link AUDIT_INDEXED_TEXT_MAX} characters (cut ones end in `…`); the whole value
 *   goes to `details["column:<field>"]`;
 * - a caller's top-level details key starting with `column:` or `caller:` gets the prefix `caller:` (injective: the
 *   moved values are the only `column:` keys, and a long keyid cannot store like a short one plus a planted key);
 * - details as JSON reads it back: toJSON/Dates applied, undefined dropped, non-finite numbers null, bigint as
 *   a decimal string, keys that only differed in unstorable characters kept apart with a `~2`, `~3` … suffix.
 */
export function canonicalAuditContent(e: AuditContentInput): Omit<AuditHashInput, 'prevHash'> {
  const details = escapedDetails(storableDetails(e.details));
  const moved: [string, string][] = [];
  const out = { ...e, details } as Omit<AuditHashInput, 'prevHash'>;
  const cols = out as unknown as Record<string, string | null>;
  for (const f of AUDIT_TEXT_FIELDS) cols[f] = e[f] === null || e[f] === undefined ? null : storableText(e[f]);
  for (const f of AUDIT_INDEXED_TEXT_FIELDS) {
    const v = e[f] === null || e[f] === undefined ? null : storableText(e[f]);
    if (v !== null && v.length > AUDIT_INDEXED_TEXT_MAX) {
      moved.push([f, v]);
      cols[f] = `${storableText(v.slice(0, AUDIT_INDEXED_TEXT_MAX - 1))}…`;
    } else cols[f] = v;
  }
  for (const f of AUDIT_UUID_FIELDS) {
    const v = e[f] === null || e[f] === undefined ? null : storableText(e[f]);
    if (v !== null && !UUID.test(v)) moved.push([f, v]);
    cols[f] = v !== null && UUID.test(v) ? v.toLowerCase() : null;
  }
  // action is NOT NULL: a missing one is stored (and hashed) as the empty string.
  if (out.action === null) out.action = '';
  for (const [f, v] of moved) defineMember(details, `${AUDIT_MOVED_PREFIX}${f}`, v);
  return out;
}

/** The caller's details with every top-level key in the writer's namespaces escaped (see canonicalAuditContent). */
function escapedDetails(details: Record<string, unknown>): Record<string, unknown> {
  const keys = Object.keys(details);
  if (!keys.some(reserved)) return details;
  const out: Record<string, unknown> = {};
  for (const k of keys) defineMember(out, reserved(k) ? `${AUDIT_ESCAPED_PREFIX}${k}` : k, details[k]);
  return out;
}

const reserved = (key: string): boolean => key.startsWith(AUDIT_MOVED_PREFIX) || key.startsWith(AUDIT_ESCAPED_PREFIX);

/** Deepest nesting of details the writer keeps; a value below it is stored as {@link AUDIT_DETAILS_TOO_DEEP}. */
export const AUDIT_DETAILS_MAX_DEPTH = 100;
/** Stored in place of a details value nested deeper than {@link AUDIT_DETAILS_MAX_DEPTH}. */
export const AUDIT_DETAILS_TOO_DEEP = `…nested deeper than ${AUDIT_DETAILS_MAX_DEPTH} levels`;
/** Stored in place of a details value that contains itself. */
export const AUDIT_DETAILS_CIRCULAR = '…circular';

/**
 * The value JSON.stringify would serialize (toJSON applied once, boxed primitives unwrapped, bigint as decimal text), with
 * every value nested deeper than {@link AUDIT_DETAILS_MAX_DEPTH} or containing itself replaced by a marker text: on those
 * JSON.stringify throws (RangeError, TypeError), and the writer must be total (ADR 0009). Identity in effect on anything
 * JSON.stringify serialized before.
 */
function boundedJson(v: unknown, key: string, depth: number, open: Set<object>, toJson = true): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v === null || typeof v !== 'object') return v;
  const withToJson = v as { toJSON?: (k: string) => unknown };
  if (toJson && typeof withToJson.toJSON === 'function') return boundedJson(withToJson.toJSON(key), key, depth, open, false);
  if (v instanceof Number || v instanceof String || v instanceof Boolean) return v.valueOf();
  if (open.has(v)) return AUDIT_DETAILS_CIRCULAR;
  if (depth >= AUDIT_DETAILS_MAX_DEPTH) return AUDIT_DETAILS_TOO_DEEP;
  open.add(v);
  try {
    if (Array.isArray(v)) return v.map((x: unknown, i) => boundedJson(x, String(i), depth + 1, open));
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) defineMember(out, k, boundedJson((v as Record<string, unknown>)[k], k, depth + 1, open));
    return out;
  } finally {
    open.delete(v);
  }
}

function storableDetails(details: unknown): Record<string, unknown> {
  const json = JSON.stringify(boundedJson(details ?? {}, '', 0, new Set()), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  const plain = storableJson(json === undefined ? {} : JSON.parse(json));
  return plain !== null && typeof plain === 'object' && !Array.isArray(plain) ? (plain as Record<string, unknown>) : { value: plain };
}

function storableJson(v: unknown): unknown {
  if (typeof v === 'string') return storableText(v);
  if (Array.isArray(v)) return v.map(storableJson);
  if (v === null || typeof v !== 'object') return v;
  const obj = v as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  const taken = new Set(keys.filter((k) => storableText(k) === k));
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    let key = storableText(k);
    if (key !== k) {
      const base = key;
      for (let n = 2; taken.has(key); n++) key = `${base}~${n}`;
      taken.add(key);
    }
    defineMember(out, key, storableJson(obj[k]));
  }
  return out;
}

/** Sets an own enumerable member even for "__proto__" (an assignment would set the prototype instead). */
function defineMember(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

/** JSON with object keys sorted recursively, so equal content always hashes equally. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/**
 * sha256 hex over the canonical JSON of the content fields, prevHash and `"v":2` (seq excluded: the DB assigns
 * it). Hashes exactly the values given: a verifier passes the stored row; a writer passes
 * {@link canonicalAuditContent}, which is what the database stores.
 */
export function auditEventHash(e: AuditHashInput): string {
  return sha256(auditHashedText(e));
}

/**
 * The exact text an entry's hash (rule v2) is the SHA-256 of, UTF-8 encoded: the canonical JSON of its content, its
 * prevHash and `"v":2`. A checkpoint's token imprint (sha256, entry hash) is a timestamp of these bytes
 * (docs/adr/0048-signed-audit-checkpoints.md): `openssl ts -verify -data` accepts them.
 */
export function auditHashedText(e: AuditHashInput): string {
  return canonicalJson(hashedContent(e, AUDIT_HASH_RULE));
}

/** The retired v1 rule (no `"v"` member), for entries written before the v2 cutover. */
export function auditEventHashV1(e: AuditHashInput): string {
  return sha256(canonicalJson(hashedContent(e, 1)));
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

function hashedContent(e: AuditHashInput, rule: number) {
  return {
    id: e.id,
    at: e.at.toISOString(),
    action: e.action,
    outcome: e.outcome,
    errorCode: e.errorCode,
    actorTid: e.actorTid,
    actorOid: e.actorOid,
    actorName: e.actorName,
    actorClient: e.actorClient,
    actorSubjectId: e.actorSubjectId,
    keyid: e.keyid,
    operationId: e.operationId,
    adminSessionId: e.adminSessionId,
    digest: e.digest,
    requestId: e.requestId,
    details: e.details,
    prevHash: e.prevHash,
    ...(rule === 1 ? {} : { v: rule }),
  };
}

/**
 * The canonical JSON of an event split around its prevHash value, so that whoever holds the chain head (the
 * database, under the append lock) can finish the hash: sha256(prefix + prevHash + suffix) equals
 * {@link auditEventHash} of the event with that prevHash. Pass {@link canonicalAuditContent}'s result.
 */
export function auditHashParts(e: Omit<AuditHashInput, 'prevHash'>): { prefix: string; suffix: string } {
  const content = hashedContent({ ...e, prevHash: '' }, AUDIT_HASH_RULE) as Record<string, unknown>;
  const members = Object.keys(content)
    .sort()
    .map((k) => [k, `${JSON.stringify(k)}:${canonicalJson(content[k])}`] as const);
  const at = members.findIndex(([k]) => k === 'prevHash');
  const before = members.slice(0, at).map(([, m]) => `${m},`).join('');
  const after = members.slice(at + 1).map(([, m]) => `,${m}`).join('');
  return { prefix: `{${before}"prevHash":"`, suffix: `"${after}}` };
}

/** A stored entry as a verifier sees it: the content, its link and its hash. */
export type StoredAuditEntry = AuditHashInput & { seq: string; hash: string };

/** `link_broken`: prevHash is not the previous entry's hash (rows deleted, inserted or reordered);
 * `content_changed`: the entry's own hash does not match its content; `not_an_entry`: an export line that is no entry;
 * `acknowledgement_unsealed` (exports only): an entry of the v1 writer whose acknowledgement no verified signed
 * checkpoint covers (ADR 0048 addendum "acknowledgements need a seal"). */
export type AuditProblemKind = 'link_broken' | 'content_changed' | 'not_an_entry' | 'acknowledgement_unsealed' | AuditCheckpointProblemKind;

export interface AuditProblem {
  /** seq of the entry (or `line N` for an export line that is not an entry). */
  seq: string;
  kind: AuditProblemKind;
  reason: string;
  /** A content_changed entry written before the v2 cutover whose link is intact: an operator may acknowledge it
   * (`keyserver-api audit-acknowledge`, an {@link AUDIT_LEGACY_ACK_ACTION} entry) after checking it. */
  acknowledgeable?: true;
}

/** Action of the entry by which an operator acknowledges a v1 entry that cannot be reconstructed (details: seq, hash, reason). */
export const AUDIT_LEGACY_ACK_ACTION = 'audit.legacy_acknowledged';

/** An entry written before the v2 cutover whose hash verifies under the retired v1 rule only over the bytes the
 * request sent, not the ones PostgreSQL stored (the defect fixed by rule v2): verified, listed for the record. */
export interface AuditLegacyEntry {
  seq: string;
  kind: 'legacy_hash_v1';
  reason: string;
}

/** Result of verifying the chain (the database's or an export). */
export interface AuditChainReport {
  /** true when no entry has a problem (legacy entries verified under v1 are not problems). */
  ok: boolean;
  /** Entries verified before the first problem (all of them when ok). */
  checked: number;
  /** Entries examined (the whole chain). */
  total: number;
  /** seq of the first problem, and its reason. */
  firstBadSeq?: string;
  reason?: string;
  /** Every problem in chain order, the first {@link AUDIT_PROBLEMS_LISTED}; problemCount counts all. */
  problems: AuditProblem[];
  problemCount: number;
  /** Entries that verify only under the v1 rule's reconstruction, the first {@link AUDIT_PROBLEMS_LISTED}. */
  legacy: AuditLegacyEntry[];
  legacyCount: number;
  /** hash of the last entry examined: the chain head (the genesis hash for an empty chain). */
  lastHash: string;
  /** The signed checkpoints (docs/adr/0048), when the verifier was given them: how far the chain is sealed. */
  seal?: AuditSealReport;
}

/** @deprecated name kept for callers of the offline verifier. */
export type ExportVerification = AuditChainReport;

/** How many problems (and legacy entries) a report lists; the counts go on. */
export const AUDIT_PROBLEMS_LISTED = 1000;

/**
 * Walks a chain in seq order and reports every entry that does not verify: its link to the previous entry
 * and its own hash are checked separately, so a deleted row (one link_broken) and an edited one (content_changed)
 * read differently. Entries are accepted under rule v1 until the first v2 entry, never after it.
 */
export class AuditChainVerifier {
  /** Acknowledgements by `${seq} ${hash}` of the entry they acknowledge. */
  private readonly acks = new Map<string, { ackSeq: string; ackHash: string; by: string | null; reason: string }>();
  /** `${seq} ${hash}` of each acknowledgement met in the chain as a verified entry (linked, hash rule v2). */
  private readonly verifiedAcks = new Set<string>();
  /** Entries moved to `legacy` by an acknowledgement: undone in {@link report} unless the chain holds it verified. */
  private readonly acknowledged: { seq: string; ack: string; problemAt: number; checked: number; legacyAt: number }[] = [];

  /**
   * @param acknowledgements the chain's {@link AUDIT_LEGACY_ACK_ACTION} entries (SUCCESS), read beforehand: each moves
   * the v1 entry it names (by seq and stored hash, link intact, earlier than the acknowledgement) from the problems to
   * `legacy`. The acknowledgements are entries of the chain and are verified as every entry is.
   */
  constructor(
    acknowledgements: readonly StoredAuditEntry[] = [],
    private readonly seals?: AuditCheckpointVerifier,
    private readonly opts: {
      /** Report `seal` only when a checkpoint or a checkpoint record was seen (an export verified without a trust anchor). */
      sealOnlyWhenSeen?: boolean;
      /**
       * An acknowledgement counts only when a checkpoint that verified (in `seals`) covers it; otherwise its entry is
       * `acknowledgement_unsealed`. For copies (exports): whoever holds one can append an acknowledgement to its unsealed
       * tail by the public hash rule. Not online: the sealer seals the database's head whatever it holds (ADR 0048 addendum).
       */
      acknowledgementsNeedSeal?: boolean;
    } = {},
  ) {
    for (const a of acknowledgements) {
      const d = a.details ?? {};
      if (a.action !== AUDIT_LEGACY_ACK_ACTION || a.outcome !== 'SUCCESS' || typeof d['seq'] !== 'string' || typeof d['hash'] !== 'string') continue;
      this.acks.set(`${d['seq']} ${d['hash']}`, { ackSeq: a.seq, ackHash: a.hash, by: a.actorName, reason: typeof d['reason'] === 'string' ? d['reason'] : '' });
    }
  }

  private prev = AUDIT_GENESIS_HASH;
  private prevSeq: string | null = null;
  private v2Seen = false;
  private total = 0;
  private checked = 0;
  private problemCount = 0;
  private legacyCount = 0;
  private readonly problems: AuditProblem[] = [];
  private readonly legacy: AuditLegacyEntry[] = [];

  add(e: StoredAuditEntry): void {
    this.total++;
    const before = this.problemCount;
    const linked = e.prevHash === this.prev;
    if (!linked) {
      this.problem(e.seq, 'link_broken', this.prevSeq === null
        ? 'prevHash is not the genesis hash: entries before it were deleted'
        : `prevHash is not the hash of the previous entry (seq ${this.prevSeq}): entries were deleted, inserted or reordered`);
    } else if (this.prevSeq !== null && !isLater(e.seq, this.prevSeq)) {
      // seq is no part of the hash: an export whose entries are linked but numbered out of order names entries falsely.
      this.problem(e.seq, 'link_broken', `seq is not after the previous entry's seq ${this.prevSeq}: the entries are renumbered or out of order`);
    }
    if (auditEventHash(e) === e.hash) {
      this.v2Seen = true;
      if (linked && this.problemCount === before && e.action === AUDIT_LEGACY_ACK_ACTION && e.outcome === 'SUCCESS') this.verifiedAcks.add(`${e.seq} ${e.hash}`);
    } else if (auditEventHashV1(e) === e.hash) {
      if (this.v2Seen) this.problem(e.seq, 'content_changed', 'hashed under the retired v1 rule after the chain moved to v2');
    } else {
      const ack = this.v2Seen || !linked ? undefined : this.acks.get(`${e.seq} ${e.hash}`);
      const reconstructed = this.v2Seen ? null : legacyV1Reason(e);
      const byAck = !this.v2Seen && !reconstructed && ack && isLater(ack.ackSeq, e.seq) ? ack : undefined;
      const legacy = reconstructed ?? (byAck ? `acknowledged by entry seq ${byAck.ackSeq} (${byAck.by ?? 'unnamed'}): ${byAck.reason}` : null);
      if (legacy) {
        if (byAck) {
          this.acknowledged.push({ seq: e.seq, ack: `${byAck.ackSeq} ${byAck.ackHash}`, problemAt: this.problems.length, checked: this.checked, legacyAt: this.legacy.length });
        }
        this.legacyCount++;
        if (this.legacy.length < AUDIT_PROBLEMS_LISTED) this.legacy.push({ seq: e.seq, kind: 'legacy_hash_v1', reason: legacy });
      } else if (this.v2Seen) {
        this.problem(e.seq, 'content_changed', 'content does not match its hash');
      } else {
        this.problem(
          e.seq,
          'content_changed',
          'content does not match its hash under rule v2, rule v1, or v1 over the request bytes PostgreSQL normalised (written before the v2 cutover)',
          linked,
        );
      }
    }
    if (this.problemCount === before && this.problemCount === 0) this.checked++;
    this.seals?.entry(e);
    this.prev = e.hash;
    this.prevSeq = e.seq;
  }

  /**
   * An acknowledgement counts only as an entry of the chain that verifies (linked, its own hash right): one that is not
   * (a forged line of an export, a line that is no entry) leaves the entry it names the problem it was, in its place.
   * With `acknowledgementsNeedSeal` it must also lie at or before the last checkpoint that verified, else the entry is
   * `acknowledgement_unsealed` in its place: the hash chain alone does not vouch for an acknowledgement.
   */
  private withdrawUnverifiedAcknowledgements(): void {
    const sealedThrough = this.seals?.sealedThrough ?? null;
    for (const a of [...this.acknowledged].reverse()) {
      const ackSeq = a.ack.split(' ')[0];
      const verified = this.verifiedAcks.has(a.ack);
      // A verified acknowledgement's seq passed the export's seq check: decimal.
      const unsealed = verified && this.opts.acknowledgementsNeedSeal === true && (sealedThrough === null || BigInt(ackSeq) > sealedThrough);
      if (verified && !unsealed) continue;
      const changed = 'content does not match its hash under rule v2, rule v1, or v1 over the request bytes PostgreSQL normalised';
      this.problemCount++;
      if (a.problemAt < AUDIT_PROBLEMS_LISTED) this.problems.splice(a.problemAt, 0, unsealed ? {
        seq: a.seq,
        kind: 'acknowledgement_unsealed',
        reason: `${changed}; the acknowledgement naming it (seq ${ackSeq}) comes after the last signed checkpoint that verified (${sealedThrough === null ? 'none' : `seq ${sealedThrough}`}): anyone holding a copy can append one by the public hash rule, so nothing vouches for it. Verify an export taken after the next checkpoint`,
      } : {
        seq: a.seq,
        kind: 'content_changed',
        reason: `${changed}; the acknowledgement naming it (seq ${ackSeq}) is not a verified entry of this chain`,
        acknowledgeable: true,
      });
      if (this.problems.length > AUDIT_PROBLEMS_LISTED) this.problems.pop();
      this.checked = Math.min(this.checked, a.checked);
      this.legacyCount--;
      if (a.legacyAt < this.legacy.length && this.legacy[a.legacyAt].seq === a.seq) this.legacy.splice(a.legacyAt, 1);
    }
    this.acknowledged.length = 0;
  }

  /** An export line that is not an entry (the chain continues from the last entry). */
  notAnEntry(seq: string, reason: string): void {
    this.total++;
    this.problem(seq, 'not_an_entry', reason);
  }

  private problem(seq: string, kind: AuditProblemKind, reason: string, acknowledgeable = false): void {
    this.problemCount++;
    if (this.problems.length < AUDIT_PROBLEMS_LISTED) this.problems.push({ seq, kind, reason, ...(acknowledgeable ? { acknowledgeable: true as const } : {}) });
  }

  report(): AuditChainReport {
    this.withdrawUnverifiedAcknowledgements();
    const sealed = this.seals && (!this.opts.sealOnlyWhenSeen || this.seals.seen) ? this.seals.finish() : undefined;
    for (const p of sealed?.problems ?? []) this.problem(p.seq, p.kind, p.reason);
    // Checkpoint problems beyond those the checkpoint verifier kept are counted all the same.
    this.problemCount += (sealed?.problemCount ?? 0) - (sealed?.problems.length ?? 0);
    const first = this.problems[0];
    return {
      ok: this.problemCount === 0,
      checked: this.checked,
      total: this.total,
      ...(first ? { firstBadSeq: first.seq, reason: first.reason } : {}),
      problems: [...this.problems],
      problemCount: this.problemCount,
      legacy: [...this.legacy],
      legacyCount: this.legacyCount,
      lastHash: this.prev,
      ...(sealed ? { seal: sealed.seal } : {}),
    };
  }
}

/** Whether seq `a` comes after seq `b` (decimal strings; false for anything else). */
function isLater(a: string, b: string): boolean {
  return /^\d+$/.test(a) && /^\d+$/.test(b) && BigInt(a) > BigInt(b);
}

const LEGACY_UUID_FIELDS = ['actorSubjectId', 'operationId', 'adminSessionId'] as const;
const LEGACY_TEXT_FIELDS = ['action', 'errorCode', 'actorTid', 'actorOid', 'actorName', 'actorClient', 'keyid', 'digest', 'requestId'] as const;

/**
 * Why an entry that fails rules v2 and v1 still verifies under v1: the v1 writer hashed the request's bytes, PostgreSQL
 * stored a UUID lower-case and a lone surrogate as U+FFFD. Tries the upper-case form of each UUID column and, when a
 * text column holds exactly one U+FFFD, each of the 2048 surrogates in its place (at most 8 × 2049 hashes); null
 * when none verifies. Nothing is re-hashed or rewritten: the stored hash must match a reconstruction.
 */
export function legacyV1Reason(e: StoredAuditEntry): string | null {
  const uuids = LEGACY_UUID_FIELDS.filter((f) => typeof e[f] === 'string' && /[a-f]/.test(e[f] as string));
  const fffd = LEGACY_TEXT_FIELDS.flatMap((f) => {
    const v = e[f];
    return typeof v === 'string' ? [...v.matchAll(/\ufffd/g)].map((m) => ({ f, at: m.index })) : [];
  });
  if (fffd.length > 1 || (uuids.length === 0 && fffd.length === 0)) return null;
  for (let mask = 0; mask < 1 << uuids.length; mask++) {
    const variant: StoredAuditEntry = { ...e };
    const upper = uuids.filter((_f, i) => mask & (1 << i));
    for (const f of upper) variant[f] = (e[f] as string).toUpperCase();
    const why = (surrogate?: string) =>
      `written by the v1 writer, whose hash covered ${[
        ...upper.map((f) => `the upper-case ${f}`),
        ...(surrogate ? [`a lone surrogate U+${surrogate.charCodeAt(0).toString(16).toUpperCase()} in ${fffd[0].f}`] : []),
      ].join(' and ')} where PostgreSQL stored ${[...(upper.length ? ['the lower-case UUID'] : []), ...(surrogate ? ['U+FFFD'] : [])].join(' and ')}; verifies under rule v1`;
    if (fffd.length === 0) {
      if (mask !== 0 && auditEventHashV1(variant) === e.hash) return why();
      continue;
    }
    const { f, at } = fffd[0];
    const text = e[f] as string;
    for (let cu = 0xd800; cu <= 0xdfff; cu++) {
      const s = String.fromCharCode(cu);
      (variant as unknown as Record<string, string>)[f] = text.slice(0, at) + s + text.slice(at + 1);
      if (auditEventHashV1(variant) === e.hash) return why(s);
    }
  }
  return null;
}

/** Longest export line (UTF-16 code units) a verifier reads: far above any entry the API writes (a request body is at
 * most 1 MiB), so that a file without line breaks cannot fill the verifier's memory. */
export const AUDIT_EXPORT_LINE_MAX = 16 * 1024 * 1024;
/** Acknowledgements the first pass over an export keeps (each names one entry of the v1 writer: real chains hold few). */
export const AUDIT_ACKNOWLEDGEMENTS_MAX = 10_000;
/** Characters of an acknowledgement's reason the first pass keeps (`audit-acknowledge` takes at most 1000). */
const ACK_REASON_MAX = 1000;

/** What {@link fileLines} yields in place of a line longer than {@link AUDIT_EXPORT_LINE_MAX} (no JSON starts with NUL). */
const LINE_TOO_LONG = '\u0000line too long';

const HASHED = ['id', 'at', 'action', 'outcome', 'prevHash', 'hash'] as const;
/** The members of an export's entry line (`auditExportLine`): seq and hash, and the content {@link auditEventHash} covers. */
const EXPORT_MEMBERS: ReadonlySet<string> = new Set([
  'seq', 'id', 'at', 'action', 'outcome', 'errorCode', 'actorTid', 'actorOid', 'actorName', 'actorClient', 'actorSubjectId', 'keyid',
  'operationId', 'adminSessionId', 'digest', 'requestId', 'details', 'prevHash', 'hash',
]);
/** A seq as the export writes it (PostgreSQL bigint, decimal, no sign, no leading zero). */
const EXPORT_SEQ = /^(0|[1-9]\d{0,18})$/;
const CHECKPOINT_LINE = '{"checkpoint":';

/**
 * Whether a JSON text (one that JSON.parse accepts) names a member twice in one object, under any spelling (`"a"`,
 * `"\u0061"`). JSON.parse keeps the last; other readers keep the first or refuse: such a line reads differently to
 * different readers, so a verifier that accepted it would vouch for text an auditor may read otherwise.
 */
export function hasDuplicateMember(json: string): boolean {
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      if (expectKey) {
        const keys = stack[stack.length - 1] as Set<string>;
        const key = JSON.parse(json.slice(i, j + 1)) as string;
        if (keys.has(key)) return true;
        keys.add(key);
        expectKey = false;
      }
      i = j;
    } else if (c === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (c === '[') {
      stack.push(null);
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
  return false;
}

/** Lines of an export as a verifier reads them: any iterable (a string split at `\n`) or a stream of lines. */
export type ExportLines = Iterable<string> | AsyncIterable<string>;

/**
 * An export read as two streams of its lines (the same file twice, or two iterators): `entries` yields every line (the
 * checkpoint lines are skipped), `checkpoints` every line too (only the checkpoint lines are read), and the chain's
 * acknowledgements ({@link AUDIT_LEGACY_ACK_ACTION} entries) read beforehand ({@link exportAcknowledgement}).
 */
export interface AuditExportSource {
  entries: ExportLines;
  checkpoints: ExportLines;
  acknowledgements: readonly StoredAuditEntry[];
}

/** The acknowledgement entry an export line holds, or null: collect them in a first pass for {@link verifyAuditExportStream}. */
export function exportAcknowledgement(line: string): StoredAuditEntry | null {
  if (!line.includes(AUDIT_LEGACY_ACK_ACTION) || line.length > AUDIT_EXPORT_LINE_MAX || line.trim().startsWith(CHECKPOINT_LINE)) return null;
  try {
    const raw = JSON.parse(line) as StoredAuditEntry | null;
    if (!raw || typeof raw !== 'object' || typeof raw.seq !== 'string' || raw.action !== AUDIT_LEGACY_ACK_ACTION) return null;
    // Only the members AuditChainVerifier reads, each bounded: a line of megabytes is not held whole until the end.
    const d = raw.details && typeof raw.details === 'object' ? raw.details : {};
    const text = (v: unknown, max: number) => (typeof v === 'string' && v.length <= max ? v : undefined);
    const reason = typeof d['reason'] === 'string' ? d['reason'].slice(0, ACK_REASON_MAX) : undefined;
    return {
      seq: raw.seq.slice(0, 20),
      hash: text(raw.hash, 64),
      action: raw.action,
      outcome: text(raw.outcome, 16),
      actorName: typeof raw.actorName === 'string' ? raw.actorName.slice(0, ACK_REASON_MAX) : null,
      details: { seq: text(d['seq'], 20), hash: text(d['hash'], 64), reason },
    } as unknown as StoredAuditEntry;
  } catch {
    return null;
  }
}

function exportCheckpoint(text: string): AuditCheckpoint | null {
  const line = text.trim();
  if (!line.startsWith(CHECKPOINT_LINE) || line.length > AUDIT_EXPORT_LINE_MAX) return null;
  try {
    const parsed = JSON.parse(line) as Record<string, unknown>;
    const raw = parsed['checkpoint'] as AuditCheckpoint | null;
    return raw && typeof raw === 'object' && !Array.isArray(raw) && Object.keys(parsed).length === 1 ? raw : null;
  } catch {
    return null;
  }
}

/** One export line for the chain verifier: an entry (with its seq when it has a decimal one), a non-entry, or nothing. */
function exportEntry(v: AuditChainVerifier, text: string, lineNo: number): { entry: StoredAuditEntry; seq: bigint | null } | null {
  // trim: a byte order mark before the first line and CR of CRLF line ends change no member.
  const line = text.trim();
  if (!line) return null;
  if (line === LINE_TOO_LONG || line.length > AUDIT_EXPORT_LINE_MAX) {
    v.notAnEntry(`line ${lineNo}`, `longer than ${AUDIT_EXPORT_LINE_MAX} characters: not read`);
    return null;
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(line) as Record<string, unknown>;
  } catch {
    v.notAnEntry(`line ${lineNo}`, line.startsWith(CHECKPOINT_LINE) ? 'not a checkpoint line: not JSON' : 'not JSON');
    return null;
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    v.notAnEntry(`line ${lineNo}`, 'not an audit entry');
    return null;
  }
  const duplicate = hasDuplicateMember(line);
  if (line.startsWith(CHECKPOINT_LINE)) {
    // The checkpoint stream reads it; here it must be one, else it is a line no verifier would look at.
    if (!exportCheckpoint(line) || duplicate) v.notAnEntry(`line ${lineNo}`, duplicate ? 'a checkpoint line naming a member twice' : 'not a checkpoint line');
    return null;
  }
  const named = typeof raw['seq'] === 'string' && raw['seq'].length <= 19 ? raw['seq'] : null;
  const seq = named ?? `line ${lineNo}`;
  // One reading only: what the export writes, nothing a reader could take otherwise (ADR 0009 addendum).
  const why =
    HASHED.some((f) => typeof raw[f] !== 'string') || isNaN(Date.parse(String(raw['at'])))
      ? 'not an audit entry'
      : named === null || !EXPORT_SEQ.test(named)
        ? 'seq is not a decimal string as the export writes it'
        : duplicate
          ? 'a member is named twice: JSON readers disagree on its value'
          : Object.keys(raw).some((k) => !EXPORT_MEMBERS.has(k))
            ? `a member the export does not write: ${Object.keys(raw).filter((k) => !EXPORT_MEMBERS.has(k)).slice(0, 3).map((k) => JSON.stringify(k)).join(', ')}`
            : new Date(String(raw['at'])).toISOString() !== raw['at']
              ? 'at is not the ISO 8601 UTC form the export writes (YYYY-MM-DDTHH:mm:ss.sssZ)'
              : null;
  if (why) {
    v.notAnEntry(seq, why);
    return null;
  }
  return { entry: { ...raw, seq, at: new Date(String(raw['at'])) } as unknown as StoredAuditEntry, seq: BigInt(seq) };
}

const cpSeq = (cp: AuditCheckpoint): bigint => (typeof cp.seq === 'string' && /^\d{1,19}$/.test(cp.seq) ? BigInt(cp.seq) : -1n);

function exportVerifiers(acks: readonly StoredAuditEntry[], trust?: CheckpointTrust): { chain: AuditChainVerifier; seals: AuditCheckpointVerifier } {
  // Without a trust anchor a checkpoint is checked against the certificate its token carries (seal.anchored false).
  const seals = new AuditCheckpointVerifier(trust ?? (() => null), trust !== undefined);
  return { chain: new AuditChainVerifier(acks, seals, { sealOnlyWhenSeen: trust === undefined, acknowledgementsNeedSeal: true }), seals };
}

/**
 * Verifies a JSON-lines export of `GET /api/v1/audit/export` offline: each entry's hash is recomputed from its
 * content and must link to the previous one, from the genesis hash on; every bad entry is reported; the checkpoint
 * lines as {@link AuditCheckpointVerifier} says. Needs no database. The whole text in memory: for a file use
 * {@link verifyAuditExportFile}, which streams.
 */
export function verifyAuditExport(text: string, trust?: CheckpointTrust): AuditChainReport {
  const lines = text.split('\n');
  const { chain, seals } = exportVerifiers(lines.flatMap((l) => exportAcknowledgement(l) ?? []), trust);
  const checkpoints = lines.flatMap((l) => exportCheckpoint(l) ?? []);
  let next = 0;
  lines.forEach((line, i) => {
    const e = exportEntry(chain, line, i + 1);
    if (!e) return;
    // Each checkpoint is offered just before the entry at its seq (or the first after it): memory for one.
    while (e.seq !== null && next < checkpoints.length && cpSeq(checkpoints[next]) <= e.seq) seals.offer(checkpoints[next++]);
    chain.add(e.entry);
  });
  while (next < checkpoints.length) seals.offer(checkpoints[next++]);
  return chain.report();
}

/**
 * {@link verifyAuditExport} over streams of lines, with bounded memory whatever the export's size: entries are read
 * one at a time and each checkpoint line just before the entry it seals (the checkpoint lines may be anywhere in the
 * export, in seq order; the export puts them last).
 */
export async function verifyAuditExportStream(src: AuditExportSource, trust?: CheckpointTrust): Promise<AuditChainReport> {
  const { chain, seals } = exportVerifiers(src.acknowledgements, trust);
  const cpLines = iterate(src.checkpoints);
  const nextCheckpoint = async (): Promise<AuditCheckpoint | null> => {
    for (;;) {
      const r = await cpLines.next();
      if (r.done) return null;
      const cp = exportCheckpoint(r.value);
      if (cp) return cp;
    }
  };
  let next = await nextCheckpoint();
  let lineNo = 0;
  for await (const line of src.entries) {
    const e = exportEntry(chain, line, ++lineNo);
    if (!e) continue;
    while (e.seq !== null && next && cpSeq(next) <= e.seq) {
      seals.offer(next);
      next = await nextCheckpoint();
    }
    chain.add(e.entry);
  }
  while (next) {
    seals.offer(next);
    next = await nextCheckpoint();
  }
  return chain.report();
}

function iterate(lines: ExportLines): AsyncIterator<string> | Iterator<string> {
  return Symbol.asyncIterator in lines ? lines[Symbol.asyncIterator]() : lines[Symbol.iterator]();
}

/**
 * The lines of a file (split at `\n` like {@link verifyAuditExport}), read in chunks. A line longer than `max`
 * characters is never held: it is skipped to its end and a marker the verifiers report as `not_an_entry` stands in
 * for it, so a file without line breaks (or an endless one) cannot fill the memory.
 */
export async function* fileLines(path: string, max = AUDIT_EXPORT_LINE_MAX): AsyncGenerator<string> {
  let rest = '';
  let tooLong = false;
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 16 })) {
    const text = chunk as string;
    let from = 0;
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', from)) {
      if (tooLong || rest.length + nl - from > max) yield LINE_TOO_LONG;
      else yield rest + text.slice(from, nl);
      rest = '';
      tooLong = false;
      from = nl + 1;
    }
    if (!tooLong && rest.length + text.length - from > max) {
      tooLong = true;
      rest = '';
    }
    if (!tooLong) rest += text.slice(from);
  }
  yield tooLong ? LINE_TOO_LONG : rest;
}

/**
 * Verifies an export file with bounded memory (`ksctl audit verify`, `keyserver-api audit-verify`): one pass for the
 * acknowledgements, then the entries and the checkpoint lines as two streams of the same file.
 */
export async function verifyAuditExportFile(path: string, trust?: CheckpointTrust): Promise<AuditChainReport> {
  const acknowledgements = await fileAcknowledgements(path);
  return verifyAuditExportStream({ entries: fileLines(path), checkpoints: fileLines(path), acknowledgements }, trust);
}

/**
 * The first pass of {@link verifyAuditExportFile}: the file's acknowledgements ({@link exportAcknowledgement}), at most
 * {@link AUDIT_ACKNOWLEDGEMENTS_MAX} of them, so a file of acknowledgement lines cannot fill the memory. One beyond is
 * not kept, so the entry it names stays a problem: the verifier errs towards reporting.
 */
export async function fileAcknowledgements(path: string): Promise<StoredAuditEntry[]> {
  const acknowledgements: StoredAuditEntry[] = [];
  for await (const line of fileLines(path)) {
    const ack = acknowledgements.length < AUDIT_ACKNOWLEDGEMENTS_MAX ? exportAcknowledgement(line) : null;
    if (ack) acknowledgements.push(ack);
  }
  return acknowledgements;
}
