import { hex, outcome, seedKey, twoReplicas } from '../../spec/fixtures';
import { sql } from '../../spec/temp-database';
import type { AuditInput } from '../types';
import { InstallationRepository } from './installation.repository';
import { KeyLifecycleRepository, type NewKeyVersion } from './key-lifecycle.repository';

const TID = '7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01';
const admins = [
  { tid: TID, oid: 'a0000001-0000-4000-8000-000000000001', displayName: 'Ada' },
  { tid: TID, oid: 'a0000001-0000-4000-8000-000000000002', displayName: 'Alan' },
];
const event = (action: string): AuditInput => ({ action, outcome: 'SUCCESS', actorName: 'test' });
const version = (hsmKeyId = hex(8)): NewKeyVersion => ({
  hsmKeyId,
  certificatePem: '-----BEGIN CERTIFICATE-----\nMQ==\n-----END CERTIFICATE-----\n',
  certificateSerial: hex(8),
  notBefore: new Date(Date.now() - 1000),
  notAfter: new Date(Date.now() + 86_400_000),
  issuerKeyid: null,
  issuerVersion: null,
});

describe(InstallationRepository.name, () => {
  const r = twoReplicas('install', 4);

  it('ok of two concurrent bootstraps on two replicas exactly one commits; the other is refused and nothing is doubled', async () => {
    const [a, b] = [new InstallationRepository(r.dbA), new InstallationRepository(r.dbB)];
    const results = await Promise.all([outcome(a.bootstrap(admins, event('installation.bootstrap'))), outcome(b.bootstrap(admins, event('installation.bootstrap')))]);
    expect(results.sort()).toEqual(['invalid_state', 'ok']);
    expect(await sql(r.tmp.url, 'SELECT "oid" FROM "subject" ORDER BY "oid"')).toEqual(admins.map((x) => ({ oid: x.oid })));
    expect(await sql(r.tmp.url, `SELECT 1 FROM "audit_event" WHERE "action" = 'installation.bootstrap'`)).toHaveLength(1);
    expect((await a.get())?.mode).toBe('production');
  });

  it('fail the demo seed on a production installation; the row cannot be changed or doubled', async () => {
    const i = new InstallationRepository(r.dbA);
    expect(await outcome(i.markDemo())).toBe('invalid_state');
    expect(await outcome(sql(r.tmp.url, `INSERT INTO "installation" ("id", "mode") VALUES (2, 'demo')`))).not.toBe('ok');
  });
});

describe(KeyLifecycleRepository.name, () => {
  const r = twoReplicas('lifecycle', 4);

  it('ok a key is created with its version 1', async () => {
    const k = await seedKey(r.a);
    const v = await new KeyLifecycleRepository(r.dbA).versions(k.keyid);
    expect(v.map((x) => [x.version, x.state, x.hsmKeyId])).toEqual([[1, 'ACTIVE', k.hsmKeyId]]);
  });

  it('ok of concurrent new versions from the same version exactly one commits (version_conflict for the other), the key row follows it', async () => {
    const k = await seedKey(r.a);
    const [a, b] = [new KeyLifecycleRepository(r.dbA), new KeyLifecycleRepository(r.dbB)];
    const [va, vb] = [version(), version()];
    const results = await Promise.all([outcome(a.addVersion(k.keyid, 1, va, event('key.rotate'))), outcome(b.addVersion(k.keyid, 1, vb, event('key.rotate')))]);
    expect(results.sort()).toEqual(['conflict', 'ok']);
    const versions = await a.versions(k.keyid);
    expect(versions.map((x) => [x.version, x.state])).toEqual([
      [1, 'RETIRED'],
      [2, 'ACTIVE'],
    ]);
    const key = await r.a.keys.getByKeyid(k.keyid);
    expect({ hsmKeyId: key.hsmKeyId, currentVersion: key.currentVersion }).toEqual({ hsmKeyId: versions[1].hsmKeyId, currentVersion: 2 });
    expect([va.hsmKeyId, vb.hsmKeyId]).toContain(key.hsmKeyId);
  });

  it.each([
    ['retire', (l: KeyLifecycleRepository, keyid: string) => l.retire(keyid, event('key.retire'))],
    ['destroy after retirement', async (l: KeyLifecycleRepository, keyid: string) => l.markDestroyed(keyid, [], event('key.destroy'))],
  ])('ok %s is exactly once under concurrency (invalid_state for the loser, one event)', async (name, act) => {
    const k = await seedKey(r.a);
    if (name !== 'retire') await new KeyLifecycleRepository(r.dbA).retire(k.keyid, event('key.retire'));
    const [a, b] = [new KeyLifecycleRepository(r.dbA), new KeyLifecycleRepository(r.dbB)];
    expect((await Promise.all([outcome(act(a, k.keyid)), outcome(act(b, k.keyid))])).sort()).toEqual(['invalid_state', 'ok']);
    const action = name === 'retire' ? 'key.retire' : 'key.destroy';
    expect(await sql(r.tmp.url, `SELECT 1 FROM "audit_event" WHERE "action" = $1 AND "keyid" = $2`, [action, k.keyid])).toHaveLength(1);
  });

  it.each([
    ['fail a new version of a retired key', 'invalid_state', async (l: KeyLifecycleRepository, keyid: string) => l.addVersion(keyid, 1, version(), event('key.renew'))],
    ['fail retiring a retired key', 'invalid_state', async (l: KeyLifecycleRepository, keyid: string) => l.retire(keyid, event('key.retire'))],
    ['fail an unknown key', 'not_found', async (l: KeyLifecycleRepository) => l.retire(`no-${hex(4)}`, event('key.retire'))],
  ])('%s (%s)', async (_n, code, act) => {
    const k = await seedKey(r.a);
    const l = new KeyLifecycleRepository(r.dbA);
    await l.retire(k.keyid, event('key.retire'));
    expect(await outcome(act(l, k.keyid))).toBe(code);
  });

  it('ok a pending version: the key keeps its version until one import activates it (exactly once across replicas)', async () => {
    const k = await seedKey(r.a);
    const [a, b] = [new KeyLifecycleRepository(r.dbA), new KeyLifecycleRepository(r.dbB)];
    const pendingKey = hex(8);
    const pending = { hsmKeyId: pendingKey, csrPem: 'CSR', adminSessionId: '00000000-0000-4000-8000-000000000001' };
    expect((await a.createPendingVersion(k.keyid, 1, pending, event('key.rotate'))).version).toBe(2);
    expect(await outcome(b.createPendingVersion(k.keyid, 1, { ...pending, hsmKeyId: hex(8) }, event('key.rotate')))).toBe('conflict');
    expect(await outcome(a.addVersion(k.keyid, 1, version(), event('key.rotate')))).toBe('conflict');
    expect((await r.a.keys.getByKeyid(k.keyid)).currentVersion).toBe(1);
    const imported = { ...version(pendingKey), issuerChainPem: 'CHAIN' };
    expect(await outcome(a.activatePendingVersion(k.keyid, 3, imported, event('key.certificate_import')))).toBe('invalid_state');
    expect(await outcome(a.activatePendingVersion(k.keyid, 2, { ...imported, hsmKeyId: hex(8) }, event('key.certificate_import')))).toBe('invalid_state');
    const results = await Promise.all([a, b].map((l) => outcome(l.activatePendingVersion(k.keyid, 2, imported, event('key.certificate_import')))));
    expect(results.sort()).toEqual(['invalid_state', 'ok']);
    const key = await r.a.keys.getByKeyid(k.keyid);
    expect({ v: key.currentVersion, hsm: key.hsmKeyId, chain: key.issuerChainPem }).toEqual({ v: 2, hsm: pendingKey, chain: 'CHAIN' });
    expect(await a.findPendingVersion(k.keyid)).toBeNull();
    expect(await sql(r.tmp.url, `SELECT 1 FROM "audit_event" WHERE "action" = 'key.certificate_import' AND "keyid" = $1`, [k.keyid])).toHaveLength(1);
  });

  describe('one keyid, two tables: key and pending key (ADR 0042)', () => {
    const pending = (keyid: string) => ({ keyid, type: 'ROOT' as const, algorithm: 'EC_P256' as const, hash: 'SHA256' as const, requiredApprovers: 0, hsmKeyId: hex(8), csrPem: 'CSR', adminSessionId: '00000000-0000-4000-8000-000000000001' });
    const key = (keyid: string) => ({ keyid, type: 'ROOT' as const, algorithm: 'EC_P256' as const, hash: 'SHA256' as const, ...version(), parentKeyid: null });
    const certificate = (p: { keyid: string; hsmKeyId: string }) => ({ ...key(p.keyid), hsmKeyId: p.hsmKeyId });

    it.each([1, 2, 3, 4, 5])('ok round %i: a key and a pending key with one keyid on two replicas at once: exactly one commits, conflict for the other', async () => {
      const keyid = `claimed-${hex(4)}`;
      const results = await Promise.all([outcome(r.a.keys.create(key(keyid), event('key.root_ceremony'))), outcome(new KeyLifecycleRepository(r.dbB).createPending(pending(keyid), event('key.root_ceremony')))]);
      expect(results.sort()).toEqual(['conflict', 'ok']);
      const rows = await sql(r.tmp.url, `SELECT (SELECT count(*) FROM "key" WHERE "keyid" = $1)::int + (SELECT count(*) FROM "pending_key" WHERE "keyid" = $1)::int AS "n"`, [keyid]);
      expect(rows).toEqual([{ n: 1 }]);
    });

    const cancelEvent = () => event('key.csr_cancel');
    const disposals = (keyid: string) => sql(r.tmp.url, `SELECT "hsmKeyId", "version" FROM "hsm_key_disposal" WHERE "keyid" = $1`, [keyid]);

    it('ok a cancellation and the import of one pending key on two replicas: exactly one commits; a cancelled key pair is recorded for disposal, an imported one is not', async () => {
      for (let round = 0; round < 4; round++) {
        const keyid = `raced-${hex(4)}`;
        const [a, b] = [new KeyLifecycleRepository(r.dbA), new KeyLifecycleRepository(r.dbB)];
        const p = await a.createPending(pending(keyid), event('key.root_ceremony'));
        const [cancelled, imported] = await Promise.all([outcome(a.cancelPending(keyid, undefined, cancelEvent)), outcome(b.activatePending(keyid, certificate(p), event('key.certificate_import')))]);
        expect([cancelled, imported].sort()).toEqual(['invalid_state', 'ok']);
        const state = await sql(r.tmp.url, `SELECT (SELECT count(*) FROM "key" WHERE "keyid" = $1)::int AS "keys", (SELECT count(*) FROM "pending_key" WHERE "keyid" = $1)::int AS "pending"`, [keyid]);
        expect(state).toEqual([{ keys: imported === 'ok' ? 1 : 0, pending: 0 }]);
        expect(await disposals(keyid)).toEqual(imported === 'ok' ? [] : [{ hsmKeyId: p.hsmKeyId, version: 1 }]);
      }
    });

    it('ok of two cancellations of one pending key on two replicas one decides: the row goes, its key pair is recorded, one event; the disposal is recorded once', async () => {
      const keyid = `twice-${hex(4)}`;
      const [a, b] = [new KeyLifecycleRepository(r.dbA), new KeyLifecycleRepository(r.dbB)];
      const p = await a.createPending(pending(keyid), event('key.root_ceremony'));
      expect(await outcome(a.cancelPending(keyid, 2, cancelEvent))).toBe('invalid_state');
      const results = await Promise.all([outcome(a.cancelPending(keyid, undefined, cancelEvent)), outcome(b.cancelPending(keyid, 1, cancelEvent))]);
      expect(results.sort()).toEqual(['invalid_state', 'ok']);
      expect(await a.findPending(keyid)).toBeNull();
      expect(await outcome(a.activatePending(keyid, certificate(p), event('key.certificate_import')))).toBe('invalid_state');
      expect(await sql(r.tmp.url, `SELECT 1 FROM "audit_event" WHERE "action" = 'key.csr_cancel' AND "keyid" = $1`, [keyid])).toHaveLength(1);
      expect((await a.disposalsDue(20, p.hsmKeyId)).map((d) => [d.keyid, d.version, d.attempts])).toEqual([[keyid, 1, 0]]);
      await a.disposalFailed(p.hsmKeyId, 'the token went away');
      expect((await a.disposalsDue(20, p.hsmKeyId)).map((d) => [d.attempts, d.lastError])).toEqual([[1, 'the token went away']]);
      expect(await Promise.all([a.disposed(p.hsmKeyId, event('key.hsm_dispose')), b.disposed(p.hsmKeyId, event('key.hsm_dispose'))]).then((x) => x.sort())).toEqual([false, true]);
      expect(await disposals(keyid)).toEqual([]);
      expect(await sql(r.tmp.url, `SELECT "details"->>'failedAttempts' AS "n" FROM "audit_event" WHERE "action" = 'key.hsm_dispose' AND "keyid" = $1`, [keyid])).toEqual([{ n: '1' }]);
      // The keyid is free again: a new ceremony claims it.
      expect(await outcome(a.createPending(pending(keyid), event('key.root_ceremony')))).toBe('ok');
    });

    it('ok a pending version is cancelled in one step: the key shows no pending version and imports nothing; a row the earlier cancellation only marked is finished the same way', async () => {
      const k = await seedKey(r.a);
      const l = new KeyLifecycleRepository(r.dbA);
      const pendingKey = hex(8);
      await l.createPendingVersion(k.keyid, 1, { hsmKeyId: pendingKey, csrPem: 'CSR', adminSessionId: '00000000-0000-4000-8000-000000000001' }, event('key.rotate'));
      // As the three-step cancellation left it when interrupted after its first step.
      await sql(r.tmp.url, `UPDATE "pending_key_version" SET "cancelledAt" = now() WHERE "hsmKeyId" = $1`, [pendingKey]);
      expect(await outcome(l.cancelPending(k.keyid, 1, cancelEvent))).toBe('invalid_state');
      expect(await l.cancelPending(k.keyid, 2, cancelEvent)).toMatchObject({ version: 2, hsmKeyId: pendingKey });
      expect(await l.findPendingVersion(k.keyid)).toBeNull();
      expect(await outcome(l.activatePendingVersion(k.keyid, 2, { ...version(pendingKey), issuerChainPem: 'CHAIN' }, event('key.certificate_import')))).toBe('invalid_state');
      expect(await disposals(k.keyid)).toEqual([{ hsmKeyId: pendingKey, version: 2 }]);
      expect(await outcome(l.cancelPending(k.keyid, undefined, cancelEvent))).toBe('invalid_state');
    });

    it('fail a disposal row naming a CKA_ID the database still names: never due (it is kept, not destroyed)', async () => {
      const k = await seedKey(r.a);
      const l = new KeyLifecycleRepository(r.dbA);
      await sql(r.tmp.url, `INSERT INTO "hsm_key_disposal" ("id", "hsmKeyId", "keyid", "version") VALUES (gen_random_uuid(), $1, $2, 1)`, [k.hsmKeyId.toLowerCase(), k.keyid]);
      expect(await l.disposalsDue(20, k.hsmKeyId)).toEqual([]);
      expect((await l.disposalsDue(1000)).map((d) => d.hsmKeyId)).not.toContain(k.hsmKeyId.toLowerCase());
    });
  });

  it('fail destroying an ACTIVE key; revocation marks every version and lists each serial for the issuer CRL', async () => {
    const l = new KeyLifecycleRepository(r.dbA);
    const k = await seedKey(r.a);
    expect(await outcome(l.markDestroyed(k.keyid, [], event('key.destroy')))).toBe('invalid_state');
    await l.addVersion(k.keyid, 1, version(k.hsmKeyId), event('key.renew'));
    await sql(r.tmp.url, `UPDATE "key_version" SET "issuerKeyid" = 'issuer-x' WHERE "keyId" = $1::uuid`, [k.id]);
    await r.a.keys.revoke(k.keyid, 'keyCompromise');
    expect((await l.versions(k.keyid)).map((v) => v.state)).toEqual(['REVOKED', 'REVOKED']);
    expect((await l.versions(k.keyid)).map((v) => [v.issuerKeyid, v.revocationReason])).toEqual([
      ['issuer-x', 'keyCompromise'],
      ['issuer-x', 'keyCompromise'],
    ]);
  });
});
