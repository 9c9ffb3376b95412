import { createHash } from 'node:crypto';
import { Controller, Get, Param, Req, Res } from '@nestjs/common';
import { ApiHeader, ApiOkResponse, ApiOperation, ApiParam, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Public } from '@keyserver/authz';
import type { StoredCrl } from '@keyserver/data-access';
import { CrlService } from './crl.service';
import { HSM_ERROR_CODES, HsmError } from '@keyserver/pkcs11-signer';
import { ApiError, ApiErrorCode } from '../common/api-error';
import { ApiProblems, problemSource } from '../app/openapi-problems';
import { CrlError, CrlErrorCode } from './crl-error';

/** Longest a cache may keep a CRL without asking again (never past its nextUpdate). */
export const CRL_MAX_AGE_S = 300;

const CACHING = {
  etag: { description: 'Strong: the base64url SHA-256 of the DER, quoted', schema: { type: 'string' } },
  'last-modified': { description: "The CRL's thisUpdate", schema: { type: 'string' } },
  'cache-control': { description: `public, max-age up to ${CRL_MAX_AGE_S} s and never past the CRL's nextUpdate`, schema: { type: 'string' } },
};
const DER = { description: 'DER X.509 CRL', headers: CACHING, content: { 'application/pkix-crl': { schema: { type: 'string', format: 'binary' } } } };
const NOT_MODIFIED = { status: 304, description: 'If-None-Match names its ETag (or *), or, without If-None-Match, If-Modified-Since is not before its thisUpdate', headers: CACHING };

/** IMF-fixdate (RFC 9110 5.6.7), the one HTTP-date form we read; any other If-Modified-Since is ignored. */
const IMF_FIXDATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/;

/**
 * RFC 9110 13.2.2 for a GET: If-None-Match decides when present (weak comparison, `*` matches), else
 * If-Modified-Since when it is a valid date not before thisUpdate (whole seconds, as Last-Modified says it).
 */
function notModified(req: FastifyRequest, etag: string, thisUpdate: Date): boolean {
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) {
    const tags = String(inm).split(',').map((t) => t.trim());
    return tags.some((t) => t === '*' || t.replace(/^W\//, '') === etag);
  }
  const ims = req.headers['if-modified-since'];
  if (typeof ims !== 'string' || !IMF_FIXDATE.test(ims)) return false;
  const since = Date.parse(ims);
  return Number.isFinite(since) && Math.floor(thisUpdate.getTime() / 1000) * 1000 <= since;
}

/**
 * A CRL with honest caching headers: a strong ETag of its bytes, Last-Modified its thisUpdate, a max-age that ends
 * by its nextUpdate; 304 without a body when the caller holds it already (docs/adr/0029 addendum of session 25).
 */
function sendCrl(req: FastifyRequest, reply: FastifyReply, crl: StoredCrl, now = Date.now()): void {
  const etag = `"${createHash('sha256').update(crl.der).digest('base64url')}"`;
  const left = Math.floor((crl.nextUpdate.getTime() - now) / 1000);
  reply.header('etag', etag).header('last-modified', crl.thisUpdate.toUTCString()).header('cache-control', `public, max-age=${Math.max(0, Math.min(CRL_MAX_AGE_S, left))}`);
  if (notModified(req, etag, crl.thisUpdate)) {
    reply.code(304).send();
    return;
  }
  reply.code(200).type('application/pkix-crl').send(crl.der);
}

@ApiTags('certificates')
@ApiProblems(problemSource(ApiError, [ApiErrorCode.KeyNotFound]), problemSource(CrlError, CrlErrorCode), problemSource(HsmError, HSM_ERROR_CODES))
@ApiHeader({ name: 'if-none-match', required: false, description: 'ETags held (or *): 304 when one is the CRL\'s' })
@ApiHeader({ name: 'if-modified-since', required: false, description: 'IMF-fixdate; ignored when If-None-Match is sent: 304 when not before the CRL\'s thisUpdate' })
@Controller('api/v1/crl')
export class CrlController {
  constructor(private readonly service: CrlService) {}

  @Public()
  @ApiOperation({ summary: "The CRL of a CA key's current version (DER), as named in certificates issued before CRLs per version" })
  @ApiOkResponse(DER)
  @ApiResponse(NOT_MODIFIED)
  @Get(':keyid')
  async get(@Param('keyid') keyid: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    sendCrl(req, reply, await this.service.currentCrl(keyid));
  }

  @Public()
  @ApiOperation({ summary: 'The CRL of one version of a CA key (DER), signed by that version\'s key pair: the CRL distribution point of the certificates it signed' })
  @ApiParam({ name: 'version', description: 'The key version, 1 to 999999', schema: { type: 'string', pattern: '^[1-9][0-9]{0,5}$' } })
  @ApiOkResponse(DER)
  @ApiResponse(NOT_MODIFIED)
  @Get(':keyid/versions/:version')
  async getVersion(@Param('keyid') keyid: string, @Param('version') version: string, @Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    sendCrl(req, reply, await this.service.versionCrl(keyid, version));
  }
}
