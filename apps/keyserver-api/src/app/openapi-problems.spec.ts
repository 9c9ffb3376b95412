import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HSM_ERROR_CODES, HsmError } from '@keyserver/pkcs11-signer';
import { TOKEN_ERROR_CODES, TokenError } from '@keyserver/entra-token';
import { problemCodes, problemSource } from './openapi-problems';

const statuses = (m: Map<number, string[]>) => [...m.keys()];

describe(problemSource.name, () => {
  it('takes each status from the error class itself', () => {
    const s = problemSource(HsmError, HSM_ERROR_CODES);
    expect(s.codes).toEqual(HSM_ERROR_CODES.map((code) => ({ code, status: new HsmError(code).status })));
    expect(s.codes).toContainEqual({ code: 'hsm_unavailable', status: 503 });
  });
});

describe(problemCodes.name, () => {
  it('ok a public route without a body: no 401, no 403, no body codes', () => {
    const m = problemCodes({ isPublic: true, sources: [] }, false);
    // The edge answers any route: 408 for a slow sender, 415 for a Content-Encoding, 417 for an unmet Expect, 429 over the rate limit, 431 for oversize headers (ADR 0011).
    expect(statuses(m)).toEqual([400, 408, 415, 417, 429, 431, 500, 503]);
    expect(m.get(400)).toEqual(['invalid_input_encoding', 'malformed_request', 'validation_failed']);
    expect([m.get(408), m.get(415), m.get(417), m.get(429), m.get(431)]).toEqual([['request_timeout'], ['unsupported_content_encoding'], ['expectation_failed'], ['rate_limited'], ['header_too_large']]);
  });

  it('ok a secured route with a body: the one 401 body, the guard 403s, the body codes', () => {
    const m = problemCodes({ isPublic: false, sources: [] }, true);
    expect(statuses(m)).toEqual([400, 401, 403, 408, 413, 415, 417, 429, 431, 500, 503]);
    expect(m.get(400)).toEqual(expect.arrayContaining(['json_too_deep']));
    expect(m.get(401)).toEqual(['invalid_token']);
    expect(m.get(403)).toEqual(expect.arrayContaining(['permission_denied', 'unknown_subject', 'bff_token_not_allowed']));
    expect(m.get(413)).toEqual(expect.arrayContaining(['payload_too_large']));
    expect(m.get(415)).toEqual(expect.arrayContaining(['unsupported_media_type']));
    // Boot-time only: never a response.
    expect([...m.values()].flat()).not.toContain('route_authorization_misconfigured');
  });

  it.each([
    ['ok a path with parameters: the router\'s 404 not_found', true, ['not_found']],
    ['ok a path without parameters: no 404', false, undefined],
  ])('%s', (_n, hasPathParams, expected) => {
    expect(problemCodes({ isPublic: true, sources: [] }, false, hasPathParams).get(404)).toEqual(expected);
  });

  it('ok every token error a route declares is shown as the single invalid_token (the reason is logged only)', () => {
    const m = problemCodes({ isPublic: false, sources: [problemSource(TokenError, TOKEN_ERROR_CODES)] }, false);
    expect(m.get(401)).toEqual(['invalid_token']);
  });
});

describe('docs/openapi.json', () => {
  interface Op {
    security?: unknown[];
    parameters?: { name?: string; in?: string }[];
    responses: Record<string, { content?: Record<string, { schema: { allOf: [{ $ref: string }, { properties: { code: { enum: string[] } } }] } }> }>;
  }
  const doc = JSON.parse(readFileSync(join(__dirname, '../../../../docs/openapi.json'), 'utf8')) as { paths: Record<string, Record<string, Op>> };
  const ops = Object.entries(doc.paths).flatMap(([path, o]) => Object.entries(o).map(([method, op]) => ({ path, method, op })));

  it('documents for every operation at least one 4xx and every error status as problem+json with its codes', () => {
    for (const { path, method, op } of ops) {
      const errors = Object.entries(op.responses).filter(([s]) => Number(s) >= 400);
      expect({ path, method, has4xx: errors.some(([s]) => Number(s) < 500) }).toEqual({ path, method, has4xx: true });
      for (const [status, r] of errors) {
        const schema = r.content?.['application/problem+json']?.schema;
        expect({ path, method, status, ref: schema?.allOf[0].$ref }).toEqual({ path, method, status, ref: '#/components/schemas/Problem' });
        expect(schema?.allOf[1].properties.code.enum.length).toBeGreaterThan(0);
      }
    }
  });

  const codesOf = (op: Op, status: number) => op.responses[String(status)]?.content?.['application/problem+json']?.schema.allOf[1].properties.code.enum ?? [];

  it('documents the body parser\'s refusals on every POST, PUT, PATCH and DELETE, with or without a declared body', () => {
    const bodyOps = ops.filter((o) => ['post', 'put', 'patch', 'delete'].includes(o.method));
    expect(bodyOps.map((o) => `${o.method} ${o.path}`)).toContain('post /api/v1/operations/{id}/approvals');
    for (const { path, method, op } of bodyOps) {
      const shown = { path, method, 400: codesOf(op, 400).includes('invalid_json'), 413: codesOf(op, 413).includes('payload_too_large'), 415: codesOf(op, 415).includes('unsupported_media_type') };
      expect(shown).toEqual({ path, method, 400: true, 413: true, 415: true });
    }
  });

  it.each([
    ['ok a key administration route', 'post', '/api/v1/keys'],
    ['ok the key limits', 'put', '/api/v1/keys/{keyid}/limits'],
    ['ok a role change', 'patch', '/api/v1/roles/{name}'],
    ['ok a subject change', 'patch', '/api/v1/subjects/{id}'],
    ['ok a device profile', 'put', '/api/v1/keys/{keyid}/device-profile'],
  ])('%s takes X-Admin-Session: documents the four-eyes gate\'s 403 codes', (_n, method, path) => {
    expect(codesOf(doc.paths[path][method], 403)).toEqual(expect.arrayContaining(['admin_session_required', 'admin_session_not_participant']));
  });

  it.each([
    ['ok reading a key', 'get', '/api/v1/keys/{keyid}'],
    ['ok a sign order', 'post', '/api/signorders'],
  ])('%s takes no X-Admin-Session: no four-eyes code', (_n, method, path) => {
    expect(codesOf(doc.paths[path][method], 403)).not.toContain('admin_session_required');
  });

  it('documents idempotency_key_not_supported on every POST, PUT, PATCH and DELETE but the sign order, the certificate and the operation, which document their own key codes', () => {
    const honouring = new Set(['post /api/signorders', 'post /api/v1/certificates', 'post /api/v1/operations']);
    const bodyOps = ops.filter((o) => ['post', 'put', 'patch', 'delete'].includes(o.method));
    for (const { path, method, op } of bodyOps) {
      expect({ path, method, refused: codesOf(op, 400).includes('idempotency_key_not_supported') }).toEqual({ path, method, refused: !honouring.has(`${method} ${path}`) });
    }
    for (const path of ['/api/signorders', '/api/v1/certificates', '/api/v1/operations']) {
      const op = doc.paths[path]['post'];
      expect([path, op.parameters?.some((x) => x.in === 'header' && x.name === 'Idempotency-Key')]).toEqual([path, true]);
      expect([path, codesOf(op, 400).includes('idempotency_key_invalid'), codesOf(op, 422), codesOf(op, 409).includes('idempotency_key_reused'), codesOf(op, 409).includes('conflict')]).toEqual([
        path,
        true,
        ['idempotency_key_reused'],
        false,
        true,
      ]);
    }
  });

  it('documents 422 idempotency_key_reused on the three routes that honour Idempotency-Key only', () => {
    const with422 = ops.filter((o) => codesOf(o.op, 422).includes('idempotency_key_reused')).map((o) => `${o.method} ${o.path}`);
    expect(with422.sort()).toEqual(['post /api/signorders', 'post /api/v1/certificates', 'post /api/v1/operations']);
  });

  it('gives public routes no security requirement and the others a 401', () => {
    expect(doc.paths['/api/v1/crl/{keyid}']['get'].security).toEqual([]);
    expect(doc.paths['/api/v1/crl/{keyid}']['get'].responses['401']).toBeUndefined();
    for (const { path, method, op } of ops.filter((o) => o.op.security === undefined)) {
      expect({ path, method, has401: op.responses['401'] !== undefined }).toEqual({ path, method, has401: true });
    }
  });
});
