import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { AdminSessionList, AdminSessionListQuery, AdminSessionView, CreateAdminSessionRequest } from '@keyserver/api-contract';
import { ZodBody } from '../common/zod-body';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema, RequestId } from '../common/request';
import { AdminSessionsService } from './admin-sessions.service';
import { AdminSessionError, AdminSessionErrorCode } from './admin-session-error';
import { ApiProblems, DATA_ACCESS_PROBLEMS, problemSource } from '../app/openapi-problems';

@ApiTags('admin sessions')
@ApiProblems(problemSource(AdminSessionError, AdminSessionErrorCode), DATA_ACCESS_PROBLEMS)
@Controller('api/v1/admin-sessions')
export class AdminSessionsController {
  constructor(private readonly service: AdminSessionsService) {}

  @RequirePermission(Permission.AdminSessionsManage)
  @ApiOperation({ summary: 'Open an administrative session (PENDING; the creator counts as one authorization)' })
  @ApiBody({ schema: jsonSchema(CreateAdminSessionRequest) })
  @ApiCreatedResponse({ schema: jsonSchema(AdminSessionView) })
  @Post()
  @HttpCode(201)
  create(@Caller() actor: Actor, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.create(actor, body, requestId);
  }

  @RequirePermission(Permission.AdminSessionsManage)
  @ApiOperation({ summary: 'Open (PENDING or ACTIVE) administrative sessions, newest first; with ended=recent also those ended in the last 7 days' })
  @ApiQuery({ name: 'ended', required: false, enum: ['recent'] })
  @ApiOkResponse({ schema: jsonSchema(AdminSessionList) })
  @Get()
  list(@Query(new ZodBody(AdminSessionListQuery)) q: AdminSessionListQuery) {
    return this.service.list(q);
  }

  @RequirePermission(Permission.AdminSessionsManage)
  @ApiOperation({ summary: 'One administrative session' })
  @ApiOkResponse({ schema: jsonSchema(AdminSessionView) })
  @Get(':id')
  get(@Param('id') id: string) {
    return this.service.get(id);
  }

  @RequirePermission(Permission.AdminSessionsManage)
  @ApiOperation({ summary: 'Authorize a session as another administrator (ACTIVE once ADMIN_SESSION_APPROVALS distinct administrators did)' })
  @ApiOkResponse({ schema: jsonSchema(AdminSessionView) })
  @Post(':id/authorizations')
  @HttpCode(200)
  authorize(@Caller() actor: Actor, @Param('id') id: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.authorize(actor, id, body, requestId);
  }

  @RequirePermission(Permission.AdminSessionsManage)
  @ApiOperation({ summary: 'Close a PENDING or ACTIVE session' })
  @ApiOkResponse({ schema: jsonSchema(AdminSessionView) })
  @Post(':id/closure')
  @HttpCode(200)
  close(@Caller() actor: Actor, @Param('id') id: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.close(actor, id, body, requestId);
  }
}
