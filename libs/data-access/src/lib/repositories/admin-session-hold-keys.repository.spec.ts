import { Client } from 'pg';
import { sql } from '../../spec/temp-database';
import { AUDIT_APPEND_LOCK } from '../audit-hash';
import { createDb } from '../db';
import { createRepositories } from '.';
import { hex, lockWaiters, outcome, seedAdmin, seedApprover, seedKey, seedKeyBelow, seedSubject, twoReplicas, window } from '../../spec/fixtures';
import type { AdminSession, AuditInput, Key } from '../types';
import { holdSession } from './admin-participation';
import { DeviceProfileRepository } from './device-profile.repository';
import { KeyLifecycleRepository } from './key-lifecycle.repository';

// ADR 0012 addendum "every change that needs a session holds it": the key, key-limit, key-lifecycle, device-profile and
// notification-address changes read their session again under the same subject-row locks as subject and role changes
// (`holdSession`), first thing in their transaction, so a close, an expiry or a lost co-authorizer committed on another
// replica between the gate and the change's transaction refuses the change (`session_not_active`), nothing written.
const { tmp, dbA, dbB, a, b } = twoReplicas('sessionholdkeys', 8);
const lifeA = new KeyLifecycleRepository(dbA);
const lifeB = new KeyLifecycleRepository(dbB);
const profilesA = new DeviceProfileRepository(dbA);

const PEM = '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n';
const DAY = 86_400_000;
const audit = (action: string, adminSessionId: string | null = null): AuditInput => ({ action, outcome: 'SUCCESS', actorOid: 'admin-oid', requestId: hex(4), adminSessionId, details: {} });
const limits = (n: number) => ({ maxWindowSeconds: 3_600, maxUsagesPerOperation: n, maxBackdateSeconds: 60, maxStartAheadSeconds: 120 });
const eventCount = async () => Number((await sql<{ n: string }>(tmp.url, `SELECT count(*)::text AS n FROM "audit_event"`))[0].n);

/** An ACTIVE four-eyes session opened by `creator` and authorized by `authorizer`, as the gate hands it to a change. */
async function activeSession(creator: string, authorizer: string, expiresAt = new Date(Date.now() + 3_600_000)): Promise<AdminSession> {
  const s = await a.adminSessions.open({ description: `hold ${hex(2)}`, creatorId: creator, requiredApprovals: 1, expiresAt, powers: true });
  const { session } = await a.adminSessions.authorize(s.id, authorizer);
  expect(session.state).toBe('ACTIVE');
  return session;
}

/** Everything a change could have written: keys, versions, pending keys, limits, profiles, addresses and events. */
const snapshot = () =>
  sql(
    tmp.url,
    `SELECT (SELECT json_agg(k ORDER BY k."keyid") FROM (SELECT "keyid", "state"::text, "currentVersion", "requiredApprovers", "profile", "revokedAt" FROM "key") k) AS "keys",
            (SELECT count(*)::int FROM "key_version") AS "versions", (SELECT count(*)::int FROM "pending_key") AS "pending",
            (SELECT count(*)::int FROM "pending_key_version") AS "pendingVersions", (SELECT count(*)::int FROM "key_operation_limit") AS "limits",
            (SELECT count(*)::int FROM "notification_preference") AS "addresses", (SELECT count(*)::int FROM "audit_event") AS "events"`,
  );

beforeEach(async () => {
  await sql(tmp.url, `UPDATE "subject" SET "enabled" = false`);
});

describe(`${holdSession.name} in every change that needs a session`, () => {
  it.each<[string, (s: AdminSession, bob: string) => Promise<unknown>]>([
    ['fail after the session was closed on the other replica', (s) => b.adminSessions.close(s.id)],
    ['fail after the session expired (a millisecond ago)', (s) => sql(tmp.url, `UPDATE "admin_session" SET "expiresAt" = clock_timestamp() - interval '1 millisecond' WHERE "id" = '${s.id}'`)],
    ['fail after the co-authorizer was disabled on the other replica', (_s, bob) => b.subjects.update(bob, { enabled: false })],
    ['fail after the co-authorizer lost the administrator role on the other replica', (_s, bob) => b.subjects.update(bob, { roles: [] })],
  ])('%s: every key, lifecycle, profile and address change is refused session_not_active, nothing written', async (_n, end) => {
    const [ada, bob] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const s = await activeSession(ada.id, bob.id);
    const fw = await seedKey(a);
    const root = await seedKeyBelow(a, 'ROOT', null);
    const ca = await seedKeyBelow(a, 'CA', root);
    const pendingId = `pending-${hex(4)}`;
    await lifeA.createPending({ keyid: pendingId, type: 'ROOT', algorithm: 'EC_P256', hash: 'SHA256', requiredApprovers: 0, hsmKeyId: hex(8), csrPem: 'CSR', adminSessionId: s.id }, audit('key.root_ceremony'));
    const target = await seedSubject(a);
    await end(s, bob.id);
    const before = await snapshot();
    const version = (k: Key) => ({ hsmKeyId: k.hsmKeyId, certificatePem: PEM, certificateSerial: hex(8), notBefore: new Date(), notAfter: new Date(Date.now() + 300 * DAY), issuerKeyid: null, issuerVersion: null });
    const newKey = { keyid: `new-${hex(4)}`, type: 'FW' as const, algorithm: 'EC_P256' as const, hash: 'SHA256' as const, hsmKeyId: hex(8), parentKeyid: ca.keyid, certificatePem: PEM, certificateSerial: hex(8), notBefore: new Date(), notAfter: new Date(Date.now() + 300 * DAY) };
    const changes: [string, () => Promise<unknown>][] = [
      ['key limits', () => a.keyLimits.set(fw.keyid, limits(3), audit('key.limits', s.id), new Date(), s)],
      ['required approvers', () => a.keys.setRequiredApprovers(fw.keyid, 2, audit('key.approvers', s.id), s)],
      ['create', () => a.keys.create(newKey, audit('key.create', s.id), s)],
      ['revoke', () => a.keys.revoke(fw.keyid, 'keyCompromise', undefined, audit('key.revoke', s.id), s)],
      ['retire', () => lifeA.retire(fw.keyid, audit('key.retire', s.id), s)],
      ['renew', () => lifeA.addVersion(root.keyid, 1, version(root), audit('key.renew', s.id), s)],
      ['external rotation', () => lifeA.createPendingVersion(fw.keyid, 1, { hsmKeyId: hex(8), csrPem: 'CSR', adminSessionId: s.id }, audit('key.rotate', s.id), s)],
      ['ceremony (external)', () => lifeA.createPending({ keyid: `p-${hex(4)}`, type: 'ROOT', algorithm: 'EC_P256', hash: 'SHA256', requiredApprovers: 0, hsmKeyId: hex(8), csrPem: 'CSR', adminSessionId: s.id }, audit('key.root_ceremony', s.id), s)],
      ['import', () => lifeA.activatePending(pendingId, { ...newKey, keyid: pendingId, type: 'ROOT', parentKeyid: null, issuerChainPem: PEM }, audit('key.certificate_import', s.id), s)],
      ['cancel', () => lifeA.cancelPending(pendingId, undefined, () => audit('key.csr_cancel', s.id), s)],
      ['external chain', () => lifeA.replaceExternalChain(root.keyid, { expected: { version: 1, certificatePem: PEM, issuerChainPem: PEM }, certificate: null, issuerChainPem: PEM, pathLen: null }, () => undefined, audit('key.external_chain_replace', s.id), s)],
      ['destruction plan', () => lifeA.destructionPlan(ca.keyid, s)],
      ['device profile', () => profilesA.set(ca.keyid, { product: 'x' }, audit('key.device_profile', s.id), s)],
      ['notification address', () => a.notifications.setAddress(target.id, 'someone@example.test', audit('notification.address', s.id), s)],
    ];
    const results: [string, string][] = [];
    for (const [what, change] of changes) results.push([what, await outcome(change())]);
    expect(results).toEqual(changes.map(([what]) => [what, 'session_not_active']));
    expect(await snapshot()).toEqual(before);
  });

  it.each<[string, number, string]>([
    ['ok a key-limit change a millisecond before the session expires (frozen clock)', -1, 'ok'],
    ['fail a key-limit change at the very millisecond the session expires (frozen clock)', 0, 'session_not_active'],
    ['fail a key-limit change a millisecond after the session expired (frozen clock)', 1, 'session_not_active'],
  ])('%s', async (_n, offset, expected) => {
    const [ada, bob] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const expiresAt = new Date(Date.now() + 3_600_000);
    const s = await activeSession(ada.id, bob.id, expiresAt);
    const fw = await seedKey(a);
    const events = await eventCount();
    expect(await outcome(b.keyLimits.set(fw.keyid, limits(4), audit('key.limits', s.id), new Date(expiresAt.getTime() + offset), s))).toBe(expected);
    expect(await eventCount()).toBe(events + (expected === 'ok' ? 1 : 0));
    expect((await a.keyLimits.get(fw.keyid)).source).toBe(expected === 'ok' ? 'set' : 'default');
  });

  it('ok every change in an ACTIVE session, and without a session (bootstrap, fixtures) as before', async () => {
    const [ada, bob] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const s = await activeSession(ada.id, bob.id);
    const fw = await seedKey(a);
    const target = await seedSubject(a);
    expect(await outcome(a.keyLimits.set(fw.keyid, limits(3), audit('key.limits', s.id), new Date(), s))).toBe('ok');
    expect(await outcome(b.keys.setRequiredApprovers(fw.keyid, 2, audit('key.approvers', s.id), s))).toBe('ok');
    expect(await outcome(a.notifications.setAddress(ada.id, 'ada@example.test', audit('notification.address', s.id), s))).toBe('ok');
    expect(await outcome(b.notifications.setAddress(target.id, 't@example.test', audit('notification.address', s.id), s))).toBe('ok');
    expect(await outcome(lifeB.retire(fw.keyid, audit('key.retire', s.id), s))).toBe('ok');
    expect(await outcome(a.keys.revoke(fw.keyid, 'superseded', undefined, audit('key.revoke', s.id), s))).toBe('ok');
    expect(await outcome(a.keyLimits.set((await seedKey(a)).keyid, limits(2), audit('key.limits')))).toBe('ok');
  });

  // A change that withdraws approvals (disable, roles, a role's grants) locked the operations only after its audit
  // event had taken the append lock, while an approval locks its operation first and appends after: with the change
  // queued first on the append lock, PostgreSQL broke the cycle and one side answered 500. Now the change locks
  // those operations before its first append (subjects, then operations, then the append lock, as everywhere).
  it.each<[string, (r: typeof a, s: AdminSession, q: { id: string; role: string }) => Promise<unknown>]>([
    ['disabling an approver', (r, s, q) => r.subjects.update(q.id, { enabled: false }, audit('subject.disable', s.id), s)],
    ['taking an approver\'s roles', (r, s, q) => r.subjects.update(q.id, { roles: [] }, audit('subject.update', s.id), s)],
    ['taking APPROVE from an approver\'s role', (r, s, q) => r.subjects.updateRole(q.role, { keys: [] }, audit('role.update', s.id), s)],
  ])('ok %s while another approver approves the same operation, the change queued first on the append lock: both commit', async (_n, change) => {
    const [ada, bob] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const s = await activeSession(ada.id, bob.id);
    const key = await seedKey(a, { requiredApprovers: 2 });
    const [p, q] = [await seedApprover(a, [key.keyid]), await seedApprover(a, [key.keyid])];
    const op = await a.operations.create({ description: 'release', ordererId: (await seedSubject(a)).id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 5 }] });
    await a.operations.approve(op.id, [key.keyid], q.id);
    const holder = new Client({ connectionString: tmp.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK]);
      const one = outcome(change(a, s, q));
      await lockWaiters(tmp.url, 1);
      const two = outcome(b.operations.approve(op.id, [key.keyid], p.id, audit('operation.approve')));
      await lockWaiters(tmp.url, 2);
      await holder.query('COMMIT');
      expect([await one, await two]).toEqual(['ok', 'ok']);
    } finally {
      await holder.end();
    }
    // Q's approval withdrawn, P's stands: the operation waits for a second approver again.
    expect((await a.operations.get(op.id)).keys[0].approvals.map((x) => x.subjectId)).toEqual([p.id]);
  });

  it('ok disabling a participant of another session while that session is closed, the disable queued first on the append lock: the disable ends it, the close finds it ended', async () => {
    const [ada, bob, carol, dave] = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const s1 = await activeSession(ada.id, bob.id);
    const s2 = await activeSession(carol.id, dave.id);
    const holder = new Client({ connectionString: tmp.url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK]);
      const one = outcome(a.subjects.update(dave.id, { enabled: false }, audit('subject.disable', s1.id), s1));
      await lockWaiters(tmp.url, 1);
      const two = outcome(b.adminSessions.close(s2.id, audit('admin_session.close', s2.id)));
      await lockWaiters(tmp.url, 2);
      await holder.query('COMMIT');
      expect([await one, await two]).toEqual(['ok', 'invalid_state']);
    } finally {
      await holder.end();
    }
    expect((await a.adminSessions.get(s2.id)).state).toBe('CLOSED');
  });

  // The global lock order (ADR 0012 addendum): subject rows in id order first, then the keyid's advisory lock,
  // operations, key rows, CRL locks, the `administrators` lock, the audit append lock, session rows. Two replicas of
  // their own run mixes of subject and role changes, key changes, revocations and approvals of the same sessions, keys
  // and operations at once. None may end as a PostgreSQL deadlock: not as an error (40P01, which Prisma answers as an
  // unknown error), nor hidden by `retryDeadlocks`: the database's own deadlock counter (pg_stat_database, flushed
  // when the replicas' connections close) must not move.
  it('never deadlocks: subject, role, key and lifecycle changes, revocations and approvals of shared rows on two replicas', async () => {
    const deadlocksSoFar = async () => Number((await sql<{ n: string }>(tmp.url, `SELECT "deadlocks"::text AS n FROM pg_stat_database WHERE datname = current_database()`))[0].n);
    const [dbX, dbY] = [createDb(tmp.url, { poolSize: 8 }), createDb(tmp.url, { poolSize: 8 })];
    const [x, y] = [createRepositories(dbX), createRepositories(dbY)];
    const [lifeX, lifeY] = [new KeyLifecycleRepository(dbX), new KeyLifecycleRepository(dbY)];
    const counted = await deadlocksSoFar();
    const admins = [await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a), await seedAdmin(a)];
    const keys = [await seedKey(a), await seedKey(a), await seedKey(a), await seedKey(a)];
    const approvers = [await seedApprover(a, keys.map((k) => k.keyid)), await seedApprover(a, keys.map((k) => k.keyid))];
    const orderer = await seedSubject(a);
    const ops = [];
    for (let i = 0; i < 6; i++) ops.push(await a.operations.create({ description: `op ${i}`, ordererId: orderer.id, ...window(), keys: [{ keyid: keys[i % 4].keyid, usagesAllowed: 5 }, { keyid: keys[(i + 1) % 4].keyid, usagesAllowed: 5 }] }));
    // Approvers are also session administrators: an approval and a change of their session share their subject row.
    for (const p of approvers) await a.subjects.update(p.id, { roles: [p.role, 'fixture-administrators'] });
    const people = [...admins, ...approvers];
    const sessions = [await activeSession(people[0].id, people[1].id), await activeSession(people[1].id, people[6].id), await activeSession(people[6].id, people[7].id), await activeSession(people[2].id, people[7].id)];
    const failures: string[] = [];
    const allowed = new Set(['ok', 'session_not_active', 'invalid_state', 'conflict', 'already_approved', 'operation_not_usable', 'not_an_approver', 'too_few_administrators', 'not_found', 'key_revoked']);
    const run = async (what: string, p: Promise<unknown>) => {
      const err = await p.then(() => null, (e: unknown) => e as { code?: unknown; message?: string });
      if (err && !allowed.has(String(err.code))) failures.push(`${what}: ${String(err.code)} ${String(err.message).slice(-300)}`);
    };
    try {
      for (let round = 0; round < 6; round++) {
        const jobs: Promise<void>[] = [];
        for (let i = 0; i < 16; i++) {
          const [r, life] = (round + i) % 2 ? [x, lifeX] : [y, lifeY];
          const s = sessions[(round + i) % sessions.length];
          const key = keys[(round * 3 + i) % keys.length];
          const person = people[(round + i * 5) % people.length];
          const op = ops[(round + i) % ops.length];
          switch (i % 8) {
            case 0: jobs.push(run('rename', r.subjects.update(person.id, { displayName: `n-${hex(2)}` }, audit('subject.update', s.id), s))); break;
            case 1: jobs.push(run('limits', r.keyLimits.set(key.keyid, limits(1 + (i % 5)), audit('key.limits', s.id), undefined, s))); break;
            case 2: jobs.push(run('approvers', r.keys.setRequiredApprovers(key.keyid, 1 + (round % 2), audit('key.approvers', s.id), s))); break;
            case 3: jobs.push(run('approve', r.operations.approve(op.id, op.keys.map((k) => k.keyid), approvers[i % 2].id))); break;
            case 4: jobs.push(run('role', r.subjects.updateRole(approvers[(round + i) % 2].role, { description: `d-${hex(2)}` }, audit('role.update', s.id), s))); break;
            case 5: jobs.push(run('address', r.notifications.setAddress(person.id, `p${i}@example.test`, audit('notification.address', s.id), s))); break;
            case 6:
              jobs.push(run('revoke or rotate', round === 5
                ? r.keys.revoke(key.keyid, 'superseded', undefined, audit('key.revoke', s.id), s)
                : life.createPendingVersion(key.keyid, 1, { hsmKeyId: hex(8), csrPem: 'CSR', adminSessionId: s.id }, audit('key.rotate', s.id), s).then(() => life.cancelPending(key.keyid, 2, () => audit('key.csr_cancel', s.id), s))));
              break;
            default: jobs.push(run('disable or enable', r.subjects.update(approvers[round % 2].id, { enabled: round % 2 === 0 }, audit('subject.disable', s.id), s)));
          }
        }
        await Promise.all(jobs);
      }
    } finally {
      await dbX.close();
      await dbY.close();
    }
    expect(failures).toEqual([]);
    // A closing backend flushes its statistics; give the collector a moment before the last read.
    let n = await deadlocksSoFar();
    for (let i = 0; i < 20 && n === counted; i++) n = await new Promise<number>((res) => setTimeout(() => void deadlocksSoFar().then(res), 50));
    expect(n - counted).toBe(0);
  });
});
