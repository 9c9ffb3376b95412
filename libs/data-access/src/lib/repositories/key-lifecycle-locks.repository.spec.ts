import { Client } from 'pg';
import { hex, lockWaiters, outcome, seedKeyBelow, twoReplicas } from '../../spec/fixtures';
import { sql } from '../../spec/temp-database';
import { AUDIT_APPEND_LOCK } from '../audit-hash';
import type { AuditInput, Key } from '../types';
import type { Repositories } from '.';
import { CrlRepository, crlEntriesSha256, type CrlSigner } from './crl.repository';
import { KeyLifecycleRepository } from './key-lifecycle.repository';
import { KeyRepository } from './key.repository';

// docs/adr/0045-key-lifecycle-locks.md: a key's revocation, its issuer's final CRL, renewals under an issuer and
// overlapping revocations serialize on real PostgreSQL, whatever the interleaving.

const PEM = '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n';
const DAY = 86_400_000;
const event = (action: string): AuditInput => ({ action, outcome: 'SUCCESS', actorName: 'test', requestId: null });

const mk = seedKeyBelow;

const newVersion = async (repos: Repositories, lifecycle: KeyLifecycleRepository, keyid: string) => {
  const k = await repos.keys.getByKeyid(keyid);
  const issuer = k.parentKeyid ? await repos.keys.getByKeyid(k.parentKeyid) : null;
  return lifecycle.addVersion(
    keyid,
    k.currentVersion,
    { hsmKeyId: hex(8), certificatePem: PEM, certificateSerial: hex(8), notBefore: new Date(), notAfter: new Date(Date.now() + 300 * DAY), issuerKeyid: issuer?.keyid ?? null, issuerVersion: issuer?.currentVersion ?? null },
    event('key.rotate'),
  );
};

/** A gate a CRL signer waits at while its refresh holds the CRL's lock (the final CRL of a destruction). */
function finalSigner(): { sign: CrlSigner; entered: Promise<void>; open: () => void } {
  let open!: () => void;
  let enter!: () => void;
  const opened = new Promise<void>((res) => (open = res));
  const entered = new Promise<void>((res) => (enter = res));
  const sign: CrlSigner = async (_stored, _entries, _sha, takeNumber) => {
    const crlNumber = await takeNumber(new Date());
    enter();
    await opened;
    return { crlNumber, der: Buffer.from('final'), thisUpdate: new Date(), nextUpdate: new Date(Date.now() + DAY), final: true };
  };
  return { sign, entered, open };
}

describe(KeyRepository.name, () => {
  const r = twoReplicas('key_locks', 6);

  /** Waits until `n` backends of the test database wait for a lock (row or advisory). */
  const waiting = (n: number) => lockWaiters(r.tmp.url, n, 500);
  const settledOrWaiting = (p: Promise<unknown>, n: number) => Promise.race([p.then(() => undefined, () => undefined), waiting(n)]);
  const state = async (keyid: string) => (await sql<{ state: string }>(r.tmp.url, `SELECT "state"::text AS "state" FROM "key" WHERE "keyid" = $1`, [keyid]))[0].state;
  /** Whether the issuer's stored CRL of `version` lists exactly what its scope holds now. */
  const crlListsAll = async (keyid: string) => {
    const crls = new CrlRepository(r.dbA);
    const scope = await crls.scope(keyid, null);
    if (!scope) throw new Error(`no scope ${keyid}`);
    return (await crls.stored(scope.versionId))?.entriesSha256 === crlEntriesSha256(await crls.entries(scope));
  };

  describe('revoke: the issuer signs its final CRL (a destruction) at the same time', () => {
    const retiredUnderRetired = async () => {
      const life = new KeyLifecycleRepository(r.dbA);
      const ca = await mk(r.a, 'CA', await mk(r.a, 'ROOT', null));
      const fw = await mk(r.a, 'FW', ca);
      await life.retire(fw.keyid, event('key.retire'));
      await life.retire(ca.keyid, event('key.retire'));
      return { ca, fw };
    };

    it('fail a RETIRED key revoked while its issuer signs its final CRL: invalid_state, never REVOKED and missing from that CRL', async () => {
      const { ca, fw } = await retiredUnderRetired();
      const crls = new CrlRepository(r.dbA);
      const scope = await crls.scope(ca.keyid, null);
      if (!scope) throw new Error('no scope');
      const gate = finalSigner();
      const refreshed = crls.refresh(scope, gate.sign);
      await gate.entered;
      const revoked = outcome(r.b.keys.revoke(fw.keyid, 'keyCompromise', new Date(), event('key.revoke')));
      // The revocation waits for the final CRL's commit (or, unlocked, commits before it).
      await settledOrWaiting(revoked, 1);
      gate.open();
      expect((await refreshed)?.final).toBe(true);
      expect({ revoked: await revoked, state: await state(fw.keyid), listed: await crlListsAll(ca.keyid) }).toEqual({ revoked: 'invalid_state', state: 'RETIRED', listed: true });
    });

    it('ok a key revoked before its issuer signs its final CRL: the final CRL waits for the commit and lists it', async () => {
      const { ca, fw } = await retiredUnderRetired();
      const crls = new CrlRepository(r.dbB);
      const scope = await crls.scope(ca.keyid, null);
      if (!scope) throw new Error('no scope');
      // The revocation takes its locks, then waits for the audit lock another appender holds before it commits.
      const holder = new Client({ connectionString: r.tmp.url });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK]);
        const revoked = outcome(r.a.keys.revoke(fw.keyid, 'keyCompromise', new Date(), event('key.revoke')));
        await waiting(1);
        const gate = finalSigner();
        gate.open();
        const refreshed = crls.refresh(scope, gate.sign);
        await settledOrWaiting(refreshed, 2);
        await holder.query('COMMIT');
        expect(await revoked).toBe('ok');
        expect((await refreshed)?.final).toBe(true);
      } finally {
        await holder.end();
      }
      expect({ state: await state(fw.keyid), listed: await crlListsAll(ca.keyid) }).toEqual({ state: 'REVOKED', listed: true });
    });
  });

  describe('addVersion: the issuer is locked and must be ACTIVE', () => {
    it.each([
      ['fail a rotation under a RETIRED issuer', (life: KeyLifecycleRepository, ca: Key) => life.retire(ca.keyid, event('key.retire'))],
      ['fail a rotation under a REVOKED issuer', (_life: KeyLifecycleRepository, ca: Key) => r.a.keys.revoke(ca.keyid, 'superseded')],
    ])('%s: invalid_state, no version added', async (_n, change) => {
      const life = new KeyLifecycleRepository(r.dbA);
      const ca = await mk(r.a, 'CA', await mk(r.a, 'ROOT', null));
      const fw = await mk(r.a, 'FW', ca);
      // A retirement leaves the FW key ACTIVE; a revocation takes it along (then the key itself is refused).
      await change(life, ca);
      expect(await outcome(newVersion(r.b, new KeyLifecycleRepository(r.dbB), fw.keyid))).toBe('invalid_state');
      expect((await life.versions(fw.keyid)).length).toBe(1);
    });

    it('ok a new version certified by an issuer version that was rotated since: it names the version that signed it, as a new key does', async () => {
      const life = new KeyLifecycleRepository(r.dbA);
      const ca = await mk(r.a, 'CA', await mk(r.a, 'ROOT', null));
      const fw = await mk(r.a, 'FW', ca);
      const k = await r.a.keys.getByKeyid(fw.keyid);
      // The service read the issuer at version 1 and had it sign; the issuer rotated before the new version commits.
      await newVersion(r.a, life, ca.keyid);
      const signed = { hsmKeyId: hex(8), certificatePem: PEM, certificateSerial: hex(8), notBefore: new Date(), notAfter: new Date(Date.now() + 300 * DAY), issuerKeyid: ca.keyid, issuerVersion: 1 };
      expect(await outcome(new KeyLifecycleRepository(r.dbB).addVersion(fw.keyid, k.currentVersion, signed, event('key.rotate')))).toBe('ok');
      expect((await life.versions(fw.keyid)).map((v) => v.issuerVersion)).toEqual([1, 1]);
    });

    it('fail a rotation racing the retirement of its issuer: it waits for the issuer\'s lock and is refused (invalid_state)', async () => {
      const ca = await mk(r.a, 'CA', await mk(r.a, 'ROOT', null));
      const fw = await mk(r.a, 'FW', ca);
      // The retirement locks the issuer, then waits for the audit lock another appender holds before it commits.
      const holder = new Client({ connectionString: r.tmp.url });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK]);
        const retired = outcome(new KeyLifecycleRepository(r.dbA).retire(ca.keyid, event('key.retire')));
        await waiting(1);
        const rotated = outcome(newVersion(r.b, new KeyLifecycleRepository(r.dbB), fw.keyid));
        await settledOrWaiting(rotated, 2);
        await holder.query('COMMIT');
        expect({ retired: await retired, rotated: await rotated }).toEqual({ retired: 'ok', rotated: 'invalid_state' });
      } finally {
        await holder.end();
      }
      expect((await new KeyLifecycleRepository(r.dbA).versions(fw.keyid)).length).toBe(1);
    });
  });

  describe('destructionPlan: every key below, under the key\'s lock', () => {
    it('fail a CA whose ACTIVE key is two levels down: named in activeBelow', async () => {
      const life = new KeyLifecycleRepository(r.dbA);
      const ca = await mk(r.a, 'CA', await mk(r.a, 'ROOT', null));
      const sub = await mk(r.a, 'CA', ca);
      const fw = await mk(r.a, 'FW', sub);
      await life.retire(sub.keyid, event('key.retire'));
      await life.retire(ca.keyid, event('key.retire'));
      expect(await life.destructionPlan(ca.keyid)).toMatchObject({ state: 'RETIRED', destroyed: false, activeBelow: [fw.keyid], hsmKeyIds: [ca.hsmKeyId] });
      await life.retire(fw.keyid, event('key.retire'));
      expect(await life.destructionPlan(ca.keyid)).toMatchObject({ activeBelow: [] });
    });
  });

  describe('revoke: overlapping revocations and a key created below during the first one\'s read', () => {
    it('ok the revocation whose second round of locks is out of id order is retried, not a 500: the CA and every key below are REVOKED', async () => {
      const ca = await mk(r.a, 'CA', await mk(r.a, 'ROOT', null));
      const [x, y] = [await mk(r.a, 'CA', ca), await mk(r.a, 'CA', ca)];
      // R1 revokes the CA: it locks {CA, x, y} in id order and waits at the last one (G, held below). P (not G, not
      // the CA) gets a key N created below it whose id sorts first, committed after R1's read: R2 revoking P locks N
      // and then waits for P (R1 holds it); R1's second round then waits for N: a deadlock PostgreSQL breaks.
      const sorted = [ca, x, y].sort((a, b) => (a.id < b.id ? -1 : 1));
      const g = sorted[2];
      const p = sorted.slice(0, 2).find((k) => k.id !== ca.id) as Key;
      const nId = '00000000-0000-4000-8000-000000000000';
      const nKeyid = `fw-${hex(5)}`;
      const creator = new Client({ connectionString: r.tmp.url });
      const gater = new Client({ connectionString: r.tmp.url });
      await Promise.all([creator.connect(), gater.connect()]);
      try {
        await creator.query('BEGIN');
        await creator.query(`SELECT 1 FROM "key" WHERE "id" = $1 FOR SHARE`, [p.id]);
        await creator.query(
          `INSERT INTO "key" ("id", "keyid", "type", "algorithm", "hash", "hsmKeyId", "parentId", "certificatePem", "certificateSerial", "notBefore", "notAfter")
           VALUES ($1, $2, 'FW', 'EC_P256', 'SHA256', $3, $4, $5, $6, now(), now() + interval '30 days')`,
          [nId, nKeyid, hex(8), p.id, PEM, hex(8)],
        );
        await creator.query(
          `INSERT INTO "key_version" ("id", "keyId", "version", "hsmKeyId", "certificatePem", "certificateSerial", "notBefore", "notAfter", "issuerKeyid", "issuerVersion")
           SELECT gen_random_uuid(), "id", 1, "hsmKeyId", "certificatePem", "certificateSerial", "notBefore", "notAfter", $2, 1 FROM "key" WHERE "id" = $1`,
          [nId, p.keyid],
        );
        await gater.query('BEGIN');
        await gater.query(`SELECT 1 FROM "key" WHERE "id" = $1 FOR SHARE`, [g.id]);
        const r1 = outcome(r.a.keys.revoke(ca.keyid, 'keyCompromise', new Date(), event('key.revoke')));
        await waiting(1);
        await creator.query('COMMIT');
        // R1 now holds P and waits for G; R2 locks N, then waits for P.
        const r2 = outcome(r.b.keys.revoke(p.keyid, 'superseded', new Date(), event('key.revoke')));
        await waiting(2);
        await gater.query('ROLLBACK');
        const [o1, o2] = [await r1, await r2];
        expect({ o1, o2: ['ok', 'invalid_state'].includes(o2) ? 'ok or invalid_state' : o2 }).toEqual({ o1: 'ok', o2: 'ok or invalid_state' });
      } finally {
        await Promise.all([creator.end(), gater.end()]);
      }
      for (const keyid of [ca.keyid, x.keyid, y.keyid, nKeyid]) expect({ keyid, state: await state(keyid) }).toEqual({ keyid, state: 'REVOKED' });
      expect(await r.a.audit.verifyChain()).toMatchObject({ ok: true });
    });
  });
});
