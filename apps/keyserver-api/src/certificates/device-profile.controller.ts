import { Body, Controller, Get, Param, Put } from '@nestjs/common';
import { ApiBody, ApiHeader, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { DeviceProfile, DeviceProfileView } from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema, RequestId } from '../common/request';
import { AdminSessionHeader } from '../admin-sessions/admin-request';
import { DeviceProfileService } from './device-profile.service';
import { CertificateError, CertificateErrorCode } from './certificate-error';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { ApiProblems, DATA_ACCESS_PROBLEMS, problemSource } from '../app/openapi-problems';

const SESSION_HEADER = { name: 'X-Admin-Session', required: true, description: 'Id of the ACTIVE administrative session this change is made in' };

@ApiTags('key administration')
@ApiProblems(problemSource(CertificateError, [CertificateErrorCode.DeviceProfileInvalid, CertificateErrorCode.DeviceProfileNotApplicable]), problemSource(ApiError, [ApiErrorCode.KeyNotFound]), DATA_ACCESS_PROBLEMS)
@Controller('api/v1/keys/:keyid/device-profile')
export class DeviceProfileController {
  constructor(private readonly service: DeviceProfileService) {}

  @RequirePermission(Permission.KeysRead)
  @ApiOperation({ summary: "A CA key's device-certificate profile (whoever may see the key)" })
  @ApiOkResponse({ schema: jsonSchema(DeviceProfileView) })
  @Get()
  get(@Caller() actor: Actor, @Param('keyid') keyid: string) {
    return this.service.get(actor, keyid);
  }

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({ summary: "Replace a CA key's device-certificate profile (ACTIVE admin session)" })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(DeviceProfile) })
  @ApiOkResponse({ schema: jsonSchema(DeviceProfileView) })
  @Put()
  set(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('keyid') keyid: string, @RequestId() requestId: string, @Body() body: unknown) {
    return this.service.set(actor, session, keyid, body, requestId);
  }
}
