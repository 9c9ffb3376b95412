import { Inject, Injectable } from '@nestjs/common';
import type { AuthEventSink, AuthFailureEvent, AuthRequestInfo, ResolvedSubject, SubjectResolver } from '@keyserver/authz';
import { SubjectRepository, type SubjectWithAccess } from '@keyserver/data-access';
import type { Principal } from '@keyserver/entra-token';
import type { Logger } from 'pino';
import { LOGGER } from '../app/tokens';
import { addressKey, EDGE, principalKey, type EdgeServices } from '../edge/edge';

/** Maps a token's (tid, oid) to the registered subject; unknown principals are recorded for admins and audited. */
@Injectable()
export class DbSubjectResolver implements SubjectResolver {
  constructor(
    private readonly subjects: SubjectRepository,
    @Inject(EDGE) private readonly edge: EdgeServices,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async resolve(principal: Principal, request: AuthRequestInfo): Promise<ResolvedSubject | null> {
    const s = await this.subjects.findAccess(principal.tid, principal.oid);
    const proven = principal.kind === 'user' && principal.account ? (principal.account === 'member' ? 'MEMBER' : 'GUEST') : undefined;
    if (!s) {
      await this.subjects.recordUnknownPrincipal({
        account: proven,
        tid: principal.tid,
        oid: principal.oid,
        kind: principal.kind === 'app' ? 'CLIENT' : 'USER',
        displayName: principal.displayName ?? null,
        username: principal.username ?? null,
        azp: principal.azp,
      });
      // Bounded: a principal retrying in a loop is aggregated (src/edge/refusal-audit.ts).
      await this.edge.refusals.record(`auth.unknown_subject|unknown_subject|${principalKey(principal.tid, principal.oid)}`, {
        action: 'auth.unknown_subject',
        outcome: 'DENIED',
        errorCode: 'unknown_subject',
        actorTid: principal.tid,
        actorOid: principal.oid,
        actorName: principal.displayName ?? null,
        actorClient: principal.azp,
        details: { method: request.method, path: request.path, kind: principal.kind },
      });
      return null;
    }
    if (proven && s.kind === 'USER' && s.account !== proven) await this.recordAccount(s, proven, principal, request);
    let resolved = this.resolved.get(s);
    if (!resolved) {
      resolved = { subjectId: s.id, kind: s.kind, enabled: s.enabled, natures: s.natures, keyGrants: s.keyPermissions, displayName: s.displayName };
      this.resolved.set(s, resolved);
    }
    return resolved;
  }

  /**
   * Records a kind the token proves and the snapshot does not show (ADR 0040 addendum): a write only when it changes,
   * never per request (the write flushes the access cache, so the next snapshot shows it). A token older than the
   * recorded proof is ignored; requests of one subject arriving together share one write. A failure is logged and
   * retried by the next request: this request is decided from its token either way.
   */
  private async recordAccount(s: SubjectWithAccess, account: 'MEMBER' | 'GUEST', principal: Principal, request: AuthRequestInfo): Promise<void> {
    const provenAt = new Date((principal.issuedAt ?? Math.floor(Date.now() / 1000)) * 1000);
    if (s.accountProvenAt && provenAt < s.accountProvenAt) return;
    const key = `${s.id}:${account}`;
    let pending = this.recording.get(key);
    if (!pending) {
      pending = this.subjects
        .recordAccount(s.id, account, provenAt, {
          action: 'subject.account',
          outcome: 'SUCCESS',
          actorTid: principal.tid,
          actorOid: principal.oid,
          actorName: principal.displayName ?? s.displayName,
          actorClient: principal.azp,
          actorSubjectId: s.id,
          details: { method: request.method, path: request.path },
        })
        .then(
          () => undefined,
          (err: unknown) => this.logger.warn({ err: (err as Error).message, subjectId: s.id }, 'could not record the account kind; the next request retries'),
        )
        .finally(() => this.recording.delete(key));
      this.recording.set(key, pending);
    }
    await pending;
  }

  private readonly recording = new Map<string, Promise<void>>();

  // One ResolvedSubject per cached access snapshot, so that authorize() derives the Actor's sets once per snapshot.
  private readonly resolved = new WeakMap<SubjectWithAccess, ResolvedSubject>();
}

/**
 * Writes every refused request (401/403 from the guard) to the audit log, bounded: identical refusals of one
 * caller (IP for invalid tokens, principal otherwise) beyond the first few per window are aggregated.
 */
@Injectable()
export class AuditAuthEventSink implements AuthEventSink {
  constructor(
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(EDGE) private readonly edge: EdgeServices,
  ) {}

  async authFailed(e: AuthFailureEvent): Promise<void> {
    if (e.code === 'unknown_subject') return; // already audited by the resolver with more detail
    const action = e.status === 401 ? 'auth.invalid_token' : 'auth.forbidden';
    // A caller without a valid token is its client (an IPv6 one per /64), as at the rate limit (clientKey, @keyserver/http-problems).
    const caller = e.principal ? principalKey(e.principal.tid, e.principal.oid) : addressKey(e.ip);
    try {
      await this.edge.refusals.record(`${action}|${e.code}|${caller}`, {
        action,
        outcome: 'DENIED',
        errorCode: e.code,
        actorTid: e.principal?.tid ?? null,
        actorOid: e.principal?.oid ?? null,
        actorClient: e.principal?.azp ?? null,
        actorSubjectId: e.subjectId ?? null,
        // Whether the token said guest or carried no acct (the optional claim missing): what the operator must fix.
        details: { method: e.method, path: e.path.slice(0, 256), status: e.status, ...(e.code === 'member_account_required' ? { account: e.principal?.account ?? 'none' } : {}) },
      });
    } catch (err) {
      this.logger.error({ err }, 'could not audit a refused request');
    }
  }
}
