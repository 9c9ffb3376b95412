import { Injectable } from '@nestjs/common';
import { AuditRepository, type AuditInput } from '@keyserver/data-access';
import { KeyserverError } from '@keyserver/errors';
import { actorAudit, type Actor } from './actor';

/** The audit event of one request as a service builds it: SUCCESS until something refuses or fails. */
export interface AuditScope {
  /** The event: the service adds what it learns (keyid, operationId, details) and hands it to the repository,
   * which appends it as SUCCESS in the change's own transaction. */
  readonly event: AuditInput;
  /** The change and its SUCCESS event are committed: a later failure (reading the answer) records nothing more. */
  committed(): void;
}

export interface AuditedOptions {
  /** Shapes the refusal event from the event built so far (e.g. an id that is not a UUID moved into details). */
  refusal?: (event: AuditInput, err: unknown) => AuditInput | Promise<AuditInput>;
  /** Runs before the refusal is recorded (e.g. drain a streamed body). */
  onError?: (err: unknown) => void;
}

/** The error code an audit entry records for a thrown value. */
export function errorCodeOf(err: unknown): string {
  return err instanceof KeyserverError ? err.code : 'internal_error';
}

/** DENIED for refusals (4xx), FAILED for faults. */
export function outcomeOf(err: unknown): 'DENIED' | 'FAILED' {
  return err instanceof KeyserverError && err.status < 500 ? 'DENIED' : 'FAILED';
}

/** The SUCCESS event of `action` by `actor` in request `requestId`, plus `extra` columns. */
export function auditEvent(action: string, actor: Actor, requestId: string, extra: Partial<AuditInput> = {}): AuditInput {
  return { ...actorAudit(actor), action, outcome: 'SUCCESS', requestId, ...extra };
}

/**
 * The one place that records the outcome of an audited request. Every mutating service runs its work in
 * `audited.run(auditEvent(action, actor, requestId), async (a) => ...)`: the repository appends the SUCCESS event
 * with the change (same transaction), and anything thrown before `a.committed()` — a validation refusal, an access
 * refusal, a conflict, a fault — is appended here as DENIED (4xx) or FAILED (anything else) with its stable code,
 * then rethrown. Services keep no audit try/catch of their own.
 */
@Injectable()
export class Audited {
  constructor(private readonly audit: AuditRepository) {}

  /**
   * Appends an event that goes with no change of its own (e.g. a stored answer handed out again for a repeated
   * Idempotency-Key). Inside {@link run}: when it fails, the request fails and its refusal is recorded instead.
   */
  async record(event: AuditInput): Promise<void> {
    await this.audit.append(event);
  }

  async run<T>(event: AuditInput, fn: (scope: AuditScope) => Promise<T>, opts: AuditedOptions = {}): Promise<T> {
    let done = false;
    const scope: AuditScope = {
      event,
      committed: () => {
        done = true;
      },
    };
    try {
      return await fn(scope);
    } catch (err) {
      opts.onError?.(err);
      if (!done) {
        const refused = opts.refusal ? await opts.refusal(scope.event, err) : scope.event;
        await this.audit.append({ ...refused, outcome: outcomeOf(err), errorCode: errorCodeOf(err) });
      }
      throw err;
    }
  }
}
