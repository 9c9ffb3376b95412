import type { Readable } from 'node:stream';
import { Controller, Get, Header, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { AuditPage, AuditVerification } from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema, RequestId } from '../common/request';
import { AuditService } from './audit.service';
import { ApiProblems, DATA_ACCESS_PROBLEMS } from '../app/openapi-problems';

@ApiTags('audit')
@ApiProblems(DATA_ACCESS_PROBLEMS)
@Controller('api/v1/audit')
export class AuditController {
  constructor(private readonly service: AuditService) {}

  @RequirePermission(Permission.AuditRead)
  @ApiOperation({ summary: 'Audit entries newest first; filters action, outcome, actor (oid), keyid, operationId, adminSessionId, from, to; cursor pagination' })
  @ApiOkResponse({ schema: jsonSchema(AuditPage) })
  @Get()
  list(@Caller() actor: Actor, @Query() query: unknown, @RequestId() requestId: string) {
    return this.service.list(actor, query, requestId);
  }

  @RequirePermission(Permission.AuditRead)
  @ApiOperation({ summary: 'Recompute the hash chain; lists every entry that does not verify (link_broken: rows deleted, inserted or reordered; content_changed: edited) and the v1 entries verified under the old rule' })
  @ApiOkResponse({ schema: jsonSchema(AuditVerification) })
  @Get('verify')
  verify(@Caller() actor: Actor, @RequestId() requestId: string) {
    return this.service.verify(actor, requestId);
  }

  @RequirePermission(Permission.AuditRead)
  @ApiOperation({ summary: 'The whole audit log oldest first as JSON lines, then its signed checkpoints, streamed from the chain as it stood when the export began (verify offline: keyserver-api audit-verify FILE); a response cut short has no final chunk' })
  @ApiProduces('application/x-ndjson')
  @Header('content-type', 'application/x-ndjson; charset=utf-8')
  @Get('export')
  export(@Caller() actor: Actor, @RequestId() requestId: string): Promise<Readable> {
    return this.service.export(actor, requestId);
  }
}
