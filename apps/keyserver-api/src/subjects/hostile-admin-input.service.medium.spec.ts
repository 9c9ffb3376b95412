// Medium tier: the subject, role and session services with their real repositories on a real PostgreSQL, fed hostile
// bodies by fast-check. Whatever an administrator (or a stolen console session) sends: a stable 4xx code, one DENIED
// event, nothing written; or, when it is accepted, exactly the vocabulary stored, once per word.
import { randomBytes, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { KEY_GRANTS, NATURES, Permission } from '@keyserver/api-contract';
import type { Actor } from '@keyserver/authz';
import { KeyserverError } from '@keyserver/errors';
import { AdminSessionRepository, AuditRepository, KeyRepository, SubjectRepository } from '@keyserver/data-access';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { AdminSessionsService } from '../admin-sessions/admin-sessions.service';
import { Audited } from '../common/audited';
import { adminInSession, MEDIUM_TENANT, mediumConfig, mediumDatabase, seedKey } from '../testing/medium';
import { SubjectsService } from './subjects.service';

/** Words that look like a nature or a grant to a person and are not one: case, width, Cyrillic and Greek letters, spaces, controls. */
const lookAlikes = (words: readonly string[]): fc.Arbitrary<string> =>
  fc.oneof(
    fc.constantFrom(...words).map((w) => w.toLowerCase()),
    fc.constantFrom(...words).map((w) => w[0] + w.slice(1).toLowerCase()),
    fc.constantFrom(...words).map((w) => w.replace(/A/g, '\u0410').replace(/E/g, '\u0415').replace(/O/g, '\u041e')),
    fc.constantFrom(...words).map((w) => w.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0))),
    fc.constantFrom(...words).map((w) => ` ${w}`),
    fc.constantFrom(...words).map((w) => `${w}\u200b`),
    fc.constantFrom(...words).map((w) => `${w}\u0000`),
    fc.constantFrom(...words).map((w) => w.normalize('NFD') + '\u0301'),
    fc.constantFrom('SUPERUSER', 'ROOT', 'OWNER', '', '*', '__proto__', 'constructor'),
  );

/** Deep JSON: arrays and objects nested far beyond anything a body needs. */
const deep = fc.integer({ min: 50, max: 400 }).chain((depth) =>
  fc.constantFrom<(x: unknown) => unknown>((x) => [x], (x) => ({ a: x }), (x) => ({ natures: x })).map((wrap) => {
    let v: unknown = 'ADMINISTRATOR';
    for (let i = 0; i < depth; i++) v = wrap(v);
    return v;
  }),
);

/** A hostile list: look-alikes, duplicates of real words, huge arrays, non-strings, deep values. */
const hostileList = (words: readonly string[]): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.array(fc.oneof(lookAlikes(words), fc.constantFrom(...words)), { minLength: 1, maxLength: 8 }).filter((xs) => xs.some((x) => !words.includes(x))),
    fc.constantFrom(...words).map((w) => [w, w]),
    fc.integer({ min: 7, max: 20_000 }).map((n) => Array.from({ length: n }, (_v, i) => words[i % words.length])),
    fc.array(fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.object()), { minLength: 1, maxLength: 4 }),
    fc.string(),
    deep,
  );

describe('hostile administrative input (medium: real PostgreSQL, fast-check)', () => {
  const pg = mediumDatabase('ks_api_medium_hostile_admin');
  let subjects: SubjectRepository;
  let audit: AuditRepository;
  let service: SubjectsService;
  let sessionsService: AdminSessionsService;
  let admin: Actor;
  let session: string;
  let keyid: string;

  beforeAll(async () => {
    subjects = new SubjectRepository(pg.db);
    audit = new AuditRepository(pg.db);
    const sessions = new AdminSessionRepository(pg.db);
    service = new SubjectsService(subjects, new KeyRepository(pg.db), new AdminSessionGate(sessions), new Audited(audit));
    sessionsService = new AdminSessionsService(sessions, subjects, mediumConfig({ ADMIN_SESSION_APPROVALS: '2' }), new Audited(audit));
    ({ admin, session } = await adminInSession(pg.db, Permission.SubjectsAdmin));
    keyid = await seedKey(pg.db, { prefix: 'hostile' });
    await subjects.upsertRole('hostile-target', ['SIGNER'], 'unchanged');
  });

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;

  /** A refusal: a KeyserverError with a 4xx status and a snake_case code, and exactly one DENIED event of `action` with that code. */
  async function refused(p: Promise<unknown>, id: string, action: string): Promise<string> {
    const err = await p.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KeyserverError);
    const e = err as KeyserverError;
    expect([e.status >= 400 && e.status < 500, /^[a-z][a-z_]*$/.test(e.code)]).toEqual([true, true]);
    expect((await audit.list({ requestId: id })).items.map((x) => [x.action, x.outcome, x.errorCode])).toEqual([[action, 'DENIED', e.code]]);
    return e.code;
  }

  // One word once: a list that names a nature, a grant or a role twice is refused like a key named twice (`a key
  // appears twice`), rather than stored twice (natures) or silently folded (grants, roles) into something other than
  // what the approver of the change read.
  it.each<[string, () => [string, (id: string) => Promise<unknown>]]>([
    ['fail a new role naming a nature twice', () => ['role.create', (id) => service.createRole(admin, session, { name: `dup-${randomBytes(3).toString('hex')}`, natures: ['ADMINISTRATOR', 'ADMINISTRATOR'] }, id)]],
    ['fail a role change naming a nature twice', () => ['role.update', (id) => service.updateRole(admin, session, 'hostile-target', { natures: ['SIGNER', 'AUDITOR', 'SIGNER'] }, id)]],
    ['fail a new role naming a key grant twice', () => ['role.create', (id) => service.createRole(admin, session, { name: `dup-${randomBytes(3).toString('hex')}`, natures: [], keys: [{ keyid, permissions: ['SIGN', 'SIGN'] }] }, id)]],
    ['fail a role change naming a key grant twice', () => ['role.update', (id) => service.updateRole(admin, session, 'hostile-target', { keys: [{ keyid, permissions: ['ORDER', 'SIGN', 'ORDER'] }] }, id)]],
    ['fail a registration naming a role twice', () => ['subject.create', (id) => service.create(admin, session, { kind: 'USER', tid: MEDIUM_TENANT, oid: randomUUID(), displayName: 'dup', roles: ['hostile-target', 'hostile-target'] }, id)]],
  ])('%s: 400 validation_failed, audited DENIED, nothing written', async (_n, make) => {
    const [action, change] = make();
    const [roles, count] = [await subjects.listRoleGrants(), (await subjects.list()).length];
    const id = requestId();
    expect(await refused(change(id), id, action)).toBe('validation_failed');
    expect([await subjects.listRoleGrants(), (await subjects.list()).length]).toEqual([roles, count]);
  });

  it('fail a subject change naming a role twice: 400 validation_failed, audited DENIED, unchanged', async () => {
    const target = await service.create(admin, session, { kind: 'USER', tid: MEDIUM_TENANT, oid: randomUUID(), displayName: 'dup' }, requestId());
    const id = requestId();
    expect(await refused(service.update(admin, session, target.id, { roles: ['hostile-target', 'hostile-target'] }, id), id, 'subject.update')).toBe('validation_failed');
    expect(await service.get(target.id)).toEqual(target);
  });

  it('fail a role created with natures that do not exist, duplicates, huge or deep lists: 4xx, audited DENIED, no role', async () => {
    await fc.assert(
      fc.asyncProperty(hostileList(NATURES), async (natures) => {
        const name = `hostile-${randomBytes(4).toString('hex')}`;
        const id = requestId();
        await refused(service.createRole(admin, session, { name, natures }, id), id, 'role.create');
        expect((await subjects.listRoles()).some((r) => r.name.toLowerCase() === name)).toBe(false);
      }),
      { numRuns: 60 },
    );
  });

  it('fail a role given key grants that do not exist, duplicates, huge or deep lists: 4xx, audited DENIED, the role unchanged', async () => {
    const before = (await subjects.listRoleGrants()).find((r) => r.name === 'hostile-target');
    await fc.assert(
      fc.asyncProperty(fc.boolean(), hostileList(KEY_GRANTS), async (nat, list) => {
        const id = requestId();
        const body = nat ? { natures: list } : { keys: [{ keyid, permissions: list }] };
        await refused(service.updateRole(admin, session, 'hostile-target', body, id), id, 'role.update');
        expect((await subjects.listRoleGrants()).find((r) => r.name === 'hostile-target')).toEqual(before);
      }),
      { numRuns: 60 },
    );
  });

  it('fail a subject registered or changed with hostile roles, ids or fields: 4xx, audited DENIED, nothing written', async () => {
    const target = await service.create(admin, session, { kind: 'USER', tid: MEDIUM_TENANT, oid: randomUUID(), displayName: 'target' }, requestId());
    const hostileField = fc.oneof(fc.jsonValue({ maxDepth: 3 }), deep, fc.string({ minLength: 201, maxLength: 2000 }));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          hostileList(['hostile-target']).map((roles) => ({ roles })),
          fc.constantFrom('HOSTILE-TARGET', 'hostile-target\u200b', 'hostile\u2010target', ' hostile-target').map((r) => ({ roles: [r] })),
          hostileField.map((enabled) => ({ enabled })),
          hostileField.filter((v) => typeof v !== 'string' || v.length > 200 || v.trim() === '').map((displayName) => ({ displayName })),
          fc.record({ oid: fc.oneof(fc.string(), fc.constant(target.oid.replace(/-/g, '')), fc.constant(`{${target.oid}}`)) }),
        ),
        fc.boolean(),
        async (body, register) => {
          const id = requestId();
          const count = (await subjects.list()).length;
          if (register) {
            const full = { kind: 'USER', tid: MEDIUM_TENANT, oid: randomUUID(), displayName: 'x', ...body };
            await refused(service.create(admin, session, full, id), id, 'subject.create');
          } else {
            await refused(service.update(admin, session, target.id, body, id), id, 'subject.update');
          }
          expect((await subjects.list()).length).toBe(count);
          expect(await service.get(target.id)).toEqual(target);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('fail an administrative session opened with a hostile body: 4xx, audited DENIED, no session', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.record({ description: fc.oneof(fc.string({ maxLength: 7 }), fc.string({ minLength: 501, maxLength: 3000 }), deep, fc.integer()) }),
          fc.record({ description: fc.constant('a proper description'), powers: fc.oneof(fc.constantFrom('true', 1, 'yes', null), deep) }),
          fc.record({ description: fc.constant('a proper description'), requiredApprovals: fc.integer(), creatorId: fc.uuid() }),
          fc.jsonValue({ maxDepth: 4 }).filter((v) => typeof v !== 'object' || v === null || Array.isArray(v)),
        ),
        async (body) => {
          const id = requestId();
          const open = (await sessionsService.list()).items.length;
          await refused(sessionsService.create(admin, body, id), id, 'admin_session.create');
          expect((await sessionsService.list()).items.length).toBe(open);
        },
      ),
      { numRuns: 60 },
    );
  });
});
