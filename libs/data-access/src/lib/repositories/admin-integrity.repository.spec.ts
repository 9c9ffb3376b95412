import { sql } from '../../spec/temp-database';
import { hex, lockWaiters, outcome, proveAccount, seedAdmin, seedKey, twoReplicas } from '../../spec/fixtures';
import type { AuditInput } from '../types';
import { Client } from 'pg';
import { AUDIT_APPEND_LOCK } from '../audit-hash';
import { SubjectRepository } from './subject.repository';
import { AdminSessionRepository } from './admin-session.repository';
import { KeyRepository } from './key.repository';

// Two handles = two independent pools, like two API replicas.
const { tmp, a, b } = twoReplicas('admintegrity');

const audit = (action: string, adminSessionId: string | null = null): AuditInput => ({ action, outcome: 'SUCCESS', actorOid: 'admin-oid', requestId: hex(4), adminSessionId, details: {} });

const client = (roles: string[] = []) => a.subjects.create({ kind: 'CLIENT', tid: 'tenant-1', oid: hex(16), displayName: `ci-${hex(2)}`, roles });
const roleNatures = async (name: string) => (await a.subjects.listRoles()).find((r) => r.name === name)?.natures;

/** An ACTIVE two-administrator session opened by `creator` and authorized by `second`. */
async function activeSession(creator: string, second: string): Promise<string> {
  const s = await a.adminSessions.open({ description: 'work', creatorId: creator, requiredApprovals: 1, expiresAt: new Date(Date.now() + 600_000) });
  await a.adminSessions.authorize(s.id, second);
  return s.id;
}

describe(`${SubjectRepository.name} human-only natures`, () => {
  it.each([
    ['fail ADMINISTRATOR added to a role a CLIENT holds', ['SIGNER', 'ADMINISTRATOR']],
    ['fail APPROVER added to a role a CLIENT holds', ['APPROVER']],
  ] as const)('%s', async (_n, natures) => {
    const role = `ci-${hex(3)}`;
    await a.subjects.createRole({ name: role, natures: ['SIGNER'] });
    await client([role]);
    const before = (await a.audit.list({ action: 'role.update', limit: 500 })).items.length;
    expect(await outcome(a.subjects.updateRole(role, { natures: [...natures] }, audit('role.update')))).toBe('human_only_nature');
    expect(await roleNatures(role)).toEqual(['SIGNER']);
    expect((await a.audit.list({ action: 'role.update', limit: 500 })).items).toHaveLength(before);
  });

  it('ok human-only natures on a role only people hold, and other changes of a role a CLIENT holds', async () => {
    const role = `mixed-${hex(3)}`;
    await a.subjects.createRole({ name: role, natures: ['SIGNER'] });
    await seedAdmin(a);
    const c = await client([role]);
    expect((await a.subjects.updateRole(role, { natures: ['SIGNER', 'ORDERER'], description: 'ci' })).after.natures).toEqual(['ORDERER', 'SIGNER']);
    await a.subjects.update(c.id, { roles: [] });
    expect((await a.subjects.updateRole(role, { natures: ['ADMINISTRATOR'] })).after.natures).toEqual(['ADMINISTRATOR']);
  });

  it.each([
    ['fail a CLIENT created with an approver role', 'create'],
    ['fail a CLIENT given an approver role', 'update'],
  ] as const)('%s', async (_n, how) => {
    const role = `appr-${hex(3)}`;
    await a.subjects.createRole({ name: role, natures: ['APPROVER'] });
    if (how === 'create') {
      const oid = hex(16);
      expect(await outcome(a.subjects.create({ kind: 'CLIENT', tid: 'tenant-1', oid, displayName: 'ci', roles: [role] }))).toBe('human_only_nature');
      expect(await a.subjects.findByTidOid('tenant-1', oid)).toBeNull();
    } else {
      const c = await client();
      expect(await outcome(a.subjects.update(c.id, { roles: [role], displayName: 'renamed' }))).toBe('human_only_nature');
      expect(await a.subjects.getById(c.id)).toMatchObject({ displayName: c.displayName });
    }
  });

  it('never lets a CLIENT end up with a human-only nature when the role change and the assignment race', async () => {
    for (let i = 0; i < 8; i++) {
      const role = `race-${hex(3)}`;
      await a.subjects.createRole({ name: role, natures: ['SIGNER'] });
      const c = await client();
      const [promote, assign] = await Promise.all([
        outcome(a.subjects.updateRole(role, { natures: ['SIGNER', 'ADMINISTRATOR'] })),
        outcome(b.subjects.update(c.id, { roles: [role] })),
      ]);
      // Exactly one of them wins; the loser is refused with the stable code.
      expect([promote, assign].sort()).toEqual(['human_only_nature', 'ok']);
      const held = await a.subjects.findByTidOid('tenant-1', c.oid);
      expect(held?.natures.includes('ADMINISTRATOR')).toBe(false);
    }
  });
});

describe(`${AdminSessionRepository.name} ends sessions that lose an administrator`, () => {
  const stateOf = async (id: string) => (await a.adminSessions.get(id)).state;

  it.each([
    ['disabling the authorizer', 'disable-authorizer', 'participant_disabled'],
    ['disabling the creator', 'disable-creator', 'participant_disabled'],
    ['taking the administrator role from the authorizer', 'unrole-authorizer', 'participant_lost_administrator'],
    ['removing ADMINISTRATOR from the role the authorizer holds', 'role-nature', 'participant_lost_administrator'],
  ] as const)('ends the ACTIVE session when %s, with an audit event in the same transaction', async (_n, how, reason) => {
    const ada = await seedAdmin(a);
    const ivy = await seedAdmin(a);
    const session = await activeSession(ada.id, ivy.id);
    const other = await activeSession((await seedAdmin(a)).id, (await seedAdmin(a)).id);
    const cause = audit('subject.update', session);
    if (how === 'disable-authorizer') await a.subjects.update(ivy.id, { enabled: false }, cause);
    if (how === 'disable-creator') await a.subjects.update(ada.id, { enabled: false }, cause);
    if (how === 'unrole-authorizer') await a.subjects.update(ivy.id, { roles: [] }, cause);
    if (how === 'role-nature') {
      const role = `admins-${hex(3)}`;
      await a.subjects.createRole({ name: role, natures: ['ADMINISTRATOR'] });
      const ivy2 = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'ivy2', roles: [role] });
      const s2 = await activeSession(ada.id, ivy2.id);
      await a.subjects.updateRole(role, { natures: ['AUDITOR'] }, audit('role.update', session));
      expect(await stateOf(s2)).toBe('CLOSED');
      const [ended] = (await a.audit.list({ action: 'admin_session.ended', adminSessionId: s2, limit: 5 })).items;
      expect(ended).toMatchObject({ outcome: 'SUCCESS', actorOid: 'admin-oid', details: { reason, subjectId: ivy2.id, previousState: 'ACTIVE', cause: 'role.update', causeAdminSessionId: session } });
      // Ada and Ivy (the fixture role) are still administrators: their session runs on.
      expect(await stateOf(session)).toBe('ACTIVE');
      return;
    }
    expect(await stateOf(session)).toBe('CLOSED');
    expect(await a.adminSessions.getActive(session)).toBeNull();
    expect(await stateOf(other)).toBe('ACTIVE');
    const [ended] = (await a.audit.list({ action: 'admin_session.ended', adminSessionId: session, limit: 5 })).items;
    expect(ended).toMatchObject({ outcome: 'SUCCESS', adminSessionId: session, details: { reason, previousState: 'ACTIVE', cause: 'subject.update' } });
  });

  it('does not count a session ACTIVE once an administrator of it was disabled behind the repositories\' back', async () => {
    const ada = await seedAdmin(a);
    const ivy = await seedAdmin(a);
    const session = await activeSession(ada.id, ivy.id);
    expect((await a.adminSessions.getActive(session))?.id).toBe(session);
    await sql(tmp.url, `UPDATE "subject" SET "enabled" = false WHERE "id" = $1`, [ivy.id]);
    expect(await a.adminSessions.getActive(session)).toBeNull();
    await sql(tmp.url, `UPDATE "subject" SET "enabled" = true WHERE "id" = $1`, [ivy.id]);
    await sql(tmp.url, `DELETE FROM "subject_role" WHERE "subjectId" = $1`, [ada.id]);
    expect(await a.adminSessions.getActive(session)).toBeNull();
  });

  it('ends a PENDING session of a disabled creator, so it can never become ACTIVE', async () => {
    const ada = await seedAdmin(a);
    const ivy = await seedAdmin(a);
    const s = await a.adminSessions.open({ description: 'pending', creatorId: ada.id, requiredApprovals: 1, expiresAt: new Date(Date.now() + 600_000) });
    await a.subjects.update(ada.id, { enabled: false });
    expect(await stateOf(s.id)).toBe('CLOSED');
    expect(await outcome(a.adminSessions.authorize(s.id, ivy.id))).toBe('session_not_active');
  });

  it('keeps sessions when a change leaves the subject an administrator', async () => {
    const ada = await seedAdmin(a);
    const ivy = await seedAdmin(a);
    const session = await activeSession(ada.id, ivy.id);
    await a.subjects.update(ivy.id, { displayName: 'Ivy B.', roles: ['fixture-administrators'] });
    await a.subjects.update(ivy.id, { enabled: true });
    expect(await stateOf(session)).toBe('ACTIVE');
  });

  // Disabled, or recorded as a guest (ADR 0040 addendum 2026-12-13: a member token older than the proof): no session.
  const disable = (id: string) => a.subjects.update(id, { enabled: false });
  const guest = (id: string) => proveAccount(b, id, 'GUEST', new Date(Date.now() + 1000));
  it.each([
    ['fail opening by a disabled administrator', 'open', disable],
    ['fail authorizing by a disabled administrator', 'authorize', disable],
    ['fail opening by an administrator recorded as a guest', 'open', guest],
    ['fail authorizing by an administrator recorded as a guest', 'authorize', guest],
  ] as const)('%s: invalid_state', async (_n, how, lose) => {
    const ada = await seedAdmin(a);
    const ivy = await seedAdmin(a);
    await lose(ivy.id);
    if (how === 'open') {
      expect(await outcome(a.adminSessions.open({ description: 'x', creatorId: ivy.id, requiredApprovals: 1, expiresAt: new Date(Date.now() + 600_000) }))).toBe('invalid_state');
    } else {
      const s = await a.adminSessions.open({ description: 'x', creatorId: ada.id, requiredApprovals: 1, expiresAt: new Date(Date.now() + 600_000) });
      expect(await outcome(a.adminSessions.authorize(s.id, ivy.id))).toBe('invalid_state');
      expect(await stateOf(s.id)).toBe('PENDING');
    }
  });

  // ADR 0040 addendum (2026-12-13): a token proving that an administrator's account became a guest ends his sessions
  // in the transaction that records it, like a disable; an older member token of his can no longer authorize.
  it('ends the ACTIVE session when the authorizer\'s token proves a guest account, with an audit event in the same transaction', async () => {
    const ada = await seedAdmin(a);
    const ivy = await seedAdmin(a);
    const session = await activeSession(ada.id, ivy.id);
    const other = await activeSession((await seedAdmin(a)).id, (await seedAdmin(a)).id);
    expect(await b.subjects.recordAccount(ivy.id, 'GUEST', new Date(Date.now() + 1000), { action: 'subject.account', outcome: 'SUCCESS', actorSubjectId: ivy.id })).toBe(true);
    expect([await stateOf(session), await stateOf(other)]).toEqual(['CLOSED', 'ACTIVE']);
    const [ended] = (await a.audit.list({ action: 'admin_session.ended', adminSessionId: session, limit: 5 })).items;
    expect(ended).toMatchObject({ outcome: 'SUCCESS', actorSubjectId: ivy.id, details: { reason: 'participant_became_guest', subjectId: ivy.id, previousState: 'ACTIVE', cause: 'subject.account' } });
  });

  it('does not count a session ACTIVE once an administrator of it is recorded as a guest behind the repositories\' back', async () => {
    const session = await activeSession((await seedAdmin(a)).id, (await seedAdmin(a)).id);
    const [{ id: ivy }] = await sql<{ id: string }>(tmp.url, `SELECT "adminId"::text AS "id" FROM "admin_session_approval" WHERE "sessionId" = $1::uuid`, [session]);
    await sql(tmp.url, `UPDATE "subject" SET "account" = 'GUEST' WHERE "id" = $1::uuid`, [ivy]);
    expect(await a.adminSessions.getActive(session)).toBeNull();
  });

  it('never leaves an ACTIVE session authorized by a disabled administrator when the disable and the authorization race', async () => {
    for (let i = 0; i < 8; i++) {
      const ada = await seedAdmin(a);
      const ivy = await seedAdmin(a);
      const s = await a.adminSessions.open({ description: 'race', creatorId: ada.id, requiredApprovals: 1, expiresAt: new Date(Date.now() + 600_000) });
      await Promise.all([outcome(b.adminSessions.authorize(s.id, ivy.id)), outcome(a.subjects.update(ivy.id, { enabled: false }))]);
      const rows = await sql<{ state: string }>(tmp.url, `SELECT "state"::text AS "state" FROM "admin_session" WHERE "id" = $1`, [s.id]);
      expect(rows[0].state).not.toBe('ACTIVE');
    }
  });
});

describe(`${SubjectRepository.name} in a session without powers (ADR 0044)`, () => {
  const NO_POWERS = { powers: false };
  const POWERS = { powers: true };
  const user = (roles: string[], enabled = true) => a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: `u-${hex(2)}`, roles, enabled });
  const role = async (natures: ('ADMINISTRATOR' | 'APPROVER' | 'SIGNER' | 'ORDERER')[]) => {
    const name = `r-${hex(4)}`;
    await a.subjects.createRole({ name, natures });
    return name;
  };
  type Change = (scope: { powers: boolean }) => Promise<unknown>;
  /** A role with no human-only nature that grants APPROVE (and SIGN) on a new key. */
  const approveRole = async () => {
    const name = `r-${hex(4)}`;
    await a.subjects.createRole({ name, natures: ['SIGNER'], keys: [{ keyid: (await seedKey(a)).keyid, permissions: ['SIGN', 'APPROVE'] }] });
    return name;
  };

  // Each case: a change that gives or takes a human-only nature; refused without powers, done with them.
  const powerChanges: [string, () => Promise<Change>][] = [
    ['an administrator registered', async () => { const r = await role(['ADMINISTRATOR']); return (s) => a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'sock', roles: [r] }, audit('subject.create'), s); }],
    ['an approver role given', async () => { const r = await role(['APPROVER']); const u = await user([]); return (s) => a.subjects.update(u.id, { roles: [r] }, audit('subject.update'), s); }],
    ['a disabled administrator enabled', async () => { const u = await user([await role(['ADMINISTRATOR'])], false); return (s) => a.subjects.update(u.id, { enabled: true }, audit('subject.enable'), s); }],
    ['an administrator disabled', async () => { const u = await user([await role(['ADMINISTRATOR'])]); return (s) => a.subjects.update(u.id, { enabled: false }, audit('subject.disable'), s); }],
    ['an approver role taken away', async () => { const u = await user([await role(['APPROVER', 'SIGNER'])]); return (s) => a.subjects.update(u.id, { roles: [] }, audit('subject.update'), s); }],
    ['ADMINISTRATOR added to a role an enabled subject holds', async () => { const r = await role(['SIGNER']); await user([r]); return (s) => a.subjects.updateRole(r, { natures: ['SIGNER', 'ADMINISTRATOR'] }, audit('role.update'), s); }],
    ['APPROVER removed from a role an enabled subject holds', async () => { const r = await role(['APPROVER']); await user([r]); return (s) => a.subjects.updateRole(r, { natures: ['ORDERER'] }, audit('role.update'), s); }],
    // The APPROVE grant opens the approval route by itself: an approver in all but name (ADR 0044 addendum).
    ['a role granting APPROVE on a key given', async () => { const r = await approveRole(); const u = await user([]); return (s) => a.subjects.update(u.id, { roles: [r] }, audit('subject.update'), s); }],
    ['a subject registered with a role granting APPROVE on a key', async () => { const r = await approveRole(); return (s) => a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'alt', roles: [r] }, audit('subject.create'), s); }],
    ['APPROVE on a key added to a role an enabled subject holds', async () => { const r = await role(['SIGNER']); await user([r]); const k = await seedKey(a); return (s) => a.subjects.updateRole(r, { keys: [{ keyid: k.keyid, permissions: ['SIGN', 'APPROVE'] }] }, audit('role.update'), s); }],
    ['APPROVE on a key taken from a role an enabled subject holds', async () => { const r = await approveRole(); await user([r]); return (s) => a.subjects.updateRole(r, { keys: [] }, audit('role.update'), s); }],
    ['a disabled holder of an APPROVE role enabled', async () => { const u = await user([await approveRole()], false); return (s) => a.subjects.update(u.id, { enabled: true }, audit('subject.enable'), s); }],
  ];

  it.each(powerChanges)('fail %s', async (_n, setup) => {
    const change = await setup();
    const events = (await a.audit.list({ limit: 1000 })).items.length;
    expect(await outcome(change(NO_POWERS))).toBe('admin_session_scope');
    expect((await a.audit.list({ limit: 1000 })).items).toHaveLength(events);
  });

  it.each(powerChanges)('ok %s in a session with powers', async (_n, setup) => {
    expect(await outcome((await setup())(POWERS))).toBe('ok');
  });

  it.each<[string, () => Promise<Change>]>([
    ['an administrator renamed', async () => { const u = await user([await role(['ADMINISTRATOR'])]); return (s) => a.subjects.update(u.id, { displayName: 'Ada L.' }, audit('subject.update'), s); }],
    ['a signer registered', async () => { const r = await role(['SIGNER']); return (s) => a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'dev', roles: [r] }, audit('subject.create'), s); }],
    ['an administrator given a second, signer role', async () => { const adm = await role(['ADMINISTRATOR']); const u = await user([adm]); const r = await role(['SIGNER']); return (s) => a.subjects.update(u.id, { roles: [adm, r] }, audit('subject.update'), s); }],
    ['a disabled administrator disabled again', async () => { const u = await user([await role(['ADMINISTRATOR'])], false); return (s) => a.subjects.update(u.id, { enabled: false }, audit('subject.disable'), s); }],
    ['ADMINISTRATOR added to a role only a disabled subject holds', async () => { const r = await role(['SIGNER']); await user([r], false); return (s) => a.subjects.updateRole(r, { natures: ['ADMINISTRATOR'] }, audit('role.update'), s); }],
    ['the keys of an administrators role changed', async () => { const r = await role(['ADMINISTRATOR']); await user([r]); return (s) => a.subjects.updateRole(r, { description: 'the security officers' }, audit('role.update'), s); }],
    ['SIGN on a key added to a role an enabled subject holds', async () => { const r = await role(['SIGNER']); await user([r]); const k = await seedKey(a); return (s) => a.subjects.updateRole(r, { keys: [{ keyid: k.keyid, permissions: ['SIGN', 'ORDER'] }] }, audit('role.update'), s); }],
    ['a role granting APPROVE renamed in its description, its grants unchanged', async () => { const r = await approveRole(); await user([r]); const keys = (await a.subjects.listRoleGrants()).find((g) => g.name === r)?.keys ?? []; return (s) => a.subjects.updateRole(r, { description: 'release approvers', keys }, audit('role.update'), s); }],
    ['APPROVE on a key added to a role only a disabled subject holds', async () => { const r = await role(['SIGNER']); await user([r], false); const k = await seedKey(a); return (s) => a.subjects.updateRole(r, { keys: [{ keyid: k.keyid, permissions: ['APPROVE'] }] }, audit('role.update'), s); }],
  ])('ok %s in a session without powers', async (_n, setup) => {
    expect(await outcome((await setup())(NO_POWERS))).toBe('ok');
  });

  it('never lets a subject gain a human-only nature from two changes without powers that race', async () => {
    // Enabling a subject whose role is made an administrators role at once: each alone needs no powers. Another
    // appender holds the audit lock, so both changes have passed their checks before either commits, unless the
    // second waits for the first on the role's lock (the fix): then it sees the first's result and is refused.
    const lockWaits = (n: number) => lockWaiters(tmp.url, n);
    for (const [first, second] of [['enable', 'promote'], ['promote', 'enable']] as const) {
      const r = await role(['SIGNER']);
      const u = await user([r], false);
      const changes = {
        enable: () => outcome(a.subjects.update(u.id, { enabled: true }, audit('subject.enable'), NO_POWERS)),
        promote: () => outcome(b.subjects.updateRole(r, { natures: ['SIGNER', 'ADMINISTRATOR'] }, audit('role.update'), NO_POWERS)),
      };
      const holder = new Client({ connectionString: tmp.url });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK]);
        const one = changes[first]();
        await lockWaits(1);
        const two = changes[second]();
        await lockWaits(2);
        await holder.query('COMMIT');
        expect({ [first]: await one, [second]: await two }).toEqual({ [first]: 'ok', [second]: 'admin_session_scope' });
      } finally {
        await holder.end();
      }
    }
  });
});

// Lowering how many approvers a key needs undoes the four-eyes rule of every later operation on it, as making an
// approver does: a participant alone must not slip it into a session authorized for something else (ADR 0044 addendum).
describe(`${KeyRepository.name} requiredApprovers in a session without powers (ADR 0044)`, () => {
  const requiredOf = async (keyid: string) => (await a.keys.findByKeyid(keyid))?.requiredApprovers;
  const keyUpdates = async () => (await a.audit.list({ action: 'key.update', limit: 1000 })).items.length;

  it.each([
    ['fail lowering 2 -> 0', 2, 0],
    ['fail lowering 2 -> 1', 2, 1],
  ])('%s: admin_session_scope, the key unchanged, nothing audited', async (_n, from, to) => {
    const key = await seedKey(a, { requiredApprovers: from });
    const events = await keyUpdates();
    expect(await outcome(a.keys.setRequiredApprovers(key.keyid, to, audit('key.update'), { powers: false }))).toBe('admin_session_scope');
    expect(await requiredOf(key.keyid)).toBe(from);
    expect(await keyUpdates()).toBe(events);
  });

  it.each([
    ['ok lowering 2 -> 0 in a session with powers', 2, 0, true],
    ['ok raising 0 -> 2 in a session without powers', 0, 2, false],
    ['ok 1 -> 1 in a session without powers', 1, 1, false],
  ])('%s', async (_n, from, to, powers) => {
    const key = await seedKey(a, { requiredApprovers: from });
    expect(await outcome(a.keys.setRequiredApprovers(key.keyid, to, audit('key.update'), { powers }))).toBe('ok');
    expect(await requiredOf(key.keyid)).toBe(to);
  });
});
