import type { AuditInput } from '@keyserver/data-access';
import { ApiError, ApiErrorCode } from './api-error';
import type { Audited, AuditScope } from './audited';

/**
 * The routes that honour an Idempotency-Key, as method and path exactly as routed: the edge lets the header through on
 * these only (`idempotency_key_not_supported` elsewhere), and each names its fingerprint (`requestFingerprint`) with it.
 */
export const IDEMPOTENT_ROUTE = { signOrders: 'POST /api/signorders', certificates: 'POST /api/v1/certificates', operations: 'POST /api/v1/operations' } as const;

/**
 * The one form of an Idempotency-Key on every route that honours it (ADR 0012 addendum "idempotency, session 25"):
 * 1-128 characters of [A-Za-z0-9._:-], compared byte for byte. No case folding, no Unicode normalisation.
 */
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

/** The key of a request that honours one, or undefined without; anything else is `400 idempotency_key_invalid`. */
export function checkIdempotencyKey(key: string | undefined): string | undefined {
  if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) throw new ApiError(ApiErrorCode.IdempotencyKeyInvalid, 'Idempotency-Key must be 1-128 characters [A-Za-z0-9._:-]');
  return key;
}

/**
 * A stored answer handed out again (a repeated Idempotency-Key, nothing signed, no usage, no operation created): one
 * `<action>.replayed` SUCCESS event under this request's id, with `details` naming the stored row and `firstRequestId`
 * the request that made it, so every delivery of a signature, certificate or operation is in the audit log. Not
 * counted in the route's metrics.
 */
export async function auditReplay(audited: Audited, a: AuditScope, action: string, firstRequestId: string | null, extra: Partial<AuditInput> & { details: Record<string, unknown> }): Promise<void> {
  await audited.record({ ...a.event, ...extra, action: `${action}.replayed`, details: { ...a.event.details, ...extra.details, firstRequestId } });
}
