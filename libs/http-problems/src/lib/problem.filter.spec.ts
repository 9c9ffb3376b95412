import { errorClass } from '@keyserver/errors';
import { BODY_ERROR_CODES, INVALID_TOKEN_PROBLEM, renderProblem } from './problem.filter';

class TestError extends errorClass({ token_expired: 401, nope: 403, gone: 404, backend_down: 503 }) {}

describe(renderProblem.name, () => {
  it.each([
    ['ok a 401 is the one fixed body with the Bearer challenge', new TestError('token_expired', 'exp 123'), 401, INVALID_TOKEN_PROBLEM.code, undefined],
    ['ok a 4xx keeps its code and safe detail', new TestError('nope', 'needs keys:read'), 403, 'nope', 'needs keys:read'],
    ['ok a 5xx keeps its code and drops its detail', new TestError('backend_down', 'GET https://internal failed'), 503, 'backend_down', undefined],
    ['ok anything else is a detail-free 500', new Error('secret /etc/path'), 500, 'internal_error', undefined],
    ['ok a body-parser error keeps its status and gets a stable code', Object.assign(new Error('x'), { type: 'entity.too.large', status: 413 }), 413, BODY_ERROR_CODES['entity.too.large'], undefined],
  ])('%s', (_n, err, status, code, detail) => {
    const r = renderProblem(err);
    expect(r.status).toBe(status);
    expect(r.body.code).toBe(code);
    expect(r.body.detail).toBe(status === 401 ? INVALID_TOKEN_PROBLEM.detail : detail);
    if (status === 401) expect(r.headers['www-authenticate']).toBe('Bearer error="invalid_token"');
  });
});
