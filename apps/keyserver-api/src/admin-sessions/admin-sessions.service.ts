import { Inject, Injectable } from '@nestjs/common';
import { z } from 'zod';
import { CreateAdminSessionRequest, type AdminSessionList, type AdminSessionListQuery, type AdminSessionView } from '@keyserver/api-contract';
import { AdminSessionRepository, DataAccessError, SubjectRepository, type AdminSession } from '@keyserver/data-access';
import type { Actor } from '../common/actor';
import { API_CONFIG } from '../app/tokens';
import { AdminSessionError, AdminSessionErrorCode } from './admin-session-error';
import { isUuid, validateBody } from './admin-request';
import { Audited, auditEvent } from '../common/audited';
import type { ApiConfig } from '../config/api-config';

/** Authorizing and closing take no body; anything sent is refused. */
const NoBody = z.strictObject({});

/** Administrative sessions: opened by one administrator, ACTIVE once ADMIN_SESSION_APPROVALS distinct administrators authorized. */
/** How far back and how many ended sessions `ended=recent` lists (the audit log keeps them all). */
const RECENT_ENDED_MS = 7 * 86_400_000;
const RECENT_ENDED_MAX = 20;

@Injectable()
export class AdminSessionsService {

  constructor(
    private readonly sessions: AdminSessionRepository,
    private readonly subjects: SubjectRepository,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    private readonly audited: Audited,
  ) {}

  async create(actor: Actor, body: unknown, requestId: string): Promise<AdminSessionView> {
    return this.audited.run(auditEvent('admin_session.create', actor, requestId), async (a) => {
      const dto = validateBody(CreateAdminSessionRequest, body);
      const { adminSessionApprovals, adminSessionMinutes } = this.config;
      const s = await this.sessions.open(
        {
          description: dto.description,
          creatorId: actor.subjectId,
          // The creator is the first of the ADMIN_SESSION_APPROVALS administrators.
          requiredApprovals: adminSessionApprovals - 1,
          expiresAt: new Date(Date.now() + adminSessionMinutes * 60_000),
          powers: dto.powers,
        },
        { ...a.event, details: { description: dto.description, powers: dto.powers, authorizationsRequired: adminSessionApprovals } },
      );
      a.committed();
      return this.view(s);
    });
  }

  async authorize(actor: Actor, id: string, body: unknown, requestId: string): Promise<AdminSessionView> {
    return this.audited.run(auditEvent('admin_session.authorize', actor, requestId, { adminSessionId: isUuid(id) ? id : null }), async (a) => {
      validateBody(NoBody, body);
      await this.sessions.expire();
      const existing = await this.find(id);
      // The creator already counts as one authorization.
      if (existing.creatorId === actor.subjectId) throw new AdminSessionError(AdminSessionErrorCode.AlreadyAuthorized, 'the creator already counts as one authorization');
      // The authorization, its event and (when it activates the session) admin_session.activated: one transaction.
      const r = await this.sessions.authorize(id, actor.subjectId, a.event).catch((err: unknown) => {
        throw this.translate(err);
      });
      a.committed();
      return this.view(r.session);
    });
  }

  async close(actor: Actor, id: string, body: unknown, requestId: string): Promise<AdminSessionView> {
    return this.audited.run(auditEvent('admin_session.close', actor, requestId, { adminSessionId: isUuid(id) ? id : null }), async (a) => {
      validateBody(NoBody, body);
      await this.sessions.expire();
      await this.find(id);
      const s = await this.sessions.close(id, a.event).catch((err: unknown) => {
        throw this.translate(err);
      });
      a.committed();
      return this.view(s);
    });
  }

  /** Open (PENDING or ACTIVE) sessions, newest first; with `ended=recent` then the ones ended in the last 7 days. */
  async list(q: AdminSessionListQuery = {}): Promise<AdminSessionList> {
    await this.sessions.expire();
    const now = new Date();
    const items = await this.sessions.listOpen(now);
    if (q.ended === 'recent') items.push(...(await this.sessions.listEnded(new Date(now.getTime() - RECENT_ENDED_MS), RECENT_ENDED_MAX)));
    return { items: await Promise.all(items.map((s) => this.view(s))) };
  }

  async get(id: string): Promise<AdminSessionView> {
    await this.sessions.expire();
    return this.view(await this.find(id));
  }

  private async find(id: string): Promise<AdminSession> {
    if (!isUuid(id)) throw new AdminSessionError(AdminSessionErrorCode.InvalidId, 'an administrative session id is a UUID');
    return this.sessions.get(id).catch((err: unknown) => {
      throw this.translate(err);
    });
  }

  private translate(err: unknown): unknown {
    if (!(err instanceof DataAccessError)) return err;
    if (err.code === 'not_found') return new AdminSessionError(AdminSessionErrorCode.AdminSessionNotFound, 'no such administrative session');
    if (err.code === 'already_approved') return new AdminSessionError(AdminSessionErrorCode.AlreadyAuthorized, 'this administrator already authorized the session');
    if (err.code === 'session_not_active' || err.code === 'invalid_state') return new AdminSessionError(AdminSessionErrorCode.AdminSessionNotActive, err.detail);
    return err;
  }

  private async view(s: AdminSession): Promise<AdminSessionView> {
    const ref = async (subjectId: string) => ({ subjectId, displayName: (await this.subjects.getById(subjectId).catch(() => null))?.displayName ?? subjectId });
    const expired = (s.state === 'PENDING' || s.state === 'ACTIVE') && s.expiresAt <= new Date();
    return {
      id: s.id,
      description: s.description,
      powers: s.powers,
      state: expired ? 'EXPIRED' : s.state,
      creator: await ref(s.creatorId),
      authorizationsRequired: s.requiredApprovals + 1,
      authorizedBy: await Promise.all([s.creatorId, ...s.approverIds.filter((a) => a !== s.creatorId)].map(ref)),
      expiresAt: s.expiresAt.toISOString(),
      createdAt: s.createdAt.toISOString(),
      activatedAt: s.activatedAt?.toISOString() ?? null,
      closedAt: s.closedAt?.toISOString() ?? null,
    };
  }
}
