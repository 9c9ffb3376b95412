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
});
