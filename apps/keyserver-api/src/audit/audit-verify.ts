import { readFileSync } from 'node:fs';
import { AUDIT_GENESIS_HASH, auditEventHash, type AuditEvent } from '@keyserver/data-access';

/** Result of verifying an exported audit log. */
export interface ExportVerification {
  ok: boolean;
  /** Entries that verified before the first bad one (all of them when ok). */
  checked: number;
  /** seq of the first entry whose hash or link does not verify (or `line N` when a line is not an entry). */
  firstBadSeq?: string;
  reason?: string;
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
    const seq = typeof raw['seq'] === 'string' ? raw['seq'] : `line ${i + 1}`;
    if (HASHED.some((f) => typeof raw[f] !== 'string') || isNaN(Date.parse(String(raw['at'])))) {
      return { ok: false, checked, firstBadSeq: seq, reason: 'not an audit entry' };
    }
    const e = { ...raw, at: new Date(String(raw['at'])) } as unknown as AuditEvent;
    if (e.prevHash !== prev) return { ok: false, checked, firstBadSeq: seq, reason: 'does not link to the previous entry' };
    if (auditEventHash(e) !== e.hash) return { ok: false, checked, firstBadSeq: seq, reason: 'content does not match its hash' };
    prev = e.hash;
    checked++;
  }
  return { ok: true, checked };
}

/** `keyserver-api audit-verify FILE`: prints the outcome; exit code 0 when the whole file verifies, 1 otherwise, 2 on usage errors. */
export function auditVerifyCommand(file: string | undefined): number {
  if (!file) {
    process.stderr.write('usage: keyserver-api audit-verify <export.jsonl>\n');
    return 2;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    process.stderr.write(`audit-verify: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}\n`);
    return 2;
  }
  const r = verifyAuditExport(text);
  if (r.ok) {
    process.stdout.write(`audit-verify: OK, ${r.checked} entries verified\n`);
    return 0;
  }
  process.stdout.write(`audit-verify: FAILED at seq ${r.firstBadSeq}: ${r.reason} (${r.checked} entries verified before it)\n`);
  return 1;
}
