// The account kind a user token proved, recorded on the subject (ADR 0040 addendum), on a real PostgreSQL: written
// once per change under concurrency, never by an older token; guests are refused the human-only natures and get no
// approval or session notice; subjects never proven a member get none either.
import fc from 'fast-check';
import { sql } from '../../spec/temp-database';
import { hex, outcome, proveAccount, seedAdmin, seedKey, seedSubject, window, twoReplicas } from '../../spec/fixtures';
import { SubjectRepository } from './subject.repository';

const AUDIT = { action: 'test.subjects', outcome: 'SUCCESS' as const };
const accountEvent = (subjectId: string) => ({ action: 'subject.account', outcome: 'SUCCESS' as const, actorSubjectId: subjectId });

describe(`${SubjectRepository.name} account kind`, () => {
  const { tmp, a, b } = twoReplicas('subject_account', 6);
  beforeAll(async () => {
    await a.subjects.upsertRole('acct-admins', ['ADMINISTRATOR']);
    await a.subjects.upsertRole('acct-approvers', ['APPROVER']);
    await a.subjects.upsertRole('acct-orderers', ['ORDERER']);
  });

  const accountOf = async (id: string) => {
    const s = await a.subjects.getById(id);
    return [s.account, s.accountProvenAt?.toISOString() ?? null];
  };
  const accountEvents = (id: string) => sql<{ before: string; account: string }>(tmp.url, `SELECT "details"->>'before' AS "before", "details"->>'account' AS "account" FROM "audit_event" WHERE "action" = 'subject.account' AND "details"->>'subjectId' = $1 ORDER BY "seq"`, [id]);

  it('ok a new subject is UNKNOWN; the first proof is written once even when many requests on two replicas bring it together, with one event', async () => {
    const s = await seedSubject(a);
    expect(await accountOf(s.id)).toEqual(['UNKNOWN', null]);
    const at = new Date('2026-12-07T10:00:00.000Z');
    const wrote = await Promise.all(Array.from({ length: 8 }, (_x, i) => (i % 2 ? a : b).subjects.recordAccount(s.id, 'MEMBER', at, accountEvent(s.id))));
    expect(wrote.filter(Boolean)).toHaveLength(1);
    expect(await accountOf(s.id)).toEqual(['MEMBER', at.toISOString()]);
    expect(await accountEvents(s.id)).toEqual([{ before: 'UNKNOWN', account: 'MEMBER' }]);
    // The same kind again (a newer token) is no write: the access snapshot already shows it.
    expect(await a.subjects.recordAccount(s.id, 'MEMBER', new Date(at.getTime() + 60_000), accountEvent(s.id))).toBe(false);
    expect(await accountOf(s.id)).toEqual(['MEMBER', at.toISOString()]);
  });

  it.each([
    ['fail an older guest token after a newer member proof: nothing written', 'MEMBER', -1, 'GUEST', false, 'MEMBER'],
    ['ok a newer guest token after a member proof: the subject is a guest from now on', 'MEMBER', 1, 'GUEST', true, 'GUEST'],
    ['ok a newer member token after a guest proof (converted to a member)', 'GUEST', 1, 'MEMBER', true, 'MEMBER'],
    ['ok a token issued the same second as the proof may change it (clocks of one issuer)', 'GUEST', 0, 'MEMBER', true, 'MEMBER'],
  ] as const)('%s', async (_n, first, offset, next, wrote, final) => {
    const s = await seedSubject(a);
    const at = new Date('2026-12-07T10:00:00.000Z');
    await proveAccount(a, s.id, first, at);
    expect(await a.subjects.recordAccount(s.id, next, new Date(at.getTime() + offset * 1000), accountEvent(s.id))).toBe(wrote);
    expect((await a.subjects.getById(s.id)).account).toBe(final);
  });

  it('fail a CLIENT subject: app tokens prove no account, nothing is recorded', async () => {
    const c = await a.subjects.create({ kind: 'CLIENT', tid: 'tenant-1', oid: hex(16), displayName: 'pipeline' });
    expect(await a.subjects.recordAccount(c.id, 'MEMBER', new Date(), accountEvent(c.id))).toBe(false);
    expect((await a.subjects.getById(c.id)).account).toBe('UNKNOWN');
  });

  it('ok any interleaving of proofs: never a write by a token older than the recorded proof; the next request with the newest token leaves its kind', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom('MEMBER' as const, 'GUEST' as const), fc.integer({ min: 0, max: 5 })), { minLength: 1, maxLength: 6 }), async (proofs) => {
        const s = await seedSubject(a);
        const base = Date.UTC(2026, 11, 7);
        for (const [kind, t] of proofs) {
          const before = await a.subjects.getById(s.id);
          const wrote = await a.subjects.recordAccount(s.id, kind, new Date(base + t * 1000), accountEvent(s.id));
          // Written exactly when the kind differs and the token is not older than the recorded proof.
          expect(wrote).toBe(before.account !== kind && (!before.accountProvenAt || before.accountProvenAt.getTime() <= base + t * 1000));
        }
        // The same kind is not written again (no write per request), so a newer token of one kind may be followed by
        // an older one of the other kind; the newest token, presented again (every request presents it), settles it.
        const newest = Math.max(...proofs.map(([, t]) => t));
        const last = [...proofs].reverse().find(([, t]) => t === newest) ?? proofs[0];
        await a.subjects.recordAccount(s.id, last[0], new Date(base + last[1] * 1000), accountEvent(s.id));
        expect((await a.subjects.getById(s.id)).account).toBe(last[0]);
      }),
      { numRuns: 25 },
    );
  });

  describe('granting the human-only natures to a guest', () => {
    const guest = async () => {
      const s = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: `guest-${hex(2)}`, roles: ['acct-orderers'] });
      await proveAccount(a, s.id, 'GUEST');
      return s;
    };
    const rolesOf = async (id: string) => (await sql<{ name: string }>(tmp.url, `SELECT r."name" FROM "subject_role" sr JOIN "role" r ON r."id" = sr."roleId" WHERE sr."subjectId" = $1::uuid ORDER BY 1`, [id])).map((r) => r.name);

    it.each([
      ['fail ADMINISTRATOR', ['acct-orderers', 'acct-admins'], 'subject_is_guest'],
      ['fail APPROVER', ['acct-approvers'], 'subject_is_guest'],
      ['ok ORDERER only (no human-only nature)', ['acct-orderers'], 'ok'],
      ['ok no role', [], 'ok'],
    ] as const)('%s: %s; nothing written when refused', async (_n, roles, expected) => {
      const s = await guest();
      const events = await sql(tmp.url, `SELECT 1 FROM "audit_event" WHERE "action" = 'subject.update'`);
      expect(await outcome(a.subjects.update(s.id, { roles: [...roles] }, { ...AUDIT, action: 'subject.update' }))).toBe(expected);
      expect(await rolesOf(s.id)).toEqual(expected === 'ok' ? [...roles].sort() : ['acct-orderers']);
      expect(await sql(tmp.url, `SELECT 1 FROM "audit_event" WHERE "action" = 'subject.update'`)).toHaveLength(events.length + (expected === 'ok' ? 1 : 0));
    });

    it('ok a guest that holds ADMINISTRATOR from before the record keeps changes that give nothing new, and may lose it', async () => {
      const s = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'legacy guest', roles: ['acct-admins'] });
      await proveAccount(a, s.id, 'GUEST');
      expect(await outcome(a.subjects.update(s.id, { displayName: 'legacy guest (partner)' }))).toBe('ok');
      expect(await outcome(a.subjects.update(s.id, { roles: ['acct-admins', 'acct-approvers'] }))).toBe('subject_is_guest');
      expect(await outcome(a.subjects.update(s.id, { roles: ['acct-orderers'] }))).toBe('ok');
      expect(await outcome(a.subjects.update(s.id, { roles: ['acct-admins'] }))).toBe('subject_is_guest');
    });

    it('fail enabling a disabled guest that holds APPROVER (the nature becomes held again)', async () => {
      const s = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'off guest', roles: ['acct-approvers'] });
      await proveAccount(a, s.id, 'GUEST');
      await a.subjects.update(s.id, { enabled: false });
      expect(await outcome(a.subjects.update(s.id, { enabled: true }))).toBe('subject_is_guest');
      expect((await a.subjects.getById(s.id)).enabled).toBe(false);
    });

    it('fail registering a principal whose refused sign-in proved a guest, as an approver; ok as an orderer, registered as a guest', async () => {
      const oid = hex(16);
      await a.subjects.recordUnknownPrincipal({ tid: 'tenant-1', oid, kind: 'USER', account: 'GUEST' });
      expect(await outcome(a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid, displayName: 'partner', roles: ['acct-approvers'] }))).toBe('subject_is_guest');
      expect(await a.subjects.findByTidOid('tenant-1', oid)).toBeNull();
      const s = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid, displayName: 'partner', roles: ['acct-orderers'] });
      expect(s.account).toBe('GUEST');
      // A later member sign-in is recorded like any other and lifts the refusal.
      await proveAccount(a, s.id, 'MEMBER', new Date(Date.now() + 1000));
      expect(await outcome(a.subjects.update(s.id, { roles: ['acct-approvers'] }))).toBe('ok');
    });

    it('fail giving ADMINISTRATOR to a role a guest holds; ok to a role only members hold', async () => {
      const s = await guest();
      const role = `shared-${hex(3)}`;
      await a.subjects.createRole({ name: role, natures: ['ORDERER'] });
      await a.subjects.update(s.id, { roles: [role] });
      expect(await outcome(a.subjects.updateRole(role, { natures: ['ORDERER', 'ADMINISTRATOR'] }))).toBe('subject_is_guest');
      expect((await a.subjects.listRoles()).find((r) => r.name === role)?.natures).toEqual(['ORDERER']);
      await a.subjects.update(s.id, { roles: [] });
      expect(await outcome(a.subjects.updateRole(role, { natures: ['ORDERER', 'ADMINISTRATOR'] }))).toBe('ok');
    });
  });

  describe('granting the per-key APPROVE to a guest (the one grant that opens a human-only permission)', () => {
    const grantRole = async (grants: { keyid: string; permissions: ('ORDER' | 'SIGN' | 'ISSUE' | 'APPROVE')[] }[]) => {
      const name = `grant-${hex(3)}`;
      await a.subjects.createRole({ name, natures: ['ORDERER'], keys: grants });
      return name;
    };
    const guestWith = async (roles: string[]) => {
      const s = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: `guest-${hex(2)}`, roles });
      await proveAccount(a, s.id, 'GUEST');
      return s;
    };
    const rolesOf = async (id: string) => (await sql<{ name: string }>(tmp.url, `SELECT r."name" FROM "subject_role" sr JOIN "role" r ON r."id" = sr."roleId" WHERE sr."subjectId" = $1::uuid ORDER BY 1`, [id])).map((r) => r.name);
    const updates = async () => (await sql(tmp.url, `SELECT 1 FROM "audit_event" WHERE "action" = 'subject.update'`)).length;

    it.each([
      ['fail a role granting only APPROVE on a key', ['APPROVE'], 'subject_is_guest'],
      ['fail a role granting ORDER and APPROVE on a key', ['ORDER', 'APPROVE'], 'subject_is_guest'],
      ['ok a role granting ORDER and SIGN on a key', ['ORDER', 'SIGN'], 'ok'],
    ] as const)('%s: %s; nothing written when refused', async (_n, permissions, expected) => {
      const key = await seedKey(a);
      const role = await grantRole([{ keyid: key.keyid, permissions: [...permissions] }]);
      const s = await guestWith(['acct-orderers']);
      const events = await updates();
      expect(await outcome(a.subjects.update(s.id, { roles: ['acct-orderers', role] }, { ...AUDIT, action: 'subject.update' }))).toBe(expected);
      expect(await rolesOf(s.id)).toEqual(expected === 'ok' ? ['acct-orderers', role].sort() : ['acct-orderers']);
      expect(await updates()).toBe(events + (expected === 'ok' ? 1 : 0));
    });

    it('fail registering a principal proven a guest with a role granting APPROVE; nothing written', async () => {
      const key = await seedKey(a);
      const role = await grantRole([{ keyid: key.keyid, permissions: ['APPROVE'] }]);
      const oid = hex(16);
      await a.subjects.recordUnknownPrincipal({ tid: 'tenant-1', oid, kind: 'USER', account: 'GUEST' });
      expect(await outcome(a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid, displayName: 'partner', roles: [role] }))).toBe('subject_is_guest');
      expect(await a.subjects.findByTidOid('tenant-1', oid)).toBeNull();
    });

    it('fail enabling a disabled guest whose role grants APPROVE', async () => {
      const key = await seedKey(a);
      const role = await grantRole([{ keyid: key.keyid, permissions: ['APPROVE'] }]);
      const s = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'off guest', roles: [role], enabled: false });
      await proveAccount(a, s.id, 'GUEST');
      expect(await outcome(a.subjects.update(s.id, { enabled: true }))).toBe('subject_is_guest');
      expect((await a.subjects.getById(s.id)).enabled).toBe(false);
    });

    it('ok a legacy guest keeps APPROVE on its key through changes that give nothing new; fail APPROVE on another key', async () => {
      const [k1, k2] = [await seedKey(a), await seedKey(a)];
      const r1 = await grantRole([{ keyid: k1.keyid, permissions: ['APPROVE'] }]);
      const r1b = await grantRole([{ keyid: k1.keyid, permissions: ['ORDER', 'APPROVE'] }]);
      const r2 = await grantRole([{ keyid: k2.keyid, permissions: ['APPROVE'] }]);
      const s = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'legacy guest', roles: [r1] });
      await proveAccount(a, s.id, 'GUEST');
      expect(await outcome(a.subjects.update(s.id, { displayName: 'legacy guest (partner)' }))).toBe('ok');
      expect(await outcome(a.subjects.update(s.id, { roles: [r1b] }))).toBe('ok');
      expect(await outcome(a.subjects.update(s.id, { roles: [r1b, r2] }))).toBe('subject_is_guest');
      expect(await rolesOf(s.id)).toEqual([r1b]);
      expect(await outcome(a.subjects.update(s.id, { roles: [] }))).toBe('ok');
    });

    it.each([
      ['fail adding APPROVE to the grant of a key', 'subject_is_guest', (k1: string) => [{ keyid: k1, permissions: ['ORDER', 'APPROVE'] }]],
      ['fail a new key granted APPROVE', 'subject_is_guest', (k1: string, k2: string) => [{ keyid: k1, permissions: ['ORDER'] }, { keyid: k2, permissions: ['APPROVE'] }]],
      ['ok adding SIGN', 'ok', (k1: string) => [{ keyid: k1, permissions: ['ORDER', 'SIGN'] }]],
      ['ok taking the grants away', 'ok', () => []],
    ] as const)('%s on a role a guest holds: %s; the grants unchanged when refused', async (_n, expected, keys) => {
      const [k1, k2] = [await seedKey(a), await seedKey(a)];
      const role = await grantRole([{ keyid: k1.keyid, permissions: ['ORDER'] }]);
      await guestWith([role]);
      const grantsOf = async () => (await a.subjects.listRoleGrants()).find((r) => r.name === role)?.keys;
      const before = await grantsOf();
      const wanted = (keys as (a: string, b: string) => { keyid: string; permissions: ('ORDER' | 'SIGN' | 'APPROVE')[] }[])(k1.keyid, k2.keyid);
      expect(await outcome(a.subjects.updateRole(role, { keys: wanted }))).toBe(expected);
      if (expected !== 'ok') expect(await grantsOf()).toEqual(before);
    });

    it('ok adding APPROVE to a role only members hold', async () => {
      const key = await seedKey(a);
      const role = await grantRole([{ keyid: key.keyid, permissions: ['ORDER'] }]);
      const m = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'member', roles: [role] });
      await proveAccount(a, m.id, 'MEMBER');
      expect(await outcome(a.subjects.updateRole(role, { keys: [{ keyid: key.keyid, permissions: ['ORDER', 'APPROVE'] }] }))).toBe('ok');
    });
  });

  describe('approval and session notices go to proven members only', () => {
    it('ok an approval request names the member approver; neither the guest nor the one never signed in with acct', async () => {
      const key = await seedKey(a, { requiredApprovers: 1 });
      const role = `approvers-${hex(3)}`;
      await a.subjects.createRole({ name: role, natures: ['APPROVER'], keys: [{ keyid: key.keyid, permissions: ['APPROVE'] }] });
      const mk = async (name: string) => a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: name, roles: [role] });
      const member = await mk('member');
      await proveAccount(a, member.id, 'MEMBER');
      // Registered as an approver while a member, then its next sign-in proved a guest (converted in the tenant).
      const guest = await mk('guest');
      await proveAccount(a, guest.id, 'MEMBER', new Date(Date.now() - 60_000));
      await proveAccount(a, guest.id, 'GUEST');
      const never = await mk('never signed in');
      for (const s of [member, guest, never]) await a.notifications.setAddress(s.id, `${s.displayName.replace(/ /g, '.')}-${hex(2)}@example.test`, AUDIT);
      const orderer = await seedSubject(a);
      const op = await a.operations.create({ description: 'release', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 1 }] });
      const [event] = await a.notifications.eventsOf(op.id);
      expect(event.recipientIds).toEqual([member.id]);
    });

    it('ok a four-eyes session asks the member administrators only', async () => {
      const [creator, member] = [await seedAdmin(a), await seedAdmin(a)];
      const guest = await seedAdmin(a);
      await proveAccount(a, guest.id, 'GUEST', new Date(Date.now() + 1000));
      const unknown = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'new admin', roles: ['fixture-administrators'] });
      const pending = await a.adminSessions.open({ description: 'x', creatorId: creator.id, requiredApprovals: 1, expiresAt: new Date(Date.now() + 3_600_000) });
      const [event] = await a.notifications.eventsOf(pending.id);
      expect(event.recipientIds).toContain(member.id);
      expect(event.recipientIds).not.toContain(guest.id);
      expect(event.recipientIds).not.toContain(unknown.id);
    });

    it('ok a recipient recorded as a guest after the event is dropped at expansion, and at claim after expansion', async () => {
      const key = await seedKey(a, { requiredApprovers: 1 });
      const role = `approvers-${hex(3)}`;
      await a.subjects.createRole({ name: role, natures: ['APPROVER'], keys: [{ keyid: key.keyid, permissions: ['APPROVE'] }] });
      const people = [];
      for (const name of ['early', 'late', 'stays']) {
        const s = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: name, roles: [role] });
        await proveAccount(a, s.id, 'MEMBER', new Date(Date.now() - 60_000));
        await a.notifications.setAddress(s.id, `${name}-${hex(2)}@example.test`, AUDIT);
        people.push(s);
      }
      const [early, late, stays] = people;
      const orderer = await seedSubject(a);
      // Everything queued before is out of the way.
      while ((await a.notifications.expand({ email: true, webhooks: [] }, 50)).length > 0);
      await sql(tmp.url, `UPDATE "notification_delivery" SET "state" = 'SENT' WHERE "state" = 'PENDING'`);
      const op = await a.operations.create({ description: 'release', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 1 }] });
      expect([...(await a.notifications.eventsOf(op.id))[0].recipientIds].sort()).toEqual([early.id, late.id, stays.id].sort());
      await proveAccount(a, early.id, 'GUEST');
      await a.notifications.expand({ email: true, webhooks: ['ops'] });
      await proveAccount(a, late.id, 'GUEST');
      const claimed = await b.notifications.claim(60_000, 3, 50);
      const emails = claimed.filter((d) => d.channel === 'EMAIL').map((d) => [d.target, d.staleReason]);
      expect(emails.sort()).toEqual([[late.id, 'the recipient is no longer a proven member account'], [stays.id, null]].sort());
      expect(claimed.filter((d) => d.channel === 'WEBHOOK').map((d) => d.recipients.map((r) => r.subjectId).sort())).toEqual([[late.id, stays.id].sort()]);
    });
  });
});
