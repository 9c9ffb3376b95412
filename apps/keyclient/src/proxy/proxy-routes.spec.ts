import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkRawPath, isProxyAllowed, PROXY_ROUTES, proxyRouteOf } from './proxy-routes';

describe(checkRawPath.name, () => {
  const cases: Array<[string, string, string | null]> = [
    ['ok plain path', '/api/v1/keys/abc', '/api/v1/keys/abc'],
    ['ok query kept apart', '/api/v1/audit?from=2026-01-01&page=2', '/api/v1/audit'],
    ['fail dot-dot segment', '/api/../admin', null],
    ['fail single dot segment', '/api/./v1/keys', null],
    ['fail encoded dot-dot slash', '/api/v1/keys/%2e%2e%2fsignorders', null],
    ['fail encoded dots upper case', '/api/%2E%2E/signorders', null],
    ['fail double-encoded slash', '/api/v1/keys/a%252fb', null],
    ['fail encoded slash', '/api/v1/keys/a%2fb', null],
    ['fail backslash', '/api/v1\\keys', null],
    ['fail encoded backslash', '/api/v1%5ckeys', null],
    ['fail matrix parameter', '/api/v1/keys;jsessionid=1', null],
    ['fail encoded semicolon', '/api/v1/keys%3bx', null],
    ['fail empty segment', '/api//v1/keys', null],
    ['fail NUL', '/api/v1/keys%00', null],
    ['fail broken escape', '/api/v1/keys/%zz', null],
    ['fail absolute-form target', 'http://evil/api/v1/keys', null],
    ['fail escapes that are not UTF-8', '/api/v1/keys/%ff%fe', null],
    ['fail a truncated UTF-8 sequence', '/api/%c3%28', null],
    ['fail an encoded surrogate', '/api/v1/keys/%ED%A0%80', null],
    ['fail an encoded control character', '/api/v1/keys/a%1fb', null],
    ['fail a raw # in the query (a URL parser further down cuts there)', '/api/v1/audit?x=1#/../signorders', null],
    ['ok quotes and brackets in the query (forwarded as they are)', `/api/v1/audit?q="<>'`, '/api/v1/audit'],
    ['ok escaped UTF-8', '/api/v1/keys/caf%C3%A9', '/api/v1/keys/caf%C3%A9'],
  ];
  it.each(cases)('%s', (_name, input, expected) => {
    expect(checkRawPath(input)).toBe(expected);
  });
});

describe(isProxyAllowed.name, () => {
  const cases: Array<[string, string, string, boolean]> = [
    ['ok list keys (legacy)', 'GET', '/api/keys', true],
    ['ok list keys', 'GET', '/api/v1/keys', true],
    ['ok read a key', 'GET', '/api/v1/keys/key-1', true],
    ['ok approve an operation', 'POST', '/api/v1/operations/op_1/approvals', true],
    ['ok reject an operation', 'POST', '/api/v1/operations/op_1/rejection', true],
    ['ok revoke a certificate', 'POST', '/api/v1/certificates/c1/revocation', true],
    ['ok read audit', 'GET', '/api/v1/audit', true],
    ['ok create a key inside an admin session', 'POST', '/api/v1/keys', true],
    ['ok change required approvers', 'PATCH', '/api/v1/keys/demo-fw-prod', true],
    ['ok revoke a key', 'POST', '/api/v1/keys/demo-fw-prod/revocation', true],
    ['ok close an admin session', 'POST', '/api/v1/admin-sessions/as-1/closure', true],
    ['ok patch a role', 'PATCH', '/api/v1/roles/fw-approvers', true],
    ['ok the ROOT key ceremony', 'POST', '/api/v1/keys/root-ceremony', true],
    ['ok the CSR of a key awaiting its certificate', 'GET', '/api/v1/keys/acme-root/csr', true],
    ['ok import the certificate an external root issued', 'POST', '/api/v1/keys/acme-root/certificate', true],
    ['fail a ceremony read', 'GET', '/api/v1/keys/root-ceremony/csr/x', false],
    ['fail replace a certificate', 'PUT', '/api/v1/keys/acme-root/certificate', false],
    ['fail a CSR upload', 'POST', '/api/v1/keys/acme-root/csr', false],
    ['ok the cancellation of a key awaiting its certificate', 'POST', '/api/v1/keys/acme-root/csr/cancellation', true],
    ['fail a read of the cancellation', 'GET', '/api/v1/keys/acme-root/csr/cancellation', false],
    ['ok install the renewed external chain of an imported ROOT', 'POST', '/api/v1/keys/acme-root/external-chain', true],
    ['fail a read of the external chain', 'GET', '/api/v1/keys/acme-root/external-chain', false],
    ['fail the external chain with an extra segment', 'POST', '/api/v1/keys/acme-root/external-chain/x', false],
    ['fail API docs', 'GET', '/api/docs', false],
    ['fail issue a certificate', 'POST', '/api/v1/certificates', false],
    ['fail sign order (legacy)', 'POST', '/api/signorders', false],
    ['fail sign order v1', 'POST', '/api/v1/signorders', false],
    ['fail firmware signing', 'POST', '/api/v1/firmware/signatures', false],
    ['fail wrong method on allowed path', 'DELETE', '/api/v1/keys/key-1', false],
    ['fail extra segment', 'GET', '/api/v1/keys/key-1/private', false],
    ['fail id segment of dots', 'GET', '/api/v1/keys/..', false],
    ['fail unknown route', 'GET', '/api/v1/hsm/slots', false],
  ];
  it.each(cases)('%s', (_name, method, path, expected) => {
    expect(isProxyAllowed(method, path)).toBe(expected);
  });
});

describe('PROXY_ROUTES against the API', () => {
  const openapi = JSON.parse(readFileSync(join(__dirname, '../../../../docs/openapi.json'), 'utf8')) as { paths: Record<string, Record<string, unknown>> };
  const apiRoutes = Object.entries(openapi.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((m) => [m.toUpperCase(), path.replace(/\{[^}]+\}/g, ':id')] as const),
  );

  it.each(PROXY_ROUTES.map(([m, p]) => [`${m} ${p}`, m, p]))('ok %s is a route of the API', (_name, method, pattern) => {
    expect(apiRoutes).toContainEqual([method, pattern]);
  });

  it('fail no static API route hides behind an :id of the list (the API would route it elsewhere)', () => {
    // A concrete path of each API route, its parameters filled with an id: the list must name that very route or none.
    const hidden = apiRoutes.filter(([m, p]) => {
      const matched = proxyRouteOf(m, p.replace(/:id/g, 'k1'));
      return matched !== undefined && matched !== p;
    });
    expect(hidden).toEqual([]);
  });
});
