import { Inject, Injectable } from '@nestjs/common';
import type { AuthEventSink, AuthFailureEvent, AuthRequestInfo, ResolvedSubject, SubjectResolver } from '@keyserver/authz';
import { SubjectRepository, type SubjectWithAccess } from '@keyserver/data-access';
import type { Principal } from '@keyserver/entra-token';
import type { Logger } from 'pino';
import { LOGGER } from '../app/tokens';
import { EDGE, type EdgeServices } from '../edge/edge';

/** Maps a token's (tid, oid) to the registered subject; unknown principals are recorded for admins and audited. */
@Injectable()
export class DbSubjectResolver implements SubjectResolver {
  constructor(
    private readonly subjects: SubjectRepository,
    @Inject(EDGE) private readonly edge: EdgeServices,
  ) {}

  async resolve(principal: Principal, request: AuthRequestInfo): Promise<ResolvedSubject | null> {
    const s = await this.subjects.findAccess(principal.tid, principal.oid);
    if (!s) {
      await this.subjects.recordUnknownPrincipal({
        tid: principal.tid,
        oid: principal.oid,
        kind: principal.kind === 'app' ? 'CLIENT' : 'USER',
        displayName: principal.displayName ?? null,
        username: principal.username ?? null,
        azp: principal.azp,
      });
      // Bounded: a principal retrying in a loop is aggregated (src/edge/refusal-audit.ts).
      await this.edge.refusals.record(`auth.unknown_subject|unknown_subject|principal:${principal.tid}/${principal.oid}`, {
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
    let resolved = this.resolved.get(s);
    if (!resolved) {
      resolved = { subjectId: s.id, kind: s.kind, enabled: s.enabled, natures: s.natures, keyGrants: s.keyPermissions, displayName: s.displayName };
      this.resolved.set(s, resolved);
    }
    return resolved;
  }

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
    const caller = e.principal ? `principal:${e.principal.tid}/${e.principal.oid}` : `ip:${e.ip ?? 'unknown'}`;
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
