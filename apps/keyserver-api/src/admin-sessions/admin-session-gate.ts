import { Injectable } from '@nestjs/common';
import { AdminSessionRepository, type AdminSession } from '@keyserver/data-access';
import type { Actor } from '../common/actor';

import { AdminSessionError, AdminSessionErrorCode } from './admin-session-error';
import { isUuid } from './admin-request';

/**
 * The four-eyes rule of every administrative change: it names (X-Admin-Session) an ACTIVE, unexpired
 * session that the caller took part in (created or authorized).
 */
@Injectable()
export class AdminSessionGate {

  constructor(
    private readonly sessions: AdminSessionRepository,
  ) {}

  async require(actor: Actor, sessionId: string | undefined): Promise<AdminSession> {
    if (!sessionId) throw new AdminSessionError(AdminSessionErrorCode.AdminSessionRequired, 'this change needs an ACTIVE administrative session (header X-Admin-Session)');
    const s = isUuid(sessionId) ? await this.sessions.getActive(sessionId) : null;
    if (!s) throw new AdminSessionError(AdminSessionErrorCode.AdminSessionRequired, 'X-Admin-Session does not name an ACTIVE administrative session');
    if (s.creatorId !== actor.subjectId && !s.approverIds.includes(actor.subjectId)) {
      throw new AdminSessionError(AdminSessionErrorCode.AdminSessionNotParticipant, 'only the administrators who opened or authorized the session may act in it');
    }
    return s;
  }
}

/** The adminSessionId an audit entry may carry for a header value (only a well-formed id). */
export const auditableSessionId = (sessionId: string | undefined): string | null => (isUuid(sessionId) ? sessionId : null);
