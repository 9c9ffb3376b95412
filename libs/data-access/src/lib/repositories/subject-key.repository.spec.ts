import { createEmptyDatabase, type TempDatabase } from '../../spec/temp-database';
import { hex, outcome, repositories, seedKey } from '../../spec/fixtures';
import { createDb, type Db } from '../db';
import { migrateDatabase } from '../migrate/migrator';
import type { Repositories } from '.';
import { KeyRepository } from './key.repository';
import { SubjectRepository } from './subject.repository';

let tmp: TempDatabase;
let db: Db;
let r: Repositories;

beforeAll(async () => {
  tmp = await createEmptyDatabase('subjkey');
  await migrateDatabase(tmp.url);
  db = createDb(tmp.url, { poolSize: 4 });
  r = repositories(db);
});
afterAll(async () => {
  await db?.close();
  await tmp?.drop();
});

describe(SubjectRepository.name, () => {
  it('flattens natures and per-key permissions over all roles of a subject', async () => {
    const fw = await seedKey(r, { keyid: 'demo-fw-dev' });
    const ca = await seedKey(r, { keyid: 'demo-ca' });
    await r.subjects.upsertRole('signers', ['ORDERER', 'SIGNER']);
    await r.subjects.upsertRole('approvers', ['APPROVER', 'SIGNER'], 'four eyes');
    await r.subjects.setRoleKeyPermissions('signers', fw.keyid, ['ORDER', 'SIGN']);
    await r.subjects.setRoleKeyPermissions('approvers', fw.keyid, ['APPROVE', 'SIGN']);
    await r.subjects.setRoleKeyPermissions('approvers', ca.keyid, ['ISSUE']);
    const s = await r.subjects.create({ kind: 'USER', tid: 't1', oid: 'oid-alice', displayName: 'Alice', roles: ['signers', 'approvers'] });
    expect(await r.subjects.findByTidOid('t1', 'oid-alice')).toMatchObject({
      id: s.id,
      enabled: true,
      roles: ['approvers', 'signers'],
      natures: ['APPROVER', 'ORDERER', 'SIGNER'],
      keyPermissions: { 'demo-fw-dev': ['APPROVE', 'ORDER', 'SIGN'], 'demo-ca': ['ISSUE'] },
    });
    expect(await r.subjects.findByTidOid('t2', 'oid-alice')).toBeNull();

    await r.subjects.update(s.id, { roles: ['signers'], displayName: 'Alice B.' });
    await r.subjects.setRoleKeyPermissions('signers', fw.keyid, []);
    expect(await r.subjects.findByTidOid('t1', 'oid-alice')).toMatchObject({ displayName: 'Alice B.', natures: ['ORDERER', 'SIGNER'], keyPermissions: {} });
    expect((await r.subjects.disable(s.id)).enabled).toBe(false);
  });

  it.each([
    ['fail conflict for a duplicate (tid, oid)', 'dup', 'conflict'],
    ['fail not_found for an unknown role', 'role', 'not_found'],
  ] as const)('%s', async (_n, kind, expected) => {
    const oid = hex(8);
    if (kind === 'dup') await r.subjects.create({ kind: 'CLIENT', tid: 't1', oid, displayName: 'ci' });
    const p = r.subjects.create({ kind: 'CLIENT', tid: 't1', oid, displayName: 'ci', roles: kind === 'role' ? ['nope'] : [] });
    expect(await outcome(p)).toBe(expected);
    if (kind === 'role') expect(await r.subjects.findByTidOid('t1', oid)).toBeNull();
  });

  it('counts unknown principals by (tid, oid)', async () => {
    const first = await r.subjects.recordUnknownPrincipal({ tid: 't1', oid: 'stranger', kind: 'USER', username: 'x@y' });
    const again = await r.subjects.recordUnknownPrincipal({ tid: 't1', oid: 'stranger', kind: 'USER', azp: 'spa' });
    expect(first.attempts).toBe(1);
    expect(again).toMatchObject({ attempts: 2, azp: 'spa', firstSeenAt: first.firstSeenAt });
    expect((await r.subjects.listUnknownPrincipals()).map((u) => u.oid)).toContain('stranger');
  });
});

describe(KeyRepository.name, () => {
  it('creates a key chain, lists, revokes once and sets approvers', async () => {
    const root = await seedKey(r, { keyid: `root-${hex(3)}` });
    const child = await r.keys.create({ ...(await r.keys.getByKeyid(root.keyid)), keyid: `ca-${hex(3)}`, type: 'CA', hsmKeyId: hex(8).toUpperCase(), parentKeyid: root.keyid, profile: { pathLen: 0 } });
    expect(child).toMatchObject({ parentKeyid: root.keyid, profile: { pathLen: 0 }, crlNumber: 0n, state: 'ACTIVE' });
    expect(child.hsmKeyId).toBe(child.hsmKeyId.toLowerCase());
    expect((await r.keys.list({ type: 'CA' })).map((k) => k.keyid)).toContain(child.keyid);
    expect((await r.keys.setRequiredApprovers(child.keyid, 2)).requiredApprovers).toBe(2);
    expect(await outcome(r.keys.setRequiredApprovers(child.keyid, -1))).toBe('invalid_input');
    expect((await r.keys.revoke(child.keyid, 'superseded')).state).toBe('REVOKED');
    expect(await outcome(r.keys.revoke(child.keyid, 'again'))).toBe('invalid_state');
    expect(await outcome(r.keys.getByKeyid('missing'))).toBe('not_found');
    expect(await outcome(r.keys.create({ ...child, hsmKeyId: hex(8), parentKeyid: null, profile: {} }))).toBe('conflict');
  });

  it('lists by keyid, or by type in the hierarchy order (ROOT, CA, FW) then keyid, with state and type filters', async () => {
    const tag = hex(3);
    const fw = await seedKey(r, { keyid: `a-${tag}-fw` });
    const base = await r.keys.getByKeyid(fw.keyid);
    const root = await r.keys.create({ ...base, keyid: `c-${tag}-root`, type: 'ROOT', hsmKeyId: hex(8), parentKeyid: null, profile: {} });
    // Each certificate of one issuer has its own serial (the issuer's serial register, ADR 0020 addendum).
    const ca = await r.keys.create({ ...base, keyid: `b-${tag}-ca`, type: 'CA', hsmKeyId: hex(8), certificateSerial: hex(8), parentKeyid: root.keyid, profile: {} });
    const fw2 = await r.keys.create({ ...base, keyid: `a-${tag}-fw2`, hsmKeyId: hex(8), certificateSerial: hex(8), parentKeyid: root.keyid, profile: {} });
    await r.keys.revoke(fw2.keyid, 'superseded');
    const mine = (keys: { keyid: string }[]) => keys.map((k) => k.keyid).filter((id) => id.includes(tag));
    expect(mine(await r.keys.list())).toEqual([fw.keyid, fw2.keyid, ca.keyid, root.keyid]);
    expect(mine(await r.keys.list({}, 'type'))).toEqual([root.keyid, ca.keyid, fw.keyid, fw2.keyid]);
    expect(mine(await r.keys.list({ state: 'REVOKED' }, 'type'))).toEqual([fw2.keyid]);
    expect(mine(await r.keys.list({ type: 'FW', state: 'ACTIVE' }, 'type'))).toEqual([fw.keyid]);
    expect((await r.keys.list({ state: 'REVOKED' })).find((k) => k.keyid === fw2.keyid)).toMatchObject({ parentKeyid: root.keyid, revocationReason: 'superseded' });
  });
});
