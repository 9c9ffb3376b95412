import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBody, ApiCreatedResponse, ApiHeader, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  CancelPendingRequest,
  ExternalChainRequest,
  ImportCertificateRequest,
  KeyDetail,
  KeyVersionList,
  NewKeyVersionRequest,
  NoBodyRequest,
  PendingCancellation,
  PendingKeyView,
  RootCeremonyRequest,
  RootCeremonyResult,
} from '@keyserver/api-contract';
import { Permission, RequirePermission } from '@keyserver/authz';
import { HSM_ERROR_CODES, HsmError } from '@keyserver/pkcs11-signer';
import { PKI_ERROR_CODES, PkiError } from '@keyserver/pki';
import type { Actor } from '../common/actor';
import { Caller, jsonSchema, RequestId } from '../common/request';
import { AdminSessionHeader } from '../admin-sessions/admin-request';
import { AdminSessionError, AdminSessionErrorCode } from '../admin-sessions/admin-session-error';
import { ApiProblems, DATA_ACCESS_PROBLEMS, problemSource } from '../app/openapi-problems';
import { KeyAdminError, KeyAdminErrorCode } from './key-admin-error';
import { KeyLifecycleService } from './key-lifecycle.service';

const SESSION_HEADER = { name: 'X-Admin-Session', required: true, description: 'Id of the ACTIVE administrative session this change is made in' };

@ApiTags('key administration')
@ApiProblems(
  problemSource(KeyAdminError, KeyAdminErrorCode),
  problemSource(AdminSessionError, AdminSessionErrorCode),
  problemSource(PkiError, PKI_ERROR_CODES),
  problemSource(HsmError, HSM_ERROR_CODES),
  DATA_ACCESS_PROBLEMS,
)
@Controller('api/v1/keys')
export class KeyLifecycleController {
  constructor(private readonly service: KeyLifecycleService) {}

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({ summary: 'ROOT key ceremony: a ROOT key pair generated in the HSM, self-signed or with a CSR for an external root (ACTIVE session of two or more administrators)' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(RootCeremonyRequest) })
  @ApiCreatedResponse({ schema: jsonSchema(RootCeremonyResult) })
  @Post('root-ceremony')
  @HttpCode(201)
  rootCeremony(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.rootCeremony(actor, session, body, requestId);
  }

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({ summary: 'The CSR of a key waiting for its externally issued certificate' })
  @ApiOkResponse({ schema: jsonSchema(PendingKeyView) })
  @Get(':keyid/csr')
  csr(@Param('keyid') keyid: string) {
    return this.service.pending(keyid);
  }

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({ summary: 'Import the certificate an external root issued for a waiting key: verified (key, CA flags, chain to the root) before the key becomes ACTIVE' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(ImportCertificateRequest) })
  @ApiOkResponse({ schema: jsonSchema(KeyDetail) })
  @Post(':keyid/certificate')
  @HttpCode(200)
  importCertificate(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('keyid') keyid: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.importCertificate(actor, session, keyid, body, requestId);
  }

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({
    summary:
      "Replace an externally certified ROOT's external chain (the offline CA renewed, same key pair) and, when given, its certificate re-issued for the same key pair and subject (a new version): verified before it is stored (ACTIVE session of two or more administrators)",
  })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(ExternalChainRequest) })
  @ApiOkResponse({ schema: jsonSchema(KeyDetail) })
  @Post(':keyid/external-chain')
  @HttpCode(200)
  replaceExternalChain(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('keyid') keyid: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.replaceExternalChain(actor, session, keyid, body, requestId);
  }

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({
    summary: 'Cancel what waits for an external certificate (an external ceremony, or a pending rotation): its HSM key pair is destroyed (ACTIVE session of two or more administrators)',
  })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(CancelPendingRequest) })
  @ApiOkResponse({ schema: jsonSchema(PendingCancellation) })
  @Post(':keyid/csr/cancellation')
  @HttpCode(200)
  cancelPending(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('keyid') keyid: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.cancelPending(actor, session, keyid, body, requestId);
  }

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({ summary: 'Renew the certificate of an ACTIVE key: same key pair, new validity (a new version)' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(NewKeyVersionRequest) })
  @ApiOkResponse({ schema: jsonSchema(KeyDetail) })
  @Post(':keyid/renewal')
  @HttpCode(200)
  renew(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('keyid') keyid: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.renew(actor, session, keyid, body, requestId);
  }

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({ summary: 'Rotate an ACTIVE key: a new key pair in the HSM under the same keyid (a new version; older versions stay published)' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(NewKeyVersionRequest) })
  @ApiOkResponse({ schema: jsonSchema(KeyDetail) })
  @Post(':keyid/rotation')
  @HttpCode(200)
  rotate(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('keyid') keyid: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.rotate(actor, session, keyid, body, requestId);
  }

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({ summary: 'Retire an ACTIVE key: no new use; its certificates stay published' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(NoBodyRequest) })
  @ApiOkResponse({ schema: jsonSchema(KeyDetail) })
  @Post(':keyid/retirement')
  @HttpCode(200)
  retire(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('keyid') keyid: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.retire(actor, session, keyid, body, requestId);
  }

  @RequirePermission(Permission.KeysAdmin)
  @ApiOperation({ summary: 'Destroy a RETIRED or REVOKED key: every HSM object of every version is deleted' })
  @ApiHeader(SESSION_HEADER)
  @ApiBody({ schema: jsonSchema(NoBodyRequest) })
  @ApiOkResponse({ schema: jsonSchema(KeyDetail) })
  @Post(':keyid/destruction')
  @HttpCode(200)
  destroy(@Caller() actor: Actor, @AdminSessionHeader() session: string | undefined, @Param('keyid') keyid: string, @Body() body: unknown, @RequestId() requestId: string) {
    return this.service.destroy(actor, session, keyid, body, requestId);
  }

  @RequirePermission(Permission.KeysRead)
  @ApiOperation({ summary: 'Every version of a key with its certificate (verification material), oldest first' })
  @ApiOkResponse({ schema: jsonSchema(KeyVersionList) })
  @Get(':keyid/versions')
  versions(@Caller() actor: Actor, @Param('keyid') keyid: string) {
    return this.service.versions(actor, keyid);
  }
}
