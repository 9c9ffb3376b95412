import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { MeView } from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema } from '../common/request';
import { MeService } from './me.service';

@ApiTags('me')
@Controller('api/v1/me')
export class MeController {
  constructor(private readonly service: MeService) {}

  @RequirePermission(Permission.SelfRead)
  @ApiOperation({ summary: 'Who the caller is: subject, natures, per-key permissions and the permissions the guard grants (never a token)' })
  @ApiOkResponse({ schema: jsonSchema(MeView) })
  @Get()
  me(@Caller() actor: Actor) {
    return this.service.me(actor);
  }
}
