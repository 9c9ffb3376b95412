import { Controller, HttpCode, Post, Query, Req, Res, StreamableFile } from '@nestjs/common';
import { ApiBody, ApiConsumes, ApiCreatedResponse, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { FirmwareSignatureQuery } from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, RequestId, streamedRequest } from '../common/request';
import { ZodBody } from '../common/zod-body';
import { FirmwareService } from './firmware.service';
import { PKI_ERROR_CODES, PkiError, TsaError, TsaErrorCode } from '@keyserver/pki';
import { HSM_ERROR_CODES, HsmError } from '@keyserver/pkcs11-signer';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { ApiProblems, DATA_ACCESS_PROBLEMS, problemSource } from '../app/openapi-problems';

@ApiTags('sign orders')
@ApiProblems(problemSource(ApiError, [ApiErrorCode.KeyNotFound, ApiErrorCode.KeyNotUsable, ApiErrorCode.KeyNotPermitted, ApiErrorCode.OperationNotFound, ApiErrorCode.RequestAborted]), problemSource(PkiError, PKI_ERROR_CODES), problemSource(TsaError, [TsaErrorCode.TimestampUnavailable, TsaErrorCode.TimestampReplyInvalid, TsaErrorCode.TimestampTsaUntrusted, TsaErrorCode.TimestampTsaRevoked, TsaErrorCode.TimestampTsaCrlStale, TsaErrorCode.TimestampClockSkew]), problemSource(HsmError, HSM_ERROR_CODES), DATA_ACCESS_PROBLEMS)
@Controller('api/v1/firmware')
export class FirmwareController {
  constructor(private readonly service: FirmwareService) {}

  @RequirePermission(Permission.SignOrdersCreate)
  @ApiOperation({ summary: 'Sign a streamed firmware image with an FW key under an operation: detached CMS SignedData with an RFC 3161 signature timestamp when a TSA is configured (uses one usage)' })
  @ApiConsumes('application/octet-stream')
  @ApiQuery({ name: 'operationid', required: true })
  @ApiQuery({ name: 'keyid', required: true })
  @ApiQuery({ name: 'description', required: true })
  @ApiBody({ schema: { type: 'string', format: 'binary' } })
  @ApiCreatedResponse({ description: 'CMS SignedData, DER', content: { 'application/pkcs7-signature': { schema: { type: 'string', format: 'binary' } } } })
  @Post('signatures')
  @HttpCode(201)
  async sign(@Caller() actor: Actor, @Query(new ZodBody(FirmwareSignatureQuery)) q: FirmwareSignatureQuery, @Req() req: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply, @RequestId() requestId: string) {
    return new StreamableFile(await this.service.sign(actor, q, streamedRequest(req, reply), requestId), { type: 'application/pkcs7-signature' });
  }
}
