import { Controller, Get, Header, Param, StreamableFile } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { Public } from '@keyserver/authz';
import { CrlService } from './crl.service';
import { HSM_ERROR_CODES, HsmError } from '@keyserver/pkcs11-signer';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { ApiProblems, problemSource } from '../app/openapi-problems';
import { CrlError, CrlErrorCode } from './crl-error';

const DER = { description: 'DER X.509 CRL', content: { 'application/pkix-crl': { schema: { type: 'string', format: 'binary' } } } };

@ApiTags('certificates')
@ApiProblems(problemSource(ApiError, [ApiErrorCode.KeyNotFound]), problemSource(CrlError, CrlErrorCode), problemSource(HsmError, HSM_ERROR_CODES))
@Controller('api/v1/crl')
export class CrlController {
  constructor(private readonly service: CrlService) {}

  @Public()
  @ApiOperation({ summary: "The CRL of a CA key's current version (DER), as named in certificates issued before CRLs per version" })
  @ApiOkResponse(DER)
  @Get(':keyid')
  @Header('cache-control', 'public, max-age=300')
  async get(@Param('keyid') keyid: string): Promise<StreamableFile> {
    return new StreamableFile(await this.service.current(keyid), { type: 'application/pkix-crl' });
  }

  @Public()
  @ApiOperation({ summary: 'The CRL of one version of a CA key (DER), signed by that version\'s key pair: the CRL distribution point of the certificates it signed' })
  @ApiParam({ name: 'version', description: 'The key version, 1 to 999999', schema: { type: 'string', pattern: '^[1-9][0-9]{0,5}$' } })
  @ApiOkResponse(DER)
  @Get(':keyid/versions/:version')
  @Header('cache-control', 'public, max-age=300')
  async getVersion(@Param('keyid') keyid: string, @Param('version') version: string): Promise<StreamableFile> {
    return new StreamableFile(await this.service.ofVersion(keyid, version), { type: 'application/pkix-crl' });
  }
}
