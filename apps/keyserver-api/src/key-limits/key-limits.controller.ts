import { Body, Controller, Param, Put } from '@nestjs/common';
import { ApiBody, ApiHeader, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { KeyDetail, SetKeyLimitsRequest } from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema, RequestId } from '../common/request';
import { AdminSessionHeader } from '../admin-sessions/admin-request';
import { KeyLimitsService } from './key-limits.service';
import { KeyAdminError, KeyAdminErrorCode } from '../key-admin/key-admin-error';
import { ApiProblems, DATA_ACCESS_PROBLEMS, problemSource } from '../app/openapi-problems';

const SESSION_HEADER = { name: 'X-Admin-Session', required: true, description: 'Id of the ACTIVE administrative session this change is made in' };

@ApiTags('key administration')
@ApiProblems(problemSource(KeyAdminError, KeyAdminErrorCode), DATA_ACCESS_PROBLEMS)
@Controller('api/v1/keys')
export class KeyLimitsController {
  constructor(private readonly service: KeyLimitsService) {}

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({ summary: 'Set the limits every operation on the key must stay within: window, usages, back-dating, start lead (ACTIVE admin session)' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(SetKeyLimitsRequest) })
  @ApiOkResponse({ schema: jsonSchema(KeyDetail) })
  @Put(':keyid/limits')
  set(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('keyid') keyid: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.set(actor, session, keyid, body, requestId);
  }
}
