import { Inject, Injectable } from '@nestjs/common';
import { SetNotificationAddressRequest, UpdateNotificationSettingsRequest, type NotificationSettingsView } from '@keyserver/api-contract';
import { AuditRepository, DataAccessError, NotificationRepository, type AuditInput, type NotificationSettings } from '@keyserver/data-access';
import { actorAudit, type Actor } from '../common/actor';
import { DEPS, type ApiDeps } from '../app/tokens';
import { errorCodeOf, isUuid, outcomeOf, validateBody } from '../admin-sessions/admin-request';
import { AdminSessionGate, auditableSessionId } from '../admin-sessions/admin-session-gate';
import { NotificationError, NotificationErrorCode } from './notification-error';

/**
 * Notification settings: each subject opts in or out per channel for itself; the address is kept by administrators
 * in an ACTIVE admin session, so nobody can point the Keyserver's mail at an address of their choosing.
 */
@Injectable()
export class NotificationsService {
  private readonly notifications: NotificationRepository;
  private readonly audit: AuditRepository;

  constructor(
    @Inject(DEPS) deps: ApiDeps,
    private readonly gate: AdminSessionGate,
  ) {
    this.notifications = new NotificationRepository(deps.db);
    this.audit = new AuditRepository(deps.db);
  }

  async mine(actor: Actor): Promise<NotificationSettingsView> {
    return view(await this.notifications.settings(actor.subjectId));
  }

  async updateMine(actor: Actor, body: unknown, requestId: string): Promise<NotificationSettingsView> {
    const audit: AuditInput = { ...actorAudit(actor), action: 'notification.settings_update', outcome: 'SUCCESS', requestId, details: {} };
    try {
      const dto = validateBody(UpdateNotificationSettingsRequest, body);
      return view(await this.notifications.setOptOuts(actor.subjectId, dto, audit));
    } catch (err) {
      await this.audit.append({ ...audit, outcome: outcomeOf(err), errorCode: errorCodeOf(err), details: { subjectId: actor.subjectId } });
      throw err;
    }
  }

  async setAddress(actor: Actor, sessionId: string | undefined, id: string, body: unknown, requestId: string): Promise<NotificationSettingsView> {
    const audit: AuditInput = { ...actorAudit(actor), action: 'notification.address_set', outcome: 'SUCCESS', requestId, adminSessionId: auditableSessionId(sessionId), details: {} };
    try {
      const session = await this.gate.require(actor, sessionId);
      const dto = validateBody(SetNotificationAddressRequest, body);
      if (!isUuid(id)) throw new NotificationError(NotificationErrorCode.SubjectNotFound, 'no such subject');
      const s = await this.notifications.setAddress(id, dto.email, { ...audit, adminSessionId: session.id }).catch((err: unknown) => {
        throw err instanceof DataAccessError && err.code === 'not_found' ? new NotificationError(NotificationErrorCode.SubjectNotFound, 'no such subject') : err;
      });
      return view(s);
    } catch (err) {
      await this.audit.append({ ...audit, outcome: outcomeOf(err), errorCode: errorCodeOf(err), details: { subjectId: isUuid(id) ? id : null } });
      throw err;
    }
  }
}

function view(s: NotificationSettings): NotificationSettingsView {
  return { email: s.email, emailEnabled: s.emailEnabled, webhookEnabled: s.webhookEnabled, updatedAt: s.updatedAt ? s.updatedAt.toISOString() : null };
}
