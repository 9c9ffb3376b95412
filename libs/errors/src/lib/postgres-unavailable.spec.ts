import { isPostgresUnavailable, isUnavailableSqlState } from './postgres-unavailable';

describe(isPostgresUnavailable.name, () => {
  it.each([
    ['ok connection refused', { code: 'ECONNREFUSED' }, true],
    ['ok DNS not answering', { code: 'EAI_AGAIN' }, true],
    ['ok connection exception (08006)', { code: '08006' }, true],
    ['ok administrator shutdown (57P01)', { code: '57P01' }, true],
    ['ok crash shutdown (57P02)', { code: '57P02' }, true],
    ['ok read-only transaction (25006)', { code: '25006' }, true],
    ['ok statement_timeout (57014)', { code: '57014' }, true],
    ['ok lock_timeout (55P03)', { code: '55P03' }, true],
    ['ok too many connections (53300)', { code: '53300' }, true],
    ['ok pool connect timeout', new Error('timeout exceeded when trying to connect'), true],
    ['ok client read timeout', new Error('Query read timeout'), true],
    ['ok connection cut', new Error('Connection terminated unexpectedly'), true],
    ['ok administrator command', new Error('terminating connection due to administrator command'), true],
    ['ok read-write guard', new Error('the database server is read-only (not the primary)'), true],
    ['ok every address refused (AggregateError)', new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]), true],
    ['ok wrapped in a cause', new Error('outer', { cause: { code: '08001' } }), true],
    ['fail serialization failure (40001)', { code: '40001' }, false],
    ['fail unique violation (23505)', { code: '23505' }, false],
    ['fail permission denied (42501)', { code: '42501' }, false],
    ['fail plain error', new Error('boom'), false],
    ['fail not an object', 'ECONNREFUSED', false],
    ['fail null', null, false],
  ] as const)('%s', (_name, err, expected) => {
    expect(isPostgresUnavailable(err)).toBe(expected);
  });

  it('stops at a cause chain deeper than five (a cycle never hangs)', () => {
    const a: { cause?: unknown } = {};
    a.cause = a;
    expect(isPostgresUnavailable(a)).toBe(false);
  });
});

describe(isUnavailableSqlState.name, () => {
  it.each([
    ['ok 08001', '08001', true],
    ['ok 57P03', '57P03', true],
    ['fail 57P04', '57P04', false],
    ['fail 23505', '23505', false],
  ])('%s', (_name, code, expected) => {
    expect(isUnavailableSqlState(code)).toBe(expected);
  });
});
