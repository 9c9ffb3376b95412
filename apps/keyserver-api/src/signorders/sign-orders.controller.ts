import { Body, Controller, Headers, HttpCode, Post } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiHeader, ApiOperation, ApiTags } from '@nestjs/swagger';
import { SignOrderRequest, SignOrderResponse } from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema, RequestId } from '../common/request';
import { ZodBody } from '../common/zod-body';
import { SignOrderService } from './sign-order.service';
import { HSM_ERROR_CODES, HsmError } from '@keyserver/pkcs11-signer';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { ApiProblems, DATA_ACCESS_PROBLEMS, problemSource } from '../app/openapi-problems';
import { PkiError } from '@keyserver/pki';

/** The PKI refusals a sign order can meet (its input against its key). */
const SIGN_ORDER_PKI_CODES = ['digest_length_mismatch', 'malformed_digestinfo', 'digestinfo_hash_mismatch', 'padding_not_supported_for_key', 'signature_format_not_supported_for_key', 'message_required', 'message_not_supported_for_key', 'message_too_large'] as const;

@ApiTags('sign orders')
@ApiProblems(problemSource(ApiError, [ApiErrorCode.KeyNotFound, ApiErrorCode.KeyNotUsable, ApiErrorCode.KeyNotPermitted, ApiErrorCode.OperationNotFound, ApiErrorCode.IdempotencyKeyInvalid]), problemSource(PkiError, SIGN_ORDER_PKI_CODES), problemSource(HsmError, HSM_ERROR_CODES), DATA_ACCESS_PROBLEMS)
@Controller()
export class SignOrdersController {
  constructor(private readonly service: SignOrderService) {}

  @RequirePermission(Permission.SignOrdersCreate)
  @ApiOperation({
    summary: 'Sign a digest (RSA, ECDSA) or a message (Ed25519) with an FW key under an operation (uses one usage)',
    description:
      'A digest order sends inputdata/inputformat/inputpadding/signatureformat; a message order (Ed25519 keys only, PureEdDSA) sends message, base64, at most 64 KiB decoded. When the operation declares digests, a message order needs the SHA-256 of the message among them.',
  })
  @ApiHeader({ name: 'Idempotency-Key', required: false, description: 'A retry with the same key returns the same result without using another usage' })
  @ApiBody({ schema: jsonSchema(SignOrderRequest) })
  @ApiCreatedResponse({ schema: jsonSchema(SignOrderResponse) })
  @Post('api/signorders')
  @HttpCode(201)
  create(
    @Caller() actor: Actor,
    @Body(new ZodBody(SignOrderRequest)) dto: SignOrderRequest,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @RequestId() requestId: string,
  ) {
    return this.service.create(actor, dto, idempotencyKey, requestId);
  }
}
