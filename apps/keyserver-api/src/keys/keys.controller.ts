import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { KeyDetail, KeyList, KeyListQuery, KeyState, KeyType, LegacyKeyList } from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema } from '../common/request';
import { ZodBody } from '../common/zod-body';
import { KeysService } from './keys.service';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { ApiProblems, problemSource } from '../app/openapi-problems';

@ApiTags('keys')
@ApiProblems(problemSource(ApiError, [ApiErrorCode.KeyNotFound]))
@Controller()
export class KeysController {
  constructor(private readonly service: KeysService) {}

  @RequirePermission(Permission.KeysRead)
  @ApiOperation({ summary: 'Keys the caller may use (legacy shape read by existing clients)' })
  @ApiOkResponse({ schema: jsonSchema(LegacyKeyList) })
  @Get('api/keys')
  list(@Caller() actor: Actor) {
    return this.service.listUsable(actor);
  }

  @RequirePermission(Permission.KeysRead)
  @ApiOperation({ summary: 'Keys the caller may see in every state, ROOT first, then CAs, then FW keys, then TSA keys (filters: state, type)' })
  @ApiQuery({ name: 'state', required: false, enum: KeyState.options })
  @ApiQuery({ name: 'type', required: false, enum: KeyType.options })
  @ApiOkResponse({ schema: jsonSchema(KeyList) })
  @Get('api/v1/keys')
  listV1(@Caller() actor: Actor, @Query(new ZodBody(KeyListQuery)) q: KeyListQuery) {
    return this.service.list(actor, q);
  }

  @RequirePermission(Permission.KeysRead)
  @ApiOperation({ summary: 'One key with its certificate chain' })
  @ApiOkResponse({ schema: jsonSchema(KeyDetail) })
  @Get('api/v1/keys/:keyid')
  detail(@Caller() actor: Actor, @Param('keyid') keyid: string) {
    return this.service.detail(actor, keyid);
  }
}
