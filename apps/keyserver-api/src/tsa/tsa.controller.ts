import { Controller, Header, HttpCode, Post, Req, Res, StreamableFile } from '@nestjs/common';
import { ApiBody, ApiConsumes, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Public } from '@keyserver/authz';
import { HSM_ERROR_CODES, HsmError } from '@keyserver/pkcs11-signer';
import { RequestId, streamedRequest } from '../common/request';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { DataAccessError } from '@keyserver/data-access';
import { ApiProblems, problemSource } from '../app/openapi-problems';
import { TsaService } from './tsa.service';

@ApiTags('time-stamping')
@ApiProblems(problemSource(ApiError, [ApiErrorCode.UnsupportedMediaType]), problemSource(HsmError, HSM_ERROR_CODES), problemSource(DataAccessError, ['database_unavailable']))
@Controller('api/v1/tsa')
export class TsaController {
  constructor(private readonly service: TsaService) {}

  @Public()
  @ApiOperation({
    summary: 'RFC 3161 time-stamping: a TimeStampReq in, a TimeStampResp out (PKIStatus granted with a token signed by the TSA key, or rejection with a failure reason)',
  })
  @ApiConsumes('application/timestamp-query')
  @ApiBody({ schema: { type: 'string', format: 'binary', maxLength: 1024 } })
  @ApiOkResponse({ description: 'TimeStampResp, DER', content: { 'application/timestamp-reply': { schema: { type: 'string', format: 'binary' } } } })
  @Post()
  @HttpCode(200)
  @Header('cache-control', 'no-store')
  async stamp(@Req() req: FastifyRequest, @Res({ passthrough: true }) reply: FastifyReply, @RequestId() requestId: string): Promise<StreamableFile> {
    return new StreamableFile((await this.service.answer(streamedRequest(req, reply), requestId)).der, { type: 'application/timestamp-reply' });
  }
}
