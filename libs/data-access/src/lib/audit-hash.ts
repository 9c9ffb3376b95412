import { createHash } from 'node:crypto';
import type { AuditEvent } from './types';

/** prevHash of the first event in the chain. */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);

/** Advisory lock key serializing audit appends across processes ("ks-audit"). */
export const AUDIT_APPEND_LOCK = 0x6b732d61;

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

type HashedFields = Omit<AuditEvent, 'seq' | 'hash'>;

/** sha256 hex over the canonical JSON of the content fields and prevHash (seq excluded: the DB assigns it). */
export function auditEventHash(e: HashedFields): string {
  const content = {
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
  return createHash('sha256').update(canonicalJson(content)).digest('hex');
}
