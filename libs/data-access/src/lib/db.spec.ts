import { createDb, isDatabaseUnavailable } from './db';
import { DataAccessError } from './errors';

describe(createDb.name, () => {
  it('answers database_unavailable (503) when PostgreSQL cannot be reached, for queries and transactions', async () => {
    const db = createDb('postgresql://postgres@127.0.0.1:1/nowhere', { poolSize: 1 });
    try {
      const query = db.prisma.subject.findMany().catch((e: unknown) => e);
      const raw = db.prisma.$queryRaw`SELECT 1`.catch((e: unknown) => e);
      const tx = db.transaction(async (t) => t.subject.count()).catch((e: unknown) => e);
      for (const err of await Promise.all([query, raw, tx])) {
        expect(err).toBeInstanceOf(DataAccessError);
        expect((err as DataAccessError).code).toBe('database_unavailable');
        expect((err as DataAccessError).status).toBe(503);
      }
    } finally {
      await db.close();
    }
  });
});

describe(isDatabaseUnavailable.name, () => {
  it.each([
    ['ok refused socket', { code: 'ECONNREFUSED' }, true],
    ['ok admin shutdown SQLSTATE', { code: 'P2010', meta: { driverAdapterError: { cause: { originalCode: '57P01' } } } }, true],
    ['ok adapter cause kind', { cause: { kind: 'DatabaseNotReachable' } }, true],
    ['fail unique violation', { code: 'P2002' }, false],
    ['fail plain error', new Error('boom'), false],
  ])('%s', (_name, err, expected) => {
    expect(isDatabaseUnavailable(err)).toBe(expected);
  });
});
