import { createHash } from 'node:crypto';

/**
 * One canonical text of a JSON value: object members sorted by name (UTF-16 order), undefined members
 * dropped, strings and numbers as JSON.stringify writes them (lone surrogates escaped, so no two strings
 * share a text). Only for request fingerprints; the audit chain has its own canonical form.
 */
function canonical(value: unknown): string {
  if (value === undefined || value === null) return 'null';
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The fingerprint an Idempotency-Key is bound to: SHA-256 (hex) over the route, the key and the whole
 * validated body. A retry with the same key is answered from the store only when its fingerprint is equal;
 * any other difference in the request is `idempotency_key_reused`.
 */
export function requestFingerprint(route: string, idempotencyKey: string, body: Record<string, unknown>): string {
  return createHash('sha256').update(canonical({ route, idempotencyKey, body }), 'utf8').digest('hex');
}
