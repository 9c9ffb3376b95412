import { createHash } from 'node:crypto';

/** prevHash of the first event in the chain. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);

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

/** sha256 hex over the canonical JSON of the content fields and prevHash (seq excluded: the DB assigns it). */
export function auditEventHash(e: AuditHashInput): string {
  return createHash('sha256').update(canonicalJson(hashedContent(e))).digest('hex');
}

function hashedContent(e: AuditHashInput) {
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
  };
}

/**
 * The canonical JSON of an event split around its prevHash value, so that whoever holds the chain head (the
 * database, under the append lock) can finish the hash: sha256(prefix + prevHash + suffix) equals
 * {@link auditEventHash} of the event with that prevHash.
 */
export function auditHashParts(e: Omit<AuditHashInput, 'prevHash'>): { prefix: string; suffix: string } {
  const json = canonicalJson({ ...hashedContent({ ...e, prevHash: '' }) });
  // Keys are sorted, so the top-level prevHash is the last one (only requestId follows, a string or null):
  // a "prevHash" key nested in details comes earlier.
  const marker = '"prevHash":"';
  const at = json.lastIndexOf(marker) + marker.length;
  return { prefix: json.slice(0, at), suffix: json.slice(at) };
}

/** Result of verifying an exported audit log. */
export interface ExportVerification {
  ok: boolean;
  /** Entries that verified before the first bad one (all of them when ok). */
  checked: number;
  /** seq of the first entry whose hash or link does not verify (or `line N` when a line is not an entry). */
  firstBadSeq?: string;
  reason?: string;
  /** hash of the last verified entry (the chain head when ok); the genesis hash for an empty export. */
  lastHash?: string;
}

const HASHED = ['id', 'at', 'action', 'outcome', 'prevHash', 'hash'] as const;

/**
 * Verifies a JSON-lines export of `GET /api/v1/audit/export` offline: each entry's hash is recomputed
 * from its content and must link to the previous one, from the genesis hash on. Needs no database.
 */
export function verifyAuditExport(text: string): ExportVerification {
  let prev = AUDIT_GENESIS_HASH;
  let checked = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return { ok: false, checked, firstBadSeq: `line ${i + 1}`, reason: 'not JSON' };
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      return { ok: false, checked, firstBadSeq: `line ${i + 1}`, reason: 'not an audit entry' };
    }
    const seq = typeof raw['seq'] === 'string' ? raw['seq'] : `line ${i + 1}`;
    if (HASHED.some((f) => typeof raw[f] !== 'string') || isNaN(Date.parse(String(raw['at'])))) {
      return { ok: false, checked, firstBadSeq: seq, reason: 'not an audit entry' };
    }
    const e = { ...raw, at: new Date(String(raw['at'])) } as unknown as AuditHashInput & { hash: string };
    if (e.prevHash !== prev) return { ok: false, checked, firstBadSeq: seq, reason: 'does not link to the previous entry' };
    if (auditEventHash(e) !== e.hash) return { ok: false, checked, firstBadSeq: seq, reason: 'content does not match its hash' };
    prev = e.hash;
    checked++;
  }
  return { ok: true, checked, lastHash: prev };
}
