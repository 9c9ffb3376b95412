import { Body, Controller, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiHeader, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  CreateRoleRequest,
  CreateSubjectRequest,
  RoleList,
  RoleView,
  SubjectList,
  SubjectView,
  UnknownPrincipalList,
  UpdateRoleRequest,
  UpdateSubjectRequest,
} from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema, RequestId } from '../common/request';
import { AdminSessionHeader } from '../admin-sessions/admin-request';
import { SubjectsService } from './subjects.service';
import { SubjectAdminError, SubjectAdminErrorCode } from './subject-admin-error';
import { ApiProblems, DATA_ACCESS_PROBLEMS, problemSource } from '../app/openapi-problems';

const SESSION_HEADER = { name: 'X-Admin-Session', required: true, description: 'Id of the ACTIVE administrative session this change is made in' };

@ApiTags('subjects and roles')
@ApiProblems(problemSource(SubjectAdminError, SubjectAdminErrorCode), DATA_ACCESS_PROBLEMS)
@Controller('api/v1')
export class SubjectsController {
  constructor(private readonly service: SubjectsService) {}

  @RequirePermission(Permission.SubjectsRead)
  @ApiOperation({ summary: 'Registered subjects with their roles, natures and per-key permissions' })
  @ApiOkResponse({ schema: jsonSchema(SubjectList) })
  @Get('subjects')
  list() {
    return this.service.list();
  }

  @RequirePermission(Permission.SubjectsRead)
  @ApiOperation({ summary: 'One subject' })
  @ApiOkResponse({ schema: jsonSchema(SubjectView) })
  @Get('subjects/:id')
  get(@Param('id') id: string) {
    return this.service.get(id);
  }

  @RequirePermission(Permission.SubjectsAdmin)
  @ApiOperation({ summary: 'Register a subject (USER or CLIENT bound to tid+oid) in an ACTIVE admin session' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(CreateSubjectRequest) })
  @ApiCreatedResponse({ schema: jsonSchema(SubjectView) })
  @Post('subjects')
  @HttpCode(201)
  create(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.create(actor, session, body, requestId);
  }

  @RequirePermission(Permission.SubjectsAdmin)
  @ApiOperation({ summary: 'Change a subject (name, roles) or disable it (enabled: false) in an ACTIVE admin session' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(UpdateSubjectRequest) })
  @ApiOkResponse({ schema: jsonSchema(SubjectView) })
  @Patch('subjects/:id')
  update(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('id') id: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.update(actor, session, id, body, requestId);
  }

  @RequirePermission(Permission.SubjectsRead)
  @ApiOperation({ summary: 'Principals with a valid token that are not registered subjects (register them with POST /api/v1/subjects)' })
  @ApiOkResponse({ schema: jsonSchema(UnknownPrincipalList) })
  @Get('unknown-principals')
  unknown() {
    return this.service.listUnknown();
  }

  @RequirePermission(Permission.RolesRead)
  @ApiOperation({ summary: 'Roles with their natures and per-key permissions' })
  @ApiOkResponse({ schema: jsonSchema(RoleList) })
  @Get('roles')
  roles() {
    return this.service.listRoles();
  }

  @RequirePermission(Permission.RolesAdmin)
  @ApiOperation({ summary: 'Create a role in an ACTIVE admin session' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(CreateRoleRequest) })
  @ApiCreatedResponse({ schema: jsonSchema(RoleView) })
  @Post('roles')
  @HttpCode(201)
  createRole(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.createRole(actor, session, body, requestId);
  }

  @RequirePermission(Permission.RolesAdmin)
  @ApiOperation({ summary: 'Change a role (natures, description, per-key permissions) in an ACTIVE admin session' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(UpdateRoleRequest) })
  @ApiOkResponse({ schema: jsonSchema(RoleView) })
  @Patch('roles/:name')
  updateRole(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('name') name: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.updateRole(actor, session, name, body, requestId);
  }
}
