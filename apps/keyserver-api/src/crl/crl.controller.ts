import { Controller, Get, Header, Param, StreamableFile } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { Public } from '@keyserver/authz';
import { CrlService } from './crl.service';
import { HSM_ERROR_CODES, HsmError } from '@keyserver/pkcs11-signer';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { ApiProblems, problemSource } from '../app/openapi-problems';

@ApiTags('certificates')
@ApiProblems(problemSource(ApiError, [ApiErrorCode.KeyNotFound]), problemSource(HsmError, HSM_ERROR_CODES))
@Controller('api/v1/crl')
export class CrlController {
  constructor(private readonly service: CrlService) {}

  @Public()
  @ApiOperation({ summary: 'The CRL of a CA key (DER), as named in the CRL distribution point of its certificates' })
  @ApiOkResponse({ description: 'DER X.509 CRL', content: { 'application/pkix-crl': { schema: { type: 'string', format: 'binary' } } } })
  @Get(':keyid')
  @Header('cache-control', 'public, max-age=300')
  async get(@Param('keyid') keyid: string): Promise<StreamableFile> {
    return new StreamableFile(await this.service.get(keyid), { type: 'application/pkix-crl' });
  }
}
