import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiHeader, ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import {
  CertificateListQuery,
  CertificatePage,
  CertificateView,
  IssueCertificateRequest,
  IssueCertificateResponse,
  RevokeCertificateRequest,
} from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema, RequestId } from '../common/request';
import { ZodBody } from '../common/zod-body';
import { CertificatesService } from './certificates.service';
import { CertificateError, CertificateErrorCode } from './certificate-error';
import { PKI_ERROR_CODES, PkiError } from '@keyserver/pki';
import { HSM_ERROR_CODES, HsmError } from '@keyserver/pkcs11-signer';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { ApiProblems, DATA_ACCESS_PROBLEMS, problemSource } from '../app/openapi-problems';

@ApiTags('certificates')
@ApiProblems(problemSource(CertificateError, CertificateErrorCode), problemSource(ApiError, [ApiErrorCode.KeyNotFound, ApiErrorCode.KeyNotUsable, ApiErrorCode.KeyNotPermitted]), problemSource(PkiError, PKI_ERROR_CODES), problemSource(HsmError, HSM_ERROR_CODES), DATA_ACCESS_PROBLEMS)
@Controller('api/v1/certificates')
export class CertificatesController {
  constructor(private readonly service: CertificatesService) {}

  @RequirePermission(Permission.CertificatesIssue)
  @ApiOperation({ summary: 'Issue a device certificate from a CSR with a CA key under an operation (uses one usage)' })
  @ApiBody({ schema: jsonSchema(IssueCertificateRequest) })
  @ApiCreatedResponse({ schema: jsonSchema(IssueCertificateResponse) })
  @ApiHeader({ name: 'Idempotency-Key', required: false, description: 'A retry with the same key returns the same certificate without using another usage' })
  @ApiProblems(problemSource(ApiError, [ApiErrorCode.IdempotencyKeyInvalid]))
  @Post()
  @HttpCode(201)
  issue(
    @Caller() actor: Actor,
    @Body(new ZodBody(IssueCertificateRequest)) dto: IssueCertificateRequest,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @RequestId() requestId: string,
  ) {
    return this.service.issue(actor, dto, requestId, idempotencyKey);
  }

  @RequirePermission(Permission.OperationsRead)
  @ApiOperation({ summary: 'Search issued certificates by serial, subject and issuer (cursor pagination)' })
  @ApiQuery({ name: 'serial', required: false })
  @ApiQuery({ name: 'subject', required: false })
  @ApiQuery({ name: 'issuer', required: false })
  @ApiQuery({ name: 'cursor', required: false })
  @ApiQuery({ name: 'limit', required: false })
  @ApiOkResponse({ schema: jsonSchema(CertificatePage) })
  @Get()
  list(@Caller() actor: Actor, @Query(new ZodBody(CertificateListQuery)) q: CertificateListQuery) {
    return this.service.list(actor, q);
  }

  @RequirePermission(Permission.OperationsRead)
  @ApiOperation({ summary: 'Revoke a certificate (an administrator or an issuer of its CA); the CRL lists it' })
  @ApiBody({ schema: jsonSchema(RevokeCertificateRequest) })
  @ApiOkResponse({ schema: jsonSchema(CertificateView) })
  @Post(':id/revocation')
  @HttpCode(200)
  revoke(@Caller() actor: Actor, @Param('id') id: string, @Body(new ZodBody(RevokeCertificateRequest)) dto: RevokeCertificateRequest, @RequestId() requestId: string) {
    return this.service.revoke(actor, id, dto, requestId);
  }
}
