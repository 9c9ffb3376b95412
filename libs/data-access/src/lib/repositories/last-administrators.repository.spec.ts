import { Client } from 'pg';
import { sql } from '../../spec/temp-database';
import { hex, lockWaiters, outcome, proveAccount, seedAdmin, twoReplicas } from '../../spec/fixtures';
import { AUDIT_APPEND_LOCK } from '../audit-hash';
import type { AuditInput } from '../types';
import { SubjectRepository } from './subject.repository';

// Two handles = two independent pools, like two API replicas.
const { tmp, a, b } = twoReplicas('lastadmins');

const audit = (action: string): AuditInput => ({ action, outcome: 'SUCCESS', actorOid: 'admin-oid', requestId: hex(4), adminSessionId: null, details: {} });

/** The session a change runs in, as the gate hands it over: four eyes (one authorization beyond the creator), with powers. */
const FOUR_EYES = { powers: true, requiredApprovals: 1 };
/** A demo system's session (ADMIN_SESSION_APPROVALS=1): the creator alone. */
const DEMO = { powers: true, requiredApprovals: 0 };

const enabledAdministrators = async () =>
  Number(
    (
      await sql<{ n: string }>(
        tmp.url,
        `SELECT count(*)::text AS n FROM "subject" s WHERE s."enabled" AND s."account" <> 'GUEST' AND EXISTS (
           SELECT 1 FROM "subject_role" sr JOIN "role" r ON r."id" = sr."roleId" WHERE sr."subjectId" = s."id" AND 'ADMINISTRATOR'::"Nature" = ANY(r."natures"))`,
      )
    )[0].n,
  );
const eventCount = async () => (await a.audit.list({ limit: 1000 })).items.length;

/** Each test starts from an installation without administrators and seeds its own. */
beforeEach(async () => {
  await sql(tmp.url, `UPDATE "subject" SET "enabled" = false`);
});

// An insider with administrator rights, in a session both administrators opened with powers, must not be able to
// leave the installation with fewer administrators than a session needs: nobody could ever open one again (the
// bootstrap runs once, on an empty installation), so no key, subject or role could change without database surgery.
describe(`${SubjectRepository.name} keeps the administrators a session needs`, () => {
  it.each<[string, (ids: { ada: string; ivy: string; role: string }) => Promise<unknown>]>([
    ['fail disabling one of the two administrators', ({ ivy }) => a.subjects.update(ivy, { enabled: false }, audit('subject.disable'), FOUR_EYES)],
    ['fail an administrator disabling herself, one of two', ({ ada }) => a.subjects.update(ada, { enabled: false }, audit('subject.disable'), FOUR_EYES)],
    ['fail taking the administrator role from one of the two', ({ ivy }) => a.subjects.update(ivy, { roles: [] }, audit('subject.update'), FOUR_EYES)],
    ['fail taking ADMINISTRATOR from the role both administrators hold', ({ role }) => a.subjects.updateRole(role, { natures: ['AUDITOR'] }, audit('role.update'), FOUR_EYES)],
  ])('%s', async (_n, change) => {
    const ada = await seedAdmin(a);
    const ivy = await seedAdmin(a);
    expect(await enabledAdministrators()).toBe(2);
    const events = await eventCount();
    expect(await outcome(change({ ada: ada.id, ivy: ivy.id, role: 'fixture-administrators' }))).toBe('too_few_administrators');
    // Nothing written: both still administrators, no event.
    expect(await enabledAdministrators()).toBe(2);
    expect(await eventCount()).toBe(events);
  });

  it('fail the last administrator of a demo system disabling herself', async () => {
    const ada = await seedAdmin(a);
    expect(await outcome(a.subjects.update(ada.id, { enabled: false }, audit('subject.disable'), DEMO))).toBe('too_few_administrators');
    expect(await enabledAdministrators()).toBe(1);
  });

  it('ok disabling one of three administrators, and the next one is refused', async () => {
    const [, ivy, eve] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    expect(await outcome(a.subjects.update(ivy.id, { enabled: false }, audit('subject.disable'), FOUR_EYES))).toBe('ok');
    expect(await outcome(a.subjects.update(eve.id, { enabled: false }, audit('subject.disable'), FOUR_EYES))).toBe('too_few_administrators');
    expect(await enabledAdministrators()).toBe(2);
  });

  it('does not count an administrator recorded as a guest (she can open no session)', async () => {
    const [, ivy, eve] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    await proveAccount(a, eve.id, 'GUEST');
    expect(await outcome(a.subjects.update(ivy.id, { enabled: false }, audit('subject.disable'), FOUR_EYES))).toBe('too_few_administrators');
  });

  it('ok changes that take no administrator, even in an installation already short of administrators', async () => {
    const ada = await seedAdmin(a);
    const user = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'dev' });
    expect(await outcome(a.subjects.update(user.id, { enabled: false }, audit('subject.disable'), FOUR_EYES))).toBe('ok');
    expect(await outcome(a.subjects.update(ada.id, { displayName: 'Ada L.' }, audit('subject.update'), FOUR_EYES))).toBe('ok');
    expect(await outcome(a.subjects.update(ada.id, { roles: ['fixture-administrators'] }, audit('subject.update'), FOUR_EYES))).toBe('ok');
    expect(await outcome(a.subjects.updateRole('fixture-administrators', { natures: ['ADMINISTRATOR', 'AUDITOR'] }, audit('role.update'), FOUR_EYES))).toBe('ok');
  });

  it('ok taking ADMINISTRATOR from a second role whose holders stay administrators or never counted, short of administrators', async () => {
    const ada = await seedAdmin(a);
    const side = `side-${hex(3)}`;
    await a.subjects.upsertRole(side, ['ADMINISTRATOR']);
    const off = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'off', roles: [side] });
    await a.subjects.update(off.id, { enabled: false });
    const guest = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'guest', roles: [side] });
    await proveAccount(a, guest.id, 'GUEST');
    await a.subjects.update(ada.id, { roles: ['fixture-administrators', side] });
    // Ada keeps the nature through fixture-administrators; the disabled holder and the guest were never counted.
    expect(await outcome(a.subjects.updateRole(side, { natures: ['AUDITOR'] }, audit('role.update'), FOUR_EYES))).toBe('ok');
    // A role of the same holders plus a second administrator who has no other: she is lost, and one is left.
    const third = `third-${hex(3)}`;
    await a.subjects.upsertRole(third, ['ADMINISTRATOR']);
    const ivy = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'ivy', roles: [third] });
    await proveAccount(a, ivy.id, 'MEMBER');
    await a.subjects.update(ada.id, { roles: ['fixture-administrators', side, third] });
    await a.subjects.update(off.id, { roles: [side, third] });
    expect(await enabledAdministrators()).toBe(2);
    expect(await outcome(a.subjects.updateRole(third, { natures: ['AUDITOR'] }, audit('role.update'), FOUR_EYES))).toBe('too_few_administrators');
  });

  it('never leaves fewer administrators than a session needs when two replicas each disable one at once', async () => {
    // Another appender holds the audit lock, so both disables have passed every check before either commits, unless
    // the second counts the administrators only after the first committed (the fix): then it is refused.
    const lockWaits = (n: number) => lockWaiters(tmp.url, n);
    const [, ivy, eve] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const holder = new Client({ connectionString: tmp.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK]);
      const one = outcome(a.subjects.update(ivy.id, { enabled: false }, audit('subject.disable'), FOUR_EYES));
      await lockWaits(1);
      const two = outcome(b.subjects.update(eve.id, { roles: [] }, audit('subject.update'), FOUR_EYES));
      await lockWaits(2);
      await holder.query('COMMIT');
      expect([await one, await two]).toEqual(['ok', 'too_few_administrators']);
    } finally {
      await holder.end();
    }
    expect(await enabledAdministrators()).toBe(2);
  });
});
