import { sql } from '../../spec/temp-database';
import { hex, outcome, seedKey, seedSubject, twoReplicas } from '../../spec/fixtures';
import type { AuditInput } from '../types';

// Two handles = two independent pools, like two API replicas.
const { tmp, a, b } = twoReplicas('admaudit');

const audit = (action: string, details: Record<string, unknown> = {}): AuditInput => ({ action, outcome: 'SUCCESS', actorOid: 'admin-oid', requestId: hex(4), details });

/**
 * Runs `fn` while every append of `action` to the audit table fails (a temporary trigger that raises, like a
 * database that breaks between the change and its event), and returns the SQLSTATE `fn` rejected with.
 */
async function withFailingAudit(action: string, fn: () => Promise<unknown>): Promise<string> {
  const name = `fail_audit_${hex(4)}`;
  await sql(tmp.url, `CREATE FUNCTION "${name}"() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'audit append refused by test' USING ERRCODE = 'KS999'; END; $$`);
  await sql(tmp.url, `CREATE TRIGGER "${name}" BEFORE INSERT ON "audit_event" FOR EACH ROW WHEN (NEW."action" = '${action}') EXECUTE FUNCTION "${name}"()`);
  try {
    await fn();
    return 'ok';
  } catch (err) {
    return sqlStateOf(err) ?? 'unknown';
  } finally {
    await sql(tmp.url, `DROP TRIGGER "${name}" ON "audit_event"`);
    await sql(tmp.url, `DROP FUNCTION "${name}"()`);
  }
}

/** The PostgreSQL SQLSTATE under a Prisma error (meta.driverAdapterError.cause.originalCode). */
function sqlStateOf(err: unknown): string | undefined {
  const cause = (err as { meta?: { driverAdapterError?: { cause?: { originalCode?: unknown } } } } | null)?.meta?.driverAdapterError?.cause;
  return typeof cause?.originalCode === 'string' ? cause.originalCode : undefined;
}

const eventsOf = async (action: string, keyid?: string) => (await a.audit.list({ action, keyid, limit: 500 })).items;

describe('KeyRepository changes with their audit event', () => {
  it('writes a key and its creation event together', async () => {
    const keyid = `fw-${hex(4)}`;
    const key = await seedKeyWithAudit(keyid, audit('key.create', { issuer: 'root' }));
    expect(key.keyid).toBe(keyid);
    expect(await eventsOf('key.create', keyid)).toEqual([expect.objectContaining({ keyid, outcome: 'SUCCESS', details: { issuer: 'root' } })]);
  });

  it('rolls back a key creation when its audit event cannot be written', async () => {
    const keyid = `fw-${hex(4)}`;
    expect(await withFailingAudit('key.create', () => seedKeyWithAudit(keyid, audit('key.create')))).toBe('KS999');
    expect(await a.keys.findByKeyid(keyid)).toBeNull();
    expect(await eventsOf('key.create', keyid)).toEqual([]);
  });

  it('rolls back a key revocation when its audit event cannot be written', async () => {
    const key = await seedKey(a);
    expect(await withFailingAudit('key.revoke', () => a.keys.revoke(key.keyid, 'keyCompromise', undefined, audit('key.revoke')))).toBe('KS999');
    expect(await a.keys.getByKeyid(key.keyid)).toMatchObject({ state: 'ACTIVE', revokedAt: null, revocationReason: null });
    expect(await eventsOf('key.revoke', key.keyid)).toEqual([]);
    // Nothing half-written: the same revocation succeeds once the audit log works again.
    expect((await a.keys.revoke(key.keyid, 'keyCompromise', undefined, audit('key.revoke', { reason: 'keyCompromise' }))).state).toBe('REVOKED');
    expect(await eventsOf('key.revoke', key.keyid)).toEqual([expect.objectContaining({ details: { reason: 'keyCompromise' } })]);
  });

  it('rolls back a change of required approvers when its audit event cannot be written', async () => {
    const key = await seedKey(a, { requiredApprovers: 1 });
    expect(await withFailingAudit('key.update', () => a.keys.setRequiredApprovers(key.keyid, 3, audit('key.update')))).toBe('KS999');
    expect((await a.keys.getByKeyid(key.keyid)).requiredApprovers).toBe(1);
    expect(await eventsOf('key.update', key.keyid)).toEqual([]);
  });

  it('revokes a key exactly once and audits only that revocation when replicas revoke concurrently', async () => {
    const key = await seedKey(a);
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => outcome((i % 2 ? a : b).keys.revoke(key.keyid, `reason-${i}`, undefined, audit('key.revoke', { reason: `reason-${i}` })))),
    );
    expect(results.filter((r) => r === 'ok')).toHaveLength(1);
    expect(results.filter((r) => r !== 'ok')).toEqual(Array(7).fill('invalid_state'));
    const events = await eventsOf('key.revoke', key.keyid);
    expect(events).toHaveLength(1);
    expect((await a.keys.getByKeyid(key.keyid)).revocationReason).toBe(events[0].details['reason']);
  });

  it('records before/after values that chain when replicas change required approvers concurrently', async () => {
    const key = await seedKey(a, { requiredApprovers: 0 });
    await Promise.all([1, 2, 3, 4, 5, 6].map((n, i) => (i % 2 ? a : b).keys.setRequiredApprovers(key.keyid, n, audit('key.update'))));
    const changes = (await eventsOf('key.update', key.keyid))
      .reverse()
      .map((e) => e.details['requiredApprovers'] as { before: number; after: number });
    expect(changes).toHaveLength(6);
    // In commit order each change saw the previous one's value: 0 -> x -> y ... -> the stored value.
    expect(changes[0].before).toBe(0);
    changes.slice(1).forEach((c, i) => expect(c.before).toBe(changes[i].after));
    expect(new Set(changes.map((c) => c.after))).toEqual(new Set([1, 2, 3, 4, 5, 6]));
    expect((await a.keys.getByKeyid(key.keyid)).requiredApprovers).toBe(changes[5].after);
  });
});

describe('SubjectRepository changes with their audit event', () => {
  it('writes subjects and roles with their events, the event naming the new subject and the role before and after', async () => {
    const key = await seedKey(a);
    await a.subjects.upsertRole(`base-${hex(3)}`, ['ORDERER']);
    const name = `role-${hex(3)}`;
    const role = await a.subjects.createRole({ name, natures: ['SIGNER', 'ORDERER'], keys: [{ keyid: key.keyid, permissions: ['SIGN', 'ORDER'] }] }, audit('role.create'));
    expect(role).toEqual({ name, description: '', natures: ['ORDERER', 'SIGNER'], keys: [{ keyid: key.keyid, permissions: ['ORDER', 'SIGN'] }] });
    expect(await outcome(a.subjects.createRole({ name, natures: [] }))).toBe('conflict');
    expect(await outcome(a.subjects.createRole({ name: `r-${hex(3)}`, natures: [], keys: [{ keyid: 'nope', permissions: ['SIGN'] }] }))).toBe('not_found');
    expect((await eventsOf('role.create'))[0].details).toEqual({ role });

    const changed = await a.subjects.updateRole(name, { description: 'signers', keys: [] }, audit('role.update'));
    expect(changed).toEqual({ before: role, after: { ...role, description: 'signers', keys: [] } });
    expect((await eventsOf('role.update'))[0].details).toEqual(changed);
    expect(await outcome(a.subjects.updateRole('no-such-role', { natures: [] }))).toBe('not_found');

    const s = await a.subjects.create({ kind: 'USER', tid: 't1', oid: hex(16), displayName: 'Nora', roles: [name] }, audit('subject.create', { displayName: 'Nora' }));
    expect((await eventsOf('subject.create'))[0].details).toEqual({ subjectId: s.id, displayName: 'Nora' });
    await a.subjects.update(s.id, { enabled: false }, audit('subject.disable', { subjectId: s.id, changes: { enabled: false } }));
    expect((await eventsOf('subject.disable'))[0].details).toEqual({ subjectId: s.id, changes: { enabled: false }, before: { enabled: true } });
  });

  it('records in a subject change the values it replaced, and only those', async () => {
    const [r1, r2] = [`role-${hex(3)}`, `role-${hex(3)}`];
    await a.subjects.upsertRole(r1, ['ORDERER']);
    await a.subjects.upsertRole(r2, ['SIGNER']);
    const s = await seedSubject(a, 'Ada');
    await a.subjects.update(s.id, { roles: [r2, r1] });
    await a.subjects.update(s.id, { displayName: 'Ada L.', roles: [r2] }, audit('subject.update', { subjectId: s.id }));
    const [event] = (await eventsOf('subject.update')).filter((e) => e.details['subjectId'] === s.id);
    expect(event.details['before']).toEqual({ displayName: 'Ada', roles: [r1, r2].sort() });
    expect(await outcome(a.subjects.update('not-a-uuid', { enabled: false }))).toBe('not_found');
  });

  it('rolls back a subject registration when its audit event cannot be written', async () => {
    const role = `role-${hex(3)}`;
    await a.subjects.upsertRole(role, ['ORDERER']);
    const oid = hex(16);
    expect(await withFailingAudit('subject.create', () => a.subjects.create({ kind: 'USER', tid: 't1', oid, displayName: 'Nora', roles: [role] }, audit('subject.create')))).toBe('KS999');
    expect(await a.subjects.findByTidOid('t1', oid)).toBeNull();
    expect(await sql(tmp.url, 'SELECT 1 FROM "subject" WHERE "oid" = $1', [oid])).toEqual([]);
  });

  it('rolls back a subject change when its audit event cannot be written', async () => {
    const [r1, r2] = [`role-${hex(3)}`, `role-${hex(3)}`];
    await a.subjects.upsertRole(r1, ['ORDERER']);
    await a.subjects.upsertRole(r2, ['SIGNER']);
    const s = await seedSubject(a, 'Ada');
    await a.subjects.update(s.id, { roles: [r1] });
    const change = { displayName: 'Mallory', enabled: false, roles: [r2] };
    expect(await withFailingAudit('subject.disable', () => a.subjects.update(s.id, change, audit('subject.disable')))).toBe('KS999');
    expect(await a.subjects.findByTidOid(s.tid, s.oid)).toMatchObject({ displayName: 'Ada', enabled: true, roles: [r1] });
  });

  it('rolls back a role creation when its audit event cannot be written', async () => {
    const key = await seedKey(a);
    const name = `role-${hex(3)}`;
    expect(await withFailingAudit('role.create', () => a.subjects.createRole({ name, natures: ['SIGNER'], keys: [{ keyid: key.keyid, permissions: ['SIGN'] }] }, audit('role.create')))).toBe('KS999');
    expect((await a.subjects.listRoles()).map((r) => r.name)).not.toContain(name);
    expect(await sql(tmp.url, 'SELECT 1 FROM "role_key_permission" g JOIN "key" k ON k."id" = g."keyId" WHERE k."keyid" = $1', [key.keyid])).toEqual([]);
  });

  it('rolls back a role change when its audit event cannot be written', async () => {
    const [k1, k2] = [await seedKey(a), await seedKey(a)];
    const name = `role-${hex(3)}`;
    const role = await a.subjects.createRole({ name, description: 'old', natures: ['ORDERER'], keys: [{ keyid: k1.keyid, permissions: ['ORDER'] }] });
    const change = { description: 'new', natures: ['ADMINISTRATOR' as const], keys: [{ keyid: k2.keyid, permissions: ['SIGN' as const] }] };
    expect(await withFailingAudit('role.update', () => a.subjects.updateRole(name, change, audit('role.update')))).toBe('KS999');
    const { before } = await a.subjects.updateRole(name, {});
    expect(before).toEqual(role);
  });

  it('records the true role before each change when replicas change a role concurrently', async () => {
    const name = `role-${hex(3)}`;
    await a.subjects.createRole({ name, description: 'd0', natures: [] });
    await Promise.all([1, 2, 3, 4].map((n, i) => (i % 2 ? a : b).subjects.updateRole(name, { description: `d${n}` }, audit('role.update'))));
    const changes = (await eventsOf('role.update'))
      .filter((e) => (e.details['after'] as { name: string }).name === name)
      .reverse()
      .map((e) => e.details as { before: { description: string }; after: { description: string } });
    expect(changes).toHaveLength(4);
    expect(changes[0].before.description).toBe('d0');
    changes.slice(1).forEach((c, i) => expect(c.before.description).toBe(changes[i].after.description));
  });
});

function seedKeyWithAudit(keyid: string, event: AuditInput) {
  const now = Date.now();
  return a.keys.create(
    {
      keyid,
      type: 'FW',
      algorithm: 'EC_P256',
      hash: 'SHA256',
      requiredApprovers: 0,
      hsmKeyId: hex(8),
      certificatePem: '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n',
      certificateSerial: hex(8),
      notBefore: new Date(now - 86_400_000),
      notAfter: new Date(now + 365 * 86_400_000),
    },
    event,
  );
}
