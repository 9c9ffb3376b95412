import { sql } from '../../spec/temp-database';
import { hex, outcome, seedKey, twoReplicas } from '../../spec/fixtures';
import type { AuditInput, Key } from '../types';
import { DeviceProfileRepository } from './device-profile.repository';

let profilesA: DeviceProfileRepository;
let profilesB: DeviceProfileRepository;

// Two handles = two independent pools, like two API replicas.
const { tmp, dbA, dbB, a } = twoReplicas('devprofile');
beforeAll(async () => {
  profilesA = new DeviceProfileRepository(dbA);
  profilesB = new DeviceProfileRepository(dbB);
});

const audit = (): AuditInput => ({ action: 'key.device_profile', outcome: 'SUCCESS', actorOid: 'admin-oid', requestId: hex(4) });
const profile = (validityDays: number) => ({ validityDays, allowedSanTypes: ['dns'], maxSanCount: 1, dnsDomains: [], uriSchemes: [], keyAgreement: false });

async function seedCa(): Promise<Key> {
  const root = await seedKey(a, { keyid: `root-${hex(3)}` });
  const fw = await a.keys.getByKeyid(root.keyid);
  return a.keys.create({ ...fw, keyid: `ca-${hex(4)}`, type: 'CA', hsmKeyId: hex(8), certificateSerial: hex(8), parentKeyid: root.keyid, profile: {} });
}

describe(DeviceProfileRepository.name, () => {
  it('replaces the profile and records before and after in the same transaction', async () => {
    const ca = await seedCa();
    const key = await profilesA.set(ca.keyid, profile(30), audit());
    expect(key.profile).toEqual(profile(30));
    const events = (await a.audit.list({ action: 'key.device_profile', keyid: ca.keyid, limit: 10 })).items;
    expect(events).toEqual([expect.objectContaining({ keyid: ca.keyid, details: { deviceProfile: { before: {}, after: profile(30) } } })]);
  });

  it.each([
    ['fail a FW key', async () => (await seedKey(a)).keyid, 'invalid_state'],
    ['fail an unknown key', async () => `nope-${hex(3)}`, 'not_found'],
  ])('%s', async (_n, keyid, code) => {
    expect(await outcome(profilesA.set(await keyid(), profile(30), audit()))).toBe(code);
  });

  it('rolls the change back when its audit event cannot be written', async () => {
    const ca = await seedCa();
    const name = `fail_audit_${hex(4)}`;
    await sql(tmp.url, `CREATE FUNCTION "${name}"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by test' USING ERRCODE = 'KS999'; END; $$`);
    await sql(tmp.url, `CREATE TRIGGER "${name}" BEFORE INSERT ON "audit_event" FOR EACH ROW WHEN (NEW."keyid" = '${ca.keyid}') EXECUTE FUNCTION "${name}"()`);
    try {
      await expect(profilesA.set(ca.keyid, profile(30), audit())).rejects.toBeDefined();
    } finally {
      await sql(tmp.url, `DROP TRIGGER "${name}" ON "audit_event"`);
      await sql(tmp.url, `DROP FUNCTION "${name}"()`);
    }
    expect((await a.keys.getByKeyid(ca.keyid)).profile).toEqual({});
  });

  it('serialises concurrent changes from two replicas: every "before" is the previous "after"', async () => {
    const ca = await seedCa();
    const days = [10, 20, 30, 40, 50, 60];
    await Promise.all(days.map((d, i) => (i % 2 ? profilesA : profilesB).set(ca.keyid, profile(d), audit())));
    const events = (await a.audit.list({ action: 'key.device_profile', keyid: ca.keyid, limit: 50 })).items.sort((x, y) => Number(BigInt(x.seq) - BigInt(y.seq)));
    const changes = events.map((e) => (e.details as { deviceProfile: { before: { validityDays?: number }; after: { validityDays: number } } }).deviceProfile);
    expect(changes).toHaveLength(days.length);
    expect(changes[0].before).toEqual({});
    for (let i = 1; i < changes.length; i++) expect(changes[i].before.validityDays).toBe(changes[i - 1].after.validityDays);
    expect((await a.keys.getByKeyid(ca.keyid)).profile).toEqual(profile(changes[changes.length - 1].after.validityDays));
  });

  it('the database refuses a profile that is not a JSON object', async () => {
    const ca = await seedCa();
    await expect(sql(tmp.url, `UPDATE "key" SET "profile" = '[]' WHERE "keyid" = '${ca.keyid}'`)).rejects.toThrow(/key_profile_is_object/);
  });
});
