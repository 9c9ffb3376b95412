import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiHeader, ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { CreateOperationRequest, EmptyRequest, OperationListQuery, OperationPage, OperationView, RejectOperationRequest } from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema, RequestId } from '../common/request';
import { ZodBody } from '../common/zod-body';
import { OperationsService } from './operations.service';
import { OperationError, OperationErrorCode } from './operation-error';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { ApiProblems, DATA_ACCESS_PROBLEMS, problemSource } from '../app/openapi-problems';

@ApiTags('operations')
@ApiProblems(problemSource(OperationError, OperationErrorCode), problemSource(ApiError, [ApiErrorCode.OperationNotFound, ApiErrorCode.KeyNotFound, ApiErrorCode.KeyNotPermitted]), DATA_ACCESS_PROBLEMS)
@Controller('api/v1/operations')
export class OperationsController {
  constructor(private readonly service: OperationsService) {}

  @RequirePermission(Permission.OperationsCreate)
  @ApiOperation({ summary: 'Order the use of keys N times inside a validity window' })
  @ApiBody({ schema: jsonSchema(CreateOperationRequest) })
  @ApiCreatedResponse({ schema: jsonSchema(OperationView) })
  @ApiHeader({ name: 'Idempotency-Key', required: false, description: 'A retry with the same key and body returns the first answer without creating a second operation' })
  @ApiProblems(problemSource(ApiError, [ApiErrorCode.IdempotencyKeyInvalid]))
  @Post()
  @HttpCode(201)
  create(
    @Caller() actor: Actor,
    @Body(new ZodBody(CreateOperationRequest)) dto: CreateOperationRequest,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @RequestId() requestId: string,
  ) {
    return this.service.create(actor, dto, requestId, idempotencyKey);
  }

  @RequirePermission(Permission.OperationsRead)
  @ApiOperation({ summary: 'Operations I may see, newest first (filters: state, key, mine, awaiting=me; cursor pagination)' })
  @ApiQuery({ name: 'state', required: false })
  @ApiQuery({ name: 'key', required: false })
  @ApiQuery({ name: 'mine', required: false, enum: ['true', 'false'] })
  @ApiQuery({ name: 'awaiting', required: false, enum: ['me'] })
  @ApiQuery({ name: 'cursor', required: false })
  @ApiQuery({ name: 'limit', required: false })
  @ApiOkResponse({ schema: jsonSchema(OperationPage) })
  @Get()
  list(@Caller() actor: Actor, @Query(new ZodBody(OperationListQuery)) q: OperationListQuery) {
    return this.service.list(actor, q);
  }

  @RequirePermission(Permission.OperationsRead)
  @ApiOperation({ summary: 'One operation with its keys, usages and approvals' })
  @ApiOkResponse({ schema: jsonSchema(OperationView) })
  @Get(':id')
  get(@Caller() actor: Actor, @Param('id') id: string) {
    return this.service.get(actor, id);
  }

  @RequirePermission(Permission.OperationsApprove)
  @ApiOperation({ summary: 'Approve every key of the operation I approve (once per approver and key; never my own operation)' })
  @ApiCreatedResponse({ schema: jsonSchema(OperationView) })
  @Post(':id/approvals')
  @HttpCode(201)
  approve(@Caller() actor: Actor, @Param('id') id: string, @Body(new ZodBody(EmptyRequest)) _none: EmptyRequest, @RequestId() requestId: string) {
    return this.service.approve(actor, id, requestId);
  }

  @RequirePermission(Permission.OperationsApprove)
  @ApiOperation({ summary: 'Reject a REQUESTED operation (an approver of its keys)' })
  @ApiBody({ schema: jsonSchema(RejectOperationRequest) })
  @ApiOkResponse({ schema: jsonSchema(OperationView) })
  @Post(':id/rejection')
  @HttpCode(200)
  reject(@Caller() actor: Actor, @Param('id') id: string, @Body(new ZodBody(RejectOperationRequest)) dto: RejectOperationRequest, @RequestId() requestId: string) {
    return this.service.reject(actor, id, dto, requestId);
  }

  @RequirePermission(Permission.OperationsRead)
  @ApiOperation({ summary: 'Cancel an open operation (its orderer or an administrator)' })
  @ApiOkResponse({ schema: jsonSchema(OperationView) })
  @Post(':id/cancellation')
  @HttpCode(200)
  cancel(@Caller() actor: Actor, @Param('id') id: string, @Body(new ZodBody(EmptyRequest)) _none: EmptyRequest, @RequestId() requestId: string) {
    return this.service.cancel(actor, id, requestId);
  }
}
