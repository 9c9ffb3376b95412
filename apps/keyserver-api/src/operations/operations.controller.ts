import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CreateOperationRequest, OperationView } from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema, RequestId } from '../common/request';
import { ZodBody } from '../common/zod-body';
import { OperationsService } from './operations.service';

@ApiTags('operations')
@Controller('api/v1/operations')
export class OperationsController {
  constructor(private readonly service: OperationsService) {}

  @RequirePermission(Permission.OperationsCreate)
  @ApiOperation({ summary: 'Order the use of keys N times inside a validity window' })
  @ApiBody({ schema: jsonSchema(CreateOperationRequest) })
  @ApiCreatedResponse({ schema: jsonSchema(OperationView) })
  @Post()
  @HttpCode(201)
  create(@Caller() actor: Actor, @Body(new ZodBody(CreateOperationRequest)) dto: CreateOperationRequest, @RequestId() requestId: string) {
    return this.service.create(actor, dto, requestId);
  }

  @RequirePermission(Permission.OperationsRead)
  @ApiOperation({ summary: 'One operation with its keys, usages and approvals' })
  @ApiOkResponse({ schema: jsonSchema(OperationView) })
  @Get(':id')
  get(@Caller() actor: Actor, @Param('id') id: string) {
    return this.service.get(actor, id);
  }
}
