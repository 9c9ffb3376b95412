import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import { ApiBody, ApiHeader, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { NotificationSettingsView, SetNotificationAddressRequest, UpdateNotificationSettingsRequest } from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema, RequestId } from '../common/request';
import { AdminSessionHeader } from '../admin-sessions/admin-request';
import { AdminSessionError, AdminSessionErrorCode } from '../admin-sessions/admin-session-error';
import { ApiProblems, DATA_ACCESS_PROBLEMS, problemSource } from '../app/openapi-problems';
import { NotificationError, NotificationErrorCode } from './notification-error';
import { NotificationsService } from './notifications.service';

const SESSION_HEADER = { name: 'X-Admin-Session', required: true, description: 'Id of the ACTIVE administrative session this change is made in' };

@ApiTags('notifications')
@ApiProblems(problemSource(NotificationError, NotificationErrorCode), DATA_ACCESS_PROBLEMS)
@Controller('api/v1')
export class NotificationsController {
  constructor(private readonly service: NotificationsService) {}

  @RequirePermission(Permission.NotificationsSelf)
  @ApiOperation({ summary: 'My notification settings: the address on file (set by administrators) and my opt-outs per channel' })
  @ApiOkResponse({ schema: jsonSchema(NotificationSettingsView) })
  @Get('me/notifications')
  mine(@Caller() actor: Actor) {
    return this.service.mine(actor);
  }

  @RequirePermission(Permission.NotificationsSelf)
  @ApiOperation({ summary: 'Opt in or out of email and webhook notifications (for myself only)' })
  @ApiBody({ schema: jsonSchema(UpdateNotificationSettingsRequest) })
  @ApiOkResponse({ schema: jsonSchema(NotificationSettingsView) })
  @Put('me/notifications')
  updateMine(@Caller() actor: Actor, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.updateMine(actor, body, requestId);
  }

  @RequirePermission(Permission.SubjectsAdmin)
  @ApiProblems(problemSource(AdminSessionError, [AdminSessionErrorCode.AdminSessionRequired, AdminSessionErrorCode.AdminSessionNotParticipant]))
  @ApiOperation({ summary: "Set or remove (null) a subject's notification email address, in an ACTIVE admin session" })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(SetNotificationAddressRequest) })
  @ApiOkResponse({ schema: jsonSchema(NotificationSettingsView) })
  @Put('subjects/:id/notification-address')
  setAddress(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('id') id: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.setAddress(actor, session, id, body, requestId);
  }
}
