import { Body, Controller, HttpCode, Param, Patch, Post } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiHeader, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CreateKeyRequest, KeyDetail, KeyRevocationResult, RevokeKeyRequest, UpdateKeyRequest } from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema, RequestId } from '../common/request';
import { AdminSessionHeader } from '../admin-sessions/admin-request';
import { KeyAdminService } from './key-admin.service';
import { KeyAdminError, KeyAdminErrorCode } from './key-admin-error';
import { PKI_ERROR_CODES, PkiError } from '@keyserver/pki';
import { HSM_ERROR_CODES, HsmError } from '@keyserver/pkcs11-signer';
import { ApiProblems, DATA_ACCESS_PROBLEMS, problemSource } from '../app/openapi-problems';

const SESSION_HEADER = { name: 'X-Admin-Session', required: true, description: 'Id of the ACTIVE administrative session this change is made in' };

@ApiTags('key administration')
@ApiProblems(problemSource(KeyAdminError, KeyAdminErrorCode), problemSource(PkiError, PKI_ERROR_CODES), problemSource(HsmError, HSM_ERROR_CODES), DATA_ACCESS_PROBLEMS)
@Controller('api/v1/keys')
export class KeyAdminController {
  constructor(private readonly service: KeyAdminService) {}

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({ summary: 'Create a CA, FW or TSA key in the HSM, certified by the ROOT (ACTIVE admin session)' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(CreateKeyRequest) })
  @ApiCreatedResponse({ schema: jsonSchema(KeyDetail) })
  @Post()
  @HttpCode(201)
  create(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.create(actor, session, body, requestId);
  }

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({ summary: 'Change the number of approvers a key needs (ACTIVE admin session)' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(UpdateKeyRequest) })
  @ApiOkResponse({ schema: jsonSchema(KeyDetail) })
  @Patch(':keyid')
  update(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('keyid') keyid: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.update(actor, session, keyid, body, requestId);
  }

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({ summary: 'Revoke a CA, FW or TSA key and every key below it (ACTIVE admin session)' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(RevokeKeyRequest) })
  @ApiOkResponse({ schema: jsonSchema(KeyRevocationResult) })
  @Post(':keyid/revocation')
  @HttpCode(200)
  revoke(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('keyid') keyid: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.revoke(actor, session, keyid, body, requestId);
  }
}
