// Medium tier: the service with its real repositories on a real PostgreSQL (src/testing/medium.ts).
import { randomBytes } from 'node:crypto';
import { Permission } from '@keyserver/api-contract';
import type { Actor } from '@keyserver/authz';
import { AdminSessionRepository, AuditRepository, KeyLifecycleRepository, KeyLimitsRepository, KeyRepository } from '@keyserver/data-access';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { KeysService } from '../keys/keys.service';
import { adminInSession, codeOf, mediumDatabase, seedKey } from '../testing/medium';
import { KeyLimitsService } from './key-limits.service';

describe(`${KeyLimitsService.name} (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_key_limits');
  let audit: AuditRepository;
  let limits: KeyLimitsRepository;
  let service: KeyLimitsService;
  let admin: Actor;
  let session: string;
  let keyid: string;

  beforeAll(async () => {
    audit = new AuditRepository(pg.db);
    limits = new KeyLimitsRepository(pg.db);
    const keys = new KeyRepository(pg.db);
    const views = new KeysService(keys, limits, new KeyLifecycleRepository(pg.db));
    service = new KeyLimitsService(keys, limits, new AdminSessionGate(new AdminSessionRepository(pg.db)), new Audited(audit), views);
    ({ admin, session } = await adminInSession(pg.db, Permission.KeysAdmin));
    keyid = await seedKey(pg.db, { requiredApprovers: 1 });
  });

  const VALID = { maxWindowSeconds: 3600, maxUsagesPerOperation: 10, maxBackdateSeconds: 60, maxStartAheadSeconds: 3600 };
  const requestId = () => `req-${randomBytes(4).toString('hex')}`;

  it.each([
    ['fail without an admin session', () => ({ sessionId: undefined, key: keyid, body: VALID }), 'admin_session_required', () => ({ keyid })],
    ['fail limits out of their bounds (validation, inside the audited wrapper)', () => ({ sessionId: session, key: keyid, body: { ...VALID, maxWindowSeconds: 1 } }), 'validation_failed', () => ({ keyid })],
    ['fail an unknown key', () => ({ sessionId: session, key: 'no-such-key', body: VALID }), 'key_not_found', () => ({ keyid: 'no-such-key' })],
    ['fail a malformed keyid: kept out of the keyid column', () => ({ sessionId: session, key: 'bad\u0000id', body: VALID }), 'key_not_found', () => ({ keyid: null, details: { keyidMalformed: true, keyidLength: 6 } })],
  ] as [string, () => { sessionId: string | undefined; key: string; body: unknown }, string, () => Record<string, unknown>][])('%s: DENIED with its code, limits unchanged', async (_n, input, code, recorded) => {
    const before = await limits.get(keyid);
    const { sessionId, key, body } = input();
    const id = requestId();
    expect(await codeOf(service.set(admin, sessionId, key, body, id))).toBe(code);
    const events = (await audit.list({ requestId: id })).items;
    expect(events.map((e) => ({ action: e.action, outcome: e.outcome, errorCode: e.errorCode }))).toEqual([{ action: 'key.limits', outcome: 'DENIED', errorCode: code }]);
    expect(events[0]).toMatchObject(recorded());
    expect(await limits.get(keyid)).toEqual(before);
  });
});
