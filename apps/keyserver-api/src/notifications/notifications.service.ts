import { Injectable } from '@nestjs/common';
import { SetNotificationAddressRequest, UpdateNotificationSettingsRequest, type NotificationSettingsView } from '@keyserver/api-contract';
import { DataAccessError, NotificationRepository, type NotificationSettings } from '@keyserver/data-access';
import type { Actor } from '../common/actor';
import { Audited, auditEvent } from '../common/audited';
import { isUuid, validateBody } from '../admin-sessions/admin-request';
import { AdminSessionGate, auditableSessionId } from '../admin-sessions/admin-session-gate';
import { NotificationError, NotificationErrorCode } from './notification-error';

/**
 * Notification settings: each subject opts in or out per channel for itself; the address is kept by administrators
 * in an ACTIVE admin session, so nobody can point the Keyserver's mail at an address of their choosing.
 */
@Injectable()
export class NotificationsService {
  constructor(
    private readonly notifications: NotificationRepository,
    private readonly gate: AdminSessionGate,
    private readonly audited: Audited,
  ) {}

  async mine(actor: Actor): Promise<NotificationSettingsView> {
    return view(await this.notifications.settings(actor.subjectId));
  }

  updateMine(actor: Actor, body: unknown, requestId: string): Promise<NotificationSettingsView> {
    return this.audited.run(auditEvent('notification.settings_update', actor, requestId, { details: { subjectId: actor.subjectId } }), async (a) => {
      const dto = validateBody(UpdateNotificationSettingsRequest, body);
      const s = await this.notifications.setOptOuts(actor.subjectId, dto, a.event);
      a.committed();
      return view(s);
    });
  }

  setAddress(actor: Actor, sessionId: string | undefined, id: string, body: unknown, requestId: string): Promise<NotificationSettingsView> {
    return this.audited.run(
      auditEvent('notification.address_set', actor, requestId, { adminSessionId: auditableSessionId(sessionId) }),
      async (a) => {
        const session = await this.gate.require(actor, sessionId);
        const dto = validateBody(SetNotificationAddressRequest, body);
        if (!isUuid(id)) throw new NotificationError(NotificationErrorCode.SubjectNotFound, 'no such subject');
        const s = await this.notifications.setAddress(id, dto.email, { ...a.event, adminSessionId: session.id }, session).catch((err: unknown) => {
          throw err instanceof DataAccessError && err.code === 'not_found' ? new NotificationError(NotificationErrorCode.SubjectNotFound, 'no such subject') : err;
        });
        a.committed();
        return view(s);
      },
      { refusal: (e) => ({ ...e, details: { subjectId: isUuid(id) ? id : null } }) },
    );
  }
}

function view(s: NotificationSettings): NotificationSettingsView {
  return { email: s.email, emailEnabled: s.emailEnabled, webhookEnabled: s.webhookEnabled, updatedAt: s.updatedAt ? s.updatedAt.toISOString() : null };
}
