// The resolver records the account kind a token proves only when the cached snapshot shows another one (ADR 0040
// addendum): a unit of logic, the repository replaced by a counting fake (the write itself is proved on PostgreSQL by
// subject-account.repository.spec.ts and end to end by guest-accounts.spec.ts).
import type { SubjectRepository, SubjectWithAccess } from '@keyserver/data-access';
import type { Principal } from '@keyserver/entra-token';
import pino from 'pino';
import { addressKey, principalKey, type EdgeServices } from '../edge/edge';
import { AuditAuthEventSink, DbSubjectResolver } from './subject-resolver';

const ISSUED = 1_796_600_000;
const request = { method: 'GET', path: '/api/v1/me' };

function fakeSubjects(snapshot: Partial<SubjectWithAccess>, fail = false) {
  let current: SubjectWithAccess = {
    id: '0b0b0b0b-0000-4000-8000-000000000001',
    kind: 'USER',
    tid: 't',
    oid: 'o',
    displayName: 'Sam',
    username: null,
    enabled: true,
    createdAt: new Date(0),
    updatedAt: new Date(0),
    account: 'UNKNOWN',
    accountProvenAt: null,
    roles: [],
    natures: [],
    keyPermissions: {},
    ...snapshot,
  };
  const writes: [string, Date][] = [];
  const repo = {
    findAccess: async () => current,
    recordUnknownPrincipal: async () => undefined,
    recordAccount: async (_id: string, account: 'MEMBER' | 'GUEST', at: Date) => {
      writes.push([account, at]);
      await new Promise((r) => setTimeout(r, 5));
      if (fail) throw new Error('database unavailable');
      // As the access cache does after the write's NOTIFY: the next snapshot shows it.
      current = { ...current, account, accountProvenAt: at };
      return true;
    },
  };
  return { repo: repo as unknown as SubjectRepository, writes };
}

const principal = (p: Partial<Principal>): Principal => ({ kind: 'user', channel: 'bff', tid: 't', oid: 'o', sub: 's', azp: 'a', scopes: ['keyserver'], roles: [], expiresAt: ISSUED + 3600, issuedAt: ISSUED, ...p });
const resolver = (repo: SubjectRepository) => new DbSubjectResolver(repo, { refusals: { record: async () => undefined } } as unknown as EdgeServices, pino({ level: 'silent' }));

describe(DbSubjectResolver.name, () => {
  it('ok a hundred requests, twenty at once, of a guest never recorded: one write', async () => {
    const { repo, writes } = fakeSubjects({});
    const r = resolver(repo);
    for (let round = 0; round < 5; round++) await Promise.all(Array.from({ length: 20 }, () => r.resolve(principal({ account: 'guest' }), request)));
    expect(writes).toEqual([['GUEST', new Date(ISSUED * 1000)]]);
  });

  it.each<[string, Partial<SubjectWithAccess>, Partial<Principal>]>([
    ['ok the recorded kind: no write', { account: 'MEMBER', accountProvenAt: new Date(0) }, { account: 'member' }],
    ['ok a token without acct proves nothing: no write', { account: 'MEMBER', accountProvenAt: new Date(0) }, {}],
    ['ok an app token is never recorded', {}, { kind: 'app', channel: 'app', account: 'member' }],
    ['ok a CLIENT subject is never recorded', { kind: 'CLIENT' }, { account: 'member' }],
    ['fail a token older than the recorded proof changes nothing (no database round trip)', { account: 'MEMBER', accountProvenAt: new Date((ISSUED + 60) * 1000) }, { account: 'guest' }],
  ])('%s', async (_n, snapshot, p) => {
    const { repo, writes } = fakeSubjects(snapshot);
    for (let i = 0; i < 3; i++) await resolver(repo).resolve(principal(p), request);
    expect(writes).toEqual([]);
  });

  it('ok a write that fails does not fail the request; the next request tries again', async () => {
    const { repo, writes } = fakeSubjects({}, true);
    const r = resolver(repo);
    expect((await r.resolve(principal({ account: 'guest' }), request))?.subjectId).toBe('0b0b0b0b-0000-4000-8000-000000000001');
    await r.resolve(principal({ account: 'guest' }), request);
    expect(writes).toHaveLength(2);
  });
});

describe(AuditAuthEventSink.name, () => {
  it.each([
    ['fail two addresses of one IPv6 /64', '2001:db8:1:2::a', '2001:db8:1:2:ffff::b'],
    ['fail one IPv4 caller seen plain and IPv4-mapped', '203.0.113.7', '::ffff:203.0.113.7'],
  ])('%s: invalid tokens are one caller in the bounded audit (one aggregation key)', async (_n, first, second) => {
    const keys: string[] = [];
    const sink = new AuditAuthEventSink(pino({ level: 'silent' }), { refusals: { record: async (key: string) => void keys.push(key) } } as unknown as EdgeServices);
    for (const ip of [first, second]) await sink.authFailed({ status: 401, code: 'invalid_token', method: 'GET', path: '/api/v1/me', ip });
    expect(keys[0]).toBe(keys[1]);
  });

  it('ok two /64s are two callers', async () => {
    const keys: string[] = [];
    const sink = new AuditAuthEventSink(pino({ level: 'silent' }), { refusals: { record: async (key: string) => void keys.push(key) } } as unknown as EdgeServices);
    for (const ip of ['2001:db8:1:2::a', '2001:db8:1:3::a']) await sink.authFailed({ status: 401, code: 'invalid_token', method: 'GET', path: '/api/v1/me', ip });
    expect(keys[0]).not.toBe(keys[1]);
  });

  it.each([
    ['fail an invalid token is keyed by its address', { status: 401, code: 'invalid_token', method: 'GET', path: '/p', ip: '2001:db8:1:2::a' }, `auth.invalid_token|invalid_token|${addressKey('2001:db8:1:2::a')}`],
    [
      'fail a forbidden principal is keyed by its principal',
      { status: 403, code: 'insufficient_scope', method: 'GET', path: '/p', ip: '203.0.113.7', principal: { tid: 't', oid: 'o' } as Principal },
      `auth.forbidden|insufficient_scope|${principalKey('t', 'o')}`,
    ],
  ] as const)('%s: the edge caller key (one definition)', async (_n, event, key) => {
    const keys: string[] = [];
    const sink = new AuditAuthEventSink(pino({ level: 'silent' }), { refusals: { record: async (k: string) => void keys.push(k) } } as unknown as EdgeServices);
    await sink.authFailed(event);
    expect(keys).toEqual([key]);
  });
});

describe(`${DbSubjectResolver.name} (unknown principals)`, () => {
  it('fail an unknown principal is audited under its edge caller key', async () => {
    const keys: string[] = [];
    const repo = { findAccess: async () => null, recordUnknownPrincipal: async () => undefined } as unknown as SubjectRepository;
    const r = new DbSubjectResolver(repo, { refusals: { record: async (k: string) => void keys.push(k) } } as unknown as EdgeServices, pino({ level: 'silent' }));
    const principal = { kind: 'user', channel: 'bff', tid: 't', oid: 'o', sub: 's', azp: 'a', scopes: [], roles: [], expiresAt: 0 } as unknown as Principal;
    expect(await r.resolve(principal, request)).toBeNull();
    expect(keys).toEqual([`auth.unknown_subject|unknown_subject|${principalKey('t', 'o')}`]);
  });
});
