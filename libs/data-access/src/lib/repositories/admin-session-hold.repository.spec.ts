import { Client } from 'pg';
import { sql } from '../../spec/temp-database';
import { hex, lockWaiters, outcome, proveAccount, seedAdmin, seedKey, twoReplicas } from '../../spec/fixtures';
import { AUDIT_APPEND_LOCK } from '../audit-hash';
import type { AdminSession, AuditInput } from '../types';
import { SubjectRepository } from './subject.repository';

// Two handles = two independent pools, like two API replicas.
const { tmp, a, b } = twoReplicas('sessionhold');

const audit = (action: string, adminSessionId: string | null = null): AuditInput => ({ action, outcome: 'SUCCESS', actorOid: 'admin-oid', requestId: hex(4), adminSessionId, details: {} });

const enabled = async (id: string) => (await a.subjects.getById(id)).enabled;
const eventCount = async () => (await a.audit.list({ limit: 1000 })).items.length;

/** An ACTIVE four-eyes session with powers opened by `creator` and authorized by `authorizer`, as the gate hands it to a change. */
async function activeSession(creator: string, authorizer: string, minutes = 60): Promise<AdminSession> {
  const s = await a.adminSessions.open({ description: `hold ${hex(2)}`, creatorId: creator, requiredApprovals: 1, expiresAt: new Date(Date.now() + minutes * 60_000), powers: true });
  const { session } = await a.adminSessions.authorize(s.id, authorizer);
  expect(session.state).toBe('ACTIVE');
  return session;
}

/** Each test starts from an installation without administrators and seeds its own. */
beforeEach(async () => {
  await sql(tmp.url, `UPDATE "subject" SET "enabled" = false`);
});

// The gate reads the session before the change's transaction starts (AdminSessionGate.require). A change must still
// commit only inside the session: ACTIVE, unexpired and with every administrator who opened or authorized it still an
// enabled member administrator when its transaction decides, or two changes of one session on two replicas can each
// undo the other's four eyes and both commit (ADR 0012 addendum "a change holds its session").
describe(`${SubjectRepository.name} holds the session a change runs in`, () => {
  it('fail two participants of one session disabling each other on two replicas at once: one change, the other refused', async () => {
    const [ada, bob] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const s = await activeSession(ada.id, bob.id);
    // Another appender holds the audit lock, so both changes have passed every check before either commits, unless
    // the second waits for the first and then sees its session ended (the fix).
    const holder = new Client({ connectionString: tmp.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK]);
      const one = outcome(a.subjects.update(bob.id, { enabled: false }, audit('subject.disable', s.id), s));
      await lockWaiters(tmp.url, 1);
      const two = outcome(b.subjects.update(ada.id, { enabled: false }, audit('subject.disable', s.id), s));
      await lockWaiters(tmp.url, 2);
      await holder.query('COMMIT');
      expect([await one, await two]).toEqual(['ok', 'session_not_active']);
    } finally {
      await holder.end();
    }
    expect([await enabled(ada.id), await enabled(bob.id)]).toEqual([true, false]);
    expect((await a.adminSessions.get(s.id)).state).toBe('CLOSED');
  });

  it.each<[string, (s: AdminSession, ids: { ada: string; bob: string; carol: string }) => Promise<unknown>]>([
    ['fail a change after the session was closed (the gate read it ACTIVE just before)', (s) => a.adminSessions.close(s.id)],
    ['fail a change after the session expired (the gate read it ACTIVE just before)', (s) => sql(tmp.url, `UPDATE "admin_session" SET "expiresAt" = now() - interval '1 millisecond' WHERE "id" = '${s.id}'`)],
    ['fail a change at the very millisecond the session expires', (s) => sql(tmp.url, `UPDATE "admin_session" SET "expiresAt" = now() WHERE "id" = '${s.id}'`)],
    ['fail a change by the creator after the authorizer was disabled in another session', (_s, { bob }) => b.subjects.update(bob, { enabled: false })],
    ['fail a change after the authorizer\'s token proved a guest account', (_s, { bob }) => proveAccount(b, bob, 'GUEST')],
    ['fail a change after the authorizer lost the administrator role', (_s, { bob }) => b.subjects.update(bob, { roles: [] })],
  ])('%s', async (_n, end) => {
    const [ada, bob, carol] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const s = await activeSession(ada.id, bob.id);
    const target = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'target' });
    const key = await seedKey(a);
    await end(s, { ada: ada.id, bob: bob.id, carol: carol.id });
    const events = await eventCount();
    const changes: [string, () => Promise<unknown>][] = [
      ['disable', () => a.subjects.update(target.id, { enabled: false }, audit('subject.disable', s.id), s)],
      ['rename', () => a.subjects.update(target.id, { displayName: 'renamed' }, audit('subject.update', s.id), s)],
      ['register', () => a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'new' }, audit('subject.create', s.id), s)],
      ['create a role', () => a.subjects.createRole({ name: `r-${hex(3)}`, natures: ['AUDITOR'] }, audit('role.create', s.id), s)],
      ['change a role', () => a.subjects.updateRole('fixture-administrators', { description: 'x', keys: [{ keyid: key.keyid, permissions: ['SIGN'] }] }, audit('role.update', s.id), s)],
    ];
    for (const [what, change] of changes) expect([what, await outcome(change())]).toEqual([what, 'session_not_active']);
    // Nothing written: the target unchanged, no role, no event.
    expect(await enabled(target.id)).toBe(true);
    expect((await a.subjects.getById(target.id)).displayName).toBe('target');
    expect((await a.subjects.listRoleGrants()).find((r) => r.name === 'fixture-administrators')?.keys).toEqual([]);
    expect(await eventCount()).toBe(events);
  });

  it('ok a change in an ACTIVE session, and changes without a session (bootstrap, fixtures) as before', async () => {
    const [ada, bob] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const s = await activeSession(ada.id, bob.id);
    const target = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'target' }, audit('subject.create', s.id), s);
    expect(await outcome(a.subjects.update(target.id, { displayName: 'renamed' }, audit('subject.update', s.id), s))).toBe('ok');
    expect(await outcome(a.subjects.createRole({ name: `r-${hex(3)}`, natures: ['AUDITOR'] }, audit('role.create', s.id), s))).toBe('ok');
    expect(await outcome(b.subjects.update(target.id, { displayName: 'again' }))).toBe('ok');
  });

  it('fail a participant\'s change racing another session that takes the administrator nature from his role', async () => {
    const [ada, bob, carol, dave, eve] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const own = `bob-admins-${hex(3)}`;
    await a.subjects.upsertRole(own, ['ADMINISTRATOR']);
    await a.subjects.update(bob.id, { roles: [own] });
    const s = await activeSession(ada.id, bob.id);
    const other = await activeSession(carol.id, dave.id);
    const holder = new Client({ connectionString: tmp.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK]);
      // Carol and Dave take ADMINISTRATOR from Bob's role; Bob, in his session with Ada, disables Eve at once.
      const one = outcome(a.subjects.updateRole(own, { natures: ['AUDITOR'] }, audit('role.update', other.id), other));
      await lockWaiters(tmp.url, 1);
      const two = outcome(b.subjects.update(eve.id, { enabled: false }, audit('subject.disable', s.id), s));
      await lockWaiters(tmp.url, 2);
      await holder.query('COMMIT');
      expect([await one, await two]).toEqual(['ok', 'session_not_active']);
    } finally {
      await holder.end();
    }
    expect(await enabled(eve.id)).toBe(true);
    expect((await a.adminSessions.get(s.id)).state).toBe('CLOSED');
  });

  it('never deadlocks: changes of two sessions disabling each other\'s participants on two replicas, one wins', async () => {
    const [ada, bob, carol, dave] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const s1 = await activeSession(ada.id, bob.id);
    const s2 = await activeSession(carol.id, dave.id);
    const results = await Promise.all([
      outcome(a.subjects.update(carol.id, { enabled: false }, audit('subject.disable', s1.id), s1)),
      outcome(b.subjects.update(ada.id, { enabled: false }, audit('subject.disable', s2.id), s2)),
    ]);
    expect(results.sort()).toEqual(['ok', 'session_not_active']);
  });

  it('ok one boundary for every reader, on a frozen clock: ACTIVE until the millisecond before expiresAt, not at it', async () => {
    const [ada, bob, carol] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const expiresAt = new Date('2031-03-01T12:00:00.000Z');
    const before = new Date(expiresAt.getTime() - 1);
    const s = await a.adminSessions.open({ description: 'boundary', creatorId: ada.id, requiredApprovals: 1, expiresAt, powers: false });
    // Authorizing at the instant of expiry is refused and marks it EXPIRED; a twin authorized a millisecond before is ACTIVE.
    expect(await outcome(a.adminSessions.authorize(s.id, bob.id, undefined, expiresAt))).toBe('session_not_active');
    expect((await a.adminSessions.get(s.id)).state).toBe('EXPIRED');
    const t = await a.adminSessions.open({ description: 'boundary twin', creatorId: ada.id, requiredApprovals: 1, expiresAt, powers: false });
    expect((await a.adminSessions.authorize(t.id, carol.id, undefined, before)).session.state).toBe('ACTIVE');
    expect([(await a.adminSessions.getActive(t.id, before))?.id, await a.adminSessions.getActive(t.id, expiresAt)]).toEqual([t.id, null]);
    expect((await a.adminSessions.listOpen(expiresAt)).some((x) => x.id === t.id)).toBe(false);
    await a.adminSessions.expire(before);
    expect((await a.adminSessions.get(t.id)).state).toBe('ACTIVE');
    await a.adminSessions.expire(expiresAt);
    expect((await a.adminSessions.get(t.id)).state).toBe('EXPIRED');
  });
});
