import { BadRequestException, NotFoundException, PayloadTooLargeException, UnauthorizedException } from '@nestjs/common';
import { TokenError, EntraMetadataError } from '@keyserver/entra-token';
import { KeyserverError } from '@keyserver/errors';
import { AuthzError } from './authz-error';
import { INVALID_TOKEN_PROBLEM, renderProblem } from '@keyserver/http-problems';

describe(renderProblem.name, () => {
  it('renders every 401 with the same body and the Bearer challenge', () => {
    const a = renderProblem(new TokenError('token_expired', 'exp 123'));
    const b = renderProblem(new UnauthorizedException('who are you'));
    expect(a).toEqual(b);
    expect(a.body).toEqual(INVALID_TOKEN_PROBLEM);
    expect(a.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
  });
  it('renders a KeyserverError with its code and safe detail', () => {
    const r = renderProblem(new AuthzError('permission_denied', 'needs keys:read'));
    expect(r).toMatchObject({ status: 403, body: { code: 'permission_denied', detail: 'needs keys:read', status: 403 } });
  });
  it('drops the detail of a 5xx KeyserverError', () => {
    const r = renderProblem(new EntraMetadataError('jwks_unreachable', 'GET https://internal/keys failed'));
    expect(r.status).toBe(503);
    expect(r.body.detail).toBeUndefined();
  });
  it('renders Nest exceptions with stable codes', () => {
    expect(renderProblem(new NotFoundException()).body.code).toBe('not_found');
    expect(renderProblem(new PayloadTooLargeException()).body.code).toBe('payload_too_large');
    expect(renderProblem(new BadRequestException(['keyid must be a string'])).body).toMatchObject({ code: 'bad_request', errors: ['keyid must be a string'] });
  });
  it('renders a raw body-parser error', () => {
    const e = Object.assign(new Error('request entity too large'), { type: 'entity.too.large', status: 413, expose: true });
    expect(renderProblem(e)).toMatchObject({ status: 413, body: { code: 'payload_too_large' } });
  });
  it('renders a client error of a parser that has no type (a corrupt gzip stream) as its 4xx, not a 500', () => {
    const e = Object.assign(new Error('incorrect header check'), { status: 400, statusCode: 400, expose: true });
    expect(renderProblem(e)).toMatchObject({ status: 400, body: { code: 'bad_request' } });
  });
  it('sends Retry-After with a 429 that says how long to wait', () => {
    class Limited extends KeyserverError<'rate_limited'> {
      readonly status = 429;
      retryAfterSeconds = 7.2;
    }
    expect(renderProblem(new Limited('rate_limited'))).toMatchObject({ status: 429, body: { code: 'rate_limited' }, headers: { 'retry-after': '8' } });
  });
  it('renders anything else as a detail-free 500', () => {
    const r = renderProblem(new Error('db password is hunter2'));
    expect(r.status).toBe(500);
    expect(JSON.stringify(r.body)).not.toContain('hunter2');
    expect(r.body.code).toBe('internal_error');
  });
});
