import { KeyserverError } from '@keyserver/errors';
import { DATA_ACCESS_ERROR_STATUS, DataAccessError, DataAccessErrorCode } from './errors';

describe(DataAccessError.name, () => {
  it('maps every code to an HTTP status and is a KeyserverError', () => {
    for (const code of Object.values(DataAccessErrorCode)) {
      const e = new DataAccessError(code, 'detail');
      expect(e).toBeInstanceOf(KeyserverError);
      expect(e.status).toBe(DATA_ACCESS_ERROR_STATUS[code]);
      expect(e.code).toBe(code);
      expect(code).toMatch(/^[a-z]+(_[a-z]+)*$/);
    }
    expect(new DataAccessError('usage_exhausted').status).toBe(409);
    expect(new DataAccessError('not_found').status).toBe(404);
  });

  // draft-ietf-httpapi-idempotency-key-header section 2.7: a key reused with another payload is 422 (never retry it),
  // a key whose first request is still in flight is 409 (retry later).
  it.each([
    ['fail idempotency_key_reused is 422: a different request, retrying cannot help', 'idempotency_key_reused', 422],
    ['fail conflict is 409: the first request with the key is still in flight, retry', 'conflict', 409],
  ] as const)('%s', (_n, code, status) => {
    expect(new DataAccessError(code).status).toBe(status);
  });
});
