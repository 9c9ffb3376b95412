// Medium tier: the device-profile service with its real repositories and admin-session gate on a real PostgreSQL,
// wired by constructor exactly as the composition root wires it (src/testing/medium.ts).
import { randomBytes } from 'node:crypto';
import { DEFAULT_DEVICE_PROFILE, Permission } from '@keyserver/api-contract';
import { AdminSessionRepository, AuditRepository, DeviceProfileRepository, KeyRepository, type Db } from '@keyserver/data-access';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { adminInSession, codeOf, mediumActor, mediumDatabase, seedKey } from '../testing/medium';
import { DeviceProfileService } from './device-profile.service';

describe(`${DeviceProfileService.name} (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_device_profile');
  let db: Db;
  let audit: AuditRepository;
  let service: DeviceProfileService;

  beforeAll(async () => {
    db = pg.db;
    audit = new AuditRepository(db);
    service = new DeviceProfileService(new KeyRepository(db), new DeviceProfileRepository(db), new AdminSessionGate(new AdminSessionRepository(db)), new Audited(audit));
  });

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  const narrowed = { ...DEFAULT_DEVICE_PROFILE, validityDays: 90, allowedSanTypes: ['dns'], dnsDomains: ['devices.example'] };

  it('stores a CA key\'s profile set by an administrator in an ACTIVE session: read back as set, one SUCCESS event naming the session', async () => {
    const keyid = await seedKey(db, { type: 'CA', prefix: 'ca' });
    const { admin, session } = await adminInSession(db, Permission.KeysAdmin);
    const rid = requestId();
    expect(await service.set(admin, session, keyid, narrowed, rid)).toEqual({ keyid, ...narrowed });
    const reader = await mediumActor(db, { natures: ['PROVISIONER'], grants: ['ISSUE'], keyids: [keyid] }, Permission.KeysRead);
    expect(await service.get(reader, keyid)).toEqual({ keyid, ...narrowed });
    const events = (await audit.list({ action: 'key.device_profile', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.keyid, e.adminSessionId])).toEqual([['SUCCESS', keyid, session]]);
  });

  it.each([
    ['fail a change outside an administrative session', 'no-session', 'admin_session_required'],
    ['fail a profile that does not validate', 'bad-body', 'validation_failed'],
    ['fail a profile on a FW key', 'fw-key', 'device_profile_not_applicable'],
    ['fail a profile on a key that does not exist', 'no-key', 'key_not_found'],
  ] as const)('%s: refused with its code, the stored profile unchanged, one DENIED event', async (_n, kind, code) => {
    const keyid = kind === 'no-key' ? `ca-${randomBytes(4).toString('hex')}` : await seedKey(db, { type: kind === 'fw-key' ? 'FW' : 'CA', prefix: 'ca' });
    const { admin, session } = await adminInSession(db, Permission.KeysAdmin);
    const rid = requestId();
    const body = kind === 'bad-body' ? { ...narrowed, validityDays: -1 } : narrowed;
    expect(await codeOf(service.set(admin, kind === 'no-session' ? undefined : session, keyid, body, rid))).toBe(code);
    if (kind !== 'no-key') expect((await new KeyRepository(db).findByKeyid(keyid))?.profile).toEqual({});
    const events = (await audit.list({ action: 'key.device_profile', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode, e.keyid])).toEqual([['DENIED', code, keyid]]);
  });

  it.each([
    ['ok the profile of a CA key the reader holds a grant on', 'granted', 'ok'],
    ['fail a CA key the reader holds no grant on (invisible to him)', 'stranger', 'key_not_found'],
    ['fail a FW key (only CA keys have a device profile)', 'fw-key', 'device_profile_not_applicable'],
  ] as const)('%s: the read answers with its code', async (_n, kind, code) => {
    const keyid = await seedKey(db, { type: kind === 'fw-key' ? 'FW' : 'CA', prefix: 'ca' });
    const reader = await mediumActor(db, { natures: ['PROVISIONER'], grants: ['ISSUE'], keyids: kind === 'stranger' ? [] : [keyid] }, Permission.KeysRead);
    expect(await codeOf(service.get(reader, keyid))).toBe(code);
  });
});
