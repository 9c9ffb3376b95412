import fc from 'fast-check';
import { hex, outcome, seedKeyBelow, seedSubject, window, twoReplicas } from '../../spec/fixtures';
import { signRequest } from '../../spec/sign-path';
import { sql } from '../../spec/temp-database';
import type { AuditInput, Key } from '../types';
import type { Repositories } from '.';
import { CrlRepository } from './crl.repository';
import { KeyLifecycleRepository } from './key-lifecycle.repository';
import { KeyRepository } from './key.repository';

// docs/adr/0041-revocation-below-a-revoked-ca.md: revoking a CA revokes, in the same transaction, every key below it.

const PEM = '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n';
const DAY = 86_400_000;
const event = (action: string, requestId: string | null = null, details?: Record<string, unknown>): AuditInput => ({ action, outcome: 'SUCCESS', actorName: 'test', requestId, details });

const mk = seedKeyBelow;

/** A new version of `keyid` certified by its issuer's current version: a renewal (same key pair) or a rotation. */
async function newVersion(repos: Repositories, lifecycle: KeyLifecycleRepository, keyid: string, kind: 'renew' | 'rotate') {
  const k = await repos.keys.getByKeyid(keyid);
  const issuer = k.parentKeyid ? await repos.keys.getByKeyid(k.parentKeyid) : null;
  return lifecycle.addVersion(
    keyid,
    k.currentVersion,
    {
      hsmKeyId: kind === 'rotate' ? hex(8) : k.hsmKeyId,
      certificatePem: PEM,
      certificateSerial: hex(8),
      notBefore: new Date(Date.now() - 1000),
      notAfter: new Date(Date.now() + 300 * DAY),
      issuerKeyid: issuer?.keyid ?? null,
      issuerVersion: issuer?.currentVersion ?? null,
    },
    event(`key.${kind}`),
  );
}

type Row = { keyid: string; state: string; reason: string | null; revokedAt: Date | null; destroyed: boolean; versions: string[]; versionReasons: (string | null)[] };

describe(KeyRepository.name, () => {
  const r = twoReplicas('revoke_below', 6);

  const rows = async (keyids: string[]): Promise<Record<string, Row>> => {
    const found = await sql<Row>(
      r.tmp.url,
      `SELECT k."keyid", k."state"::text AS "state", k."revocationReason" AS "reason", k."revokedAt", k."destroyedAt" IS NOT NULL AS "destroyed",
              array_agg(v."state"::text ORDER BY v."version") AS "versions", array_agg(v."revocationReason" ORDER BY v."version") AS "versionReasons"
       FROM "key" k JOIN "key_version" v ON v."keyId" = k."id" WHERE k."keyid" = ANY($1::text[]) GROUP BY k."id"`,
      [keyids],
    );
    return Object.fromEntries(found.map((x) => [x.keyid, x]));
  };

  /** Keys (and key versions) that are not REVOKED although a key above them is: what must never exist. */
  const activeBelowRevoked = (databaseUrl: string) =>
    sql<{ keyid: string }>(
      databaseUrl,
      `WITH RECURSIVE below AS (
         SELECT c."id", c."keyid", c."state", c."destroyedAt" FROM "key" p JOIN "key" c ON c."parentId" = p."id" WHERE p."state" = 'REVOKED'
         UNION SELECT c."id", c."keyid", c."state", c."destroyedAt" FROM below b JOIN "key" c ON c."parentId" = b."id")
       SELECT b."keyid" FROM below b WHERE b."destroyedAt" IS NULL
         AND (b."state" <> 'REVOKED' OR EXISTS (SELECT 1 FROM "key_version" v WHERE v."keyId" = b."id" AND v."state" <> 'REVOKED'))
       ORDER BY b."keyid"`,
    );

  describe('revoke: a ROOT -> CA -> sub-CA -> FW chain', () => {
    const at = new Date('2026-12-20T10:00:00.000Z');
    const earlier = new Date('2026-12-01T10:00:00.000Z');
    const requestId = `req-${hex(4)}`;
    let k: Record<'root' | 'ca' | 'sub' | 'fw' | 'fwRetired' | 'tsa' | 'fwEarlier' | 'gone' | 'belowGone' | 'sibling' | 'siblingFw', Key>;
    let revoked: Awaited<ReturnType<KeyRepository['revoke']>>;
    let opOnFw: { opId: string; ordererId: string };

    beforeAll(async () => {
      const life = new KeyLifecycleRepository(r.dbA);
      const root = await mk(r.a, 'ROOT', null);
      const ca = await mk(r.a, 'CA', root); // CA v1 by ROOT v1
      const sub = await mk(r.a, 'CA', ca); // sub-CA v1 by CA v1
      await newVersion(r.a, life, ca.keyid, 'rotate'); // CA v2 (a new key pair) by ROOT v1
      await newVersion(r.a, life, sub.keyid, 'renew'); // sub-CA v2 (same key pair) by CA v2
      const fw = await mk(r.a, 'FW', sub); // FW v1 by sub-CA v2
      await newVersion(r.a, life, fw.keyid, 'rotate'); // FW v2 by sub-CA v2
      const fwRetired = await mk(r.a, 'FW', sub);
      await life.retire(fwRetired.keyid, event('key.retire'));
      const tsa = await mk(r.a, 'TSA', ca); // by CA v2
      const fwEarlier = await mk(r.a, 'FW', ca);
      await r.a.keys.revoke(fwEarlier.keyid, 'superseded', earlier);
      // A destroyed CA below (RETIRED first) with a RETIRED key below it.
      const gone = await mk(r.a, 'CA', ca);
      const belowGone = await mk(r.a, 'FW', gone);
      await life.retire(belowGone.keyid, event('key.retire'));
      await life.retire(gone.keyid, event('key.retire'));
      await life.markDestroyed(gone.keyid, [], event('key.destroy'));
      const sibling = await mk(r.a, 'CA', root);
      const siblingFw = await mk(r.a, 'FW', sibling);
      k = { root, ca, sub, fw, fwRetired, tsa, fwEarlier, gone, belowGone, sibling, siblingFw };
      // An operation opened on the FW key before the revocation.
      const orderer = await seedSubject(r.a);
      const op = await r.a.operations.create({ description: 'release 1.0', ordererId: orderer.id, ...window(), keys: [{ keyid: fw.keyid, usagesAllowed: 3 }] });
      opOnFw = { opId: op.id, ordererId: orderer.id };
      revoked = await r.a.keys.revoke(ca.keyid, 'keyCompromise', at, event('key.revoke', requestId, { reason: 'keyCompromise' }));
    });

    it('ok every key below the CA that still has its HSM objects is REVOKED with every version; the ROOT and the sibling CA stay ACTIVE', async () => {
      const all = await rows(Object.values(k).map((x) => x.keyid));
      const view = (x: Key) => {
        const row = all[x.keyid];
        return { state: row.state, reason: row.reason, revokedAt: row.revokedAt?.toISOString() ?? null, versions: row.versions, versionReasons: row.versionReasons };
      };
      const revokedWith = (reason: string, n: number) => ({ state: 'REVOKED', reason, revokedAt: at.toISOString(), versions: Array(n).fill('REVOKED'), versionReasons: Array(n).fill(reason) });
      expect(view(k.ca)).toEqual(revokedWith('keyCompromise', 2));
      // Their own keys were not compromised, their issuer's was (RFC 5280 cACompromise).
      expect(view(k.sub)).toEqual(revokedWith('cACompromise', 2));
      expect(view(k.fw)).toEqual(revokedWith('cACompromise', 2));
      expect(view(k.fwRetired)).toEqual(revokedWith('cACompromise', 1));
      expect(view(k.tsa)).toEqual(revokedWith('cACompromise', 1));
      // Below a destroyed CA: revoked too, though no CRL can list it any more (its issuer's last CRL is final).
      expect(view(k.belowGone)).toEqual(revokedWith('cACompromise', 1));
      // A destroyed key keeps its state; one revoked before keeps its own reason and time.
      expect({ ...view(k.gone), destroyed: all[k.gone.keyid].destroyed }).toEqual({ state: 'RETIRED', reason: null, revokedAt: null, versions: ['RETIRED'], versionReasons: [null], destroyed: true });
      expect(view(k.fwEarlier)).toEqual({ state: 'REVOKED', reason: 'superseded', revokedAt: earlier.toISOString(), versions: ['REVOKED'], versionReasons: ['superseded'] });
      for (const x of [k.root, k.sibling, k.siblingFw]) expect(view(x)).toMatchObject({ state: 'ACTIVE', reason: null, revokedAt: null });
      expect(await activeBelowRevoked(r.tmp.url)).toEqual([]);
    });

    it('ok the answer names the keys revoked with it, each after its issuer, with the versions it revoked', () => {
      const below = revoked.revokedBelow.map((b) => ({ keyid: b.keyid, type: b.type, issuer: b.issuer, previousState: b.previousState, versions: b.versions, reason: b.reason }));
      const expected = [
        { keyid: k.sub.keyid, type: 'CA', issuer: k.ca.keyid, previousState: 'ACTIVE', versions: [1, 2], reason: 'cACompromise' },
        { keyid: k.fw.keyid, type: 'FW', issuer: k.sub.keyid, previousState: 'ACTIVE', versions: [1, 2], reason: 'cACompromise' },
        { keyid: k.fwRetired.keyid, type: 'FW', issuer: k.sub.keyid, previousState: 'RETIRED', versions: [1], reason: 'cACompromise' },
        { keyid: k.tsa.keyid, type: 'TSA', issuer: k.ca.keyid, previousState: 'ACTIVE', versions: [1], reason: 'cACompromise' },
        { keyid: k.belowGone.keyid, type: 'FW', issuer: k.gone.keyid, previousState: 'RETIRED', versions: [1], reason: 'cACompromise' },
      ];
      expect([...below].sort((x, y) => x.keyid.localeCompare(y.keyid))).toEqual([...expected].sort((x, y) => x.keyid.localeCompare(y.keyid)));
      const at = (keyid: string) => below.findIndex((b) => b.keyid === keyid);
      for (const b of below) if (b.issuer !== k.ca.keyid) expect(at(b.issuer)).toBeLessThan(at(b.keyid));
      expect(revoked).toMatchObject({ keyid: k.ca.keyid, state: 'REVOKED' });
    });

    it('ok one audit event per key revoked with it, naming the revoked CA as the cause, in the same transaction (the chain verifies)', async () => {
      const events = await sql<{ action: string; keyid: string; details: Record<string, unknown> }>(
        r.tmp.url,
        `SELECT "action", "keyid", "details" FROM "audit_event" WHERE "requestId" = $1 AND "outcome" = 'SUCCESS' ORDER BY "seq"`,
        [requestId],
      );
      expect(events[0]).toEqual({ action: 'key.revoke', keyid: k.ca.keyid, details: { reason: 'keyCompromise', revokedBelow: revoked.revokedBelow.map((b) => b.keyid) } });
      const cascade = events.slice(1).map((e) => ({ action: e.action, keyid: e.keyid, details: e.details }));
      expect(cascade).toEqual(
        revoked.revokedBelow.map((b) => ({
          action: 'key.revoke_cascade',
          keyid: b.keyid,
          details: { cascade: k.ca.keyid, cascadeReason: 'keyCompromise', reason: 'cACompromise', issuer: b.issuer, previousState: b.previousState, versions: b.versions },
        })),
      );
      expect(cascade).toHaveLength(5);
      expect(await r.a.audit.verifyChain()).toMatchObject({ ok: true });
    });

    it('ok the CRL of each issuing version lists the serials its key pair certified, and only those', async () => {
      const crls = new CrlRepository(r.dbA);
      const serials = async (keyid: string, version: number) => {
        const scope = await crls.scope(keyid, version);
        if (!scope) throw new Error(`no scope ${keyid} v${version}`);
        return (await crls.entries(scope)).map((e) => e.serialHex).sort();
      };
      const v = async (keyid: string) => (await new KeyLifecycleRepository(r.dbA).versions(keyid)).map((x) => x.certificateSerial);
      const [ca, sub, fw, fwRetired, tsa, fwEarlier] = await Promise.all([k.ca, k.sub, k.fw, k.fwRetired, k.tsa, k.fwEarlier].map((x) => v(x.keyid)));
      expect(await serials(k.root.keyid, 1)).toEqual([...ca].sort());
      // The CA rotated: its version 1 certified the sub-CA's version 1, its version 2 the rest.
      expect(await serials(k.ca.keyid, 1)).toEqual([sub[0]]);
      expect(await serials(k.ca.keyid, 2)).toEqual([sub[1], tsa[0], fwEarlier[0]].sort());
      // The sub-CA's versions share one key pair (a renewal): one revoked set.
      for (const version of [1, 2]) expect(await serials(k.sub.keyid, version)).toEqual([...fw, fwRetired[0]].sort());
      expect(await serials(k.sibling.keyid, 1)).toEqual([]);
    });

    it('fail an operation opened on a key below before the revocation: no usage can be reserved (key_revoked)', async () => {
      const signed = outcome(r.b.signOrders.recordWithUsage(signRequest(opOnFw.opId, k.fw.keyid, opOnFw.ordererId), async () => 'aa'));
      expect(await signed).toBe('key_revoked');
    });

    it.each([
      ['fail a FW key under the revoked CA', 'FW', 'ca'],
      ['fail a CA under the revoked sub-CA', 'CA', 'sub'],
      ['fail a TSA key under the revoked CA', 'TSA', 'ca'],
    ] as const)('%s: invalid_state, nothing stored', async (_n, type, parent) => {
      const before = await sql(r.tmp.url, `SELECT count(*)::int AS "n" FROM "key"`);
      expect(await outcome(mk(r.b, type, k[parent]))).toBe('invalid_state');
      expect(await sql(r.tmp.url, `SELECT count(*)::int AS "n" FROM "key"`)).toEqual(before);
    });

    it('fail revoking the CA again (invalid_state): nothing below changes, no event', async () => {
      const before = await sql(r.tmp.url, `SELECT count(*)::int AS "n" FROM "audit_event"`);
      expect(await outcome(r.b.keys.revoke(k.ca.keyid, 'cACompromise', new Date(), event('key.revoke')))).toBe('invalid_state');
      expect((await rows([k.sub.keyid]))[k.sub.keyid]).toMatchObject({ reason: 'cACompromise', revokedAt: at });
      expect(await sql(r.tmp.url, `SELECT count(*)::int AS "n" FROM "audit_event"`)).toEqual(before);
    });
  });

  it.each([
    ['keyCompromise', 'cACompromise'],
    ['cACompromise', 'cACompromise'],
    ['superseded', 'superseded'],
    ['cessationOfOperation', 'cessationOfOperation'],
    ['unspecified', 'unspecified'],
  ])('ok a CA revoked for %s: the keys below are revoked for %s', async (reason, below) => {
    const ca = await mk(r.a, 'CA', await mk(r.a, 'ROOT', null));
    const fw = await mk(r.a, 'FW', ca);
    expect((await r.a.keys.revoke(ca.keyid, reason)).revokedBelow.map((b) => [b.keyid, b.reason])).toEqual([[fw.keyid, below]]);
    expect((await rows([fw.keyid]))[fw.keyid]).toMatchObject({ state: 'REVOKED', reason: below, versionReasons: [below] });
  });

  it('ok a key that certifies nothing: revokedBelow is empty and the event names none', async () => {
    const fw = await mk(r.a, 'FW', await mk(r.a, 'ROOT', null));
    const id = `req-${hex(4)}`;
    expect((await r.a.keys.revoke(fw.keyid, 'keyCompromise', new Date(), event('key.revoke', id, { reason: 'keyCompromise' }))).revokedBelow).toEqual([]);
    expect(await sql(r.tmp.url, `SELECT "action", "details" FROM "audit_event" WHERE "requestId" = $1`, [id])).toEqual([{ action: 'key.revoke', details: { reason: 'keyCompromise' } }]);
  });

  describe('revoke: another replica changes the keys below the CA at the same time', () => {
    type Tree = { root: Key; ca: Key; sub: Key; fw: Key };
    const RACES: Record<string, { allowed: string[]; run: (b: Repositories, t: Tree) => Promise<unknown> }> = {
      'creates a FW key under the CA': { allowed: ['ok', 'invalid_state'], run: (b, t) => mk(b, 'FW', t.ca) },
      'creates a CA under the sub-CA': { allowed: ['ok', 'invalid_state'], run: (b, t) => mk(b, 'CA', t.sub) },
      'renews the sub-CA': { allowed: ['ok', 'invalid_state'], run: (_b, t) => newVersion(r.b, new KeyLifecycleRepository(r.dbB), t.sub.keyid, 'renew') },
      'rotates the FW key': { allowed: ['ok', 'invalid_state'], run: (_b, t) => newVersion(r.b, new KeyLifecycleRepository(r.dbB), t.fw.keyid, 'rotate') },
      'revokes the sub-CA': { allowed: ['ok', 'invalid_state'], run: (b, t) => b.keys.revoke(t.sub.keyid, 'keyCompromise', new Date(), event('key.revoke')) },
      'revokes the CA too': { allowed: ['invalid_state'], run: (b, t) => b.keys.revoke(t.ca.keyid, 'cACompromise', new Date(), event('key.revoke')) },
      'retires the FW key': { allowed: ['ok', 'invalid_state'], run: (_b, t) => new KeyLifecycleRepository(r.dbB).retire(t.fw.keyid, event('key.retire')) },
    };
    const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

    it('ok whatever the interleaving, no key below the revoked CA stays ACTIVE and each is revoked exactly once (property)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...Object.keys(RACES)), fc.nat({ max: 25 }), fc.nat({ max: 25 }), async (race, revokeAfter, otherAfter) => {
          const root = await mk(r.a, 'ROOT', null);
          const ca = await mk(r.a, 'CA', root);
          const sub = await mk(r.a, 'CA', ca);
          const t: Tree = { root, ca, sub, fw: await mk(r.a, 'FW', sub) };
          const [mine, other] = await Promise.all([
            sleep(revokeAfter).then(() => outcome(r.a.keys.revoke(ca.keyid, 'keyCompromise', new Date(), event('key.revoke')))),
            sleep(otherAfter).then(() => outcome(RACES[race].run(r.b, t))),
          ]);
          // 'revokes the CA too': one of the two revocations wins (either replica).
          if (race === 'revokes the CA too') expect([mine, other].sort()).toEqual(['invalid_state', 'ok']);
          else expect({ race, mine, other: RACES[race].allowed.includes(other) ? 'allowed' : other }).toEqual({ race, mine: 'ok', other: 'allowed' });
          const tree = await sql<{ keyid: string; state: string; versions: string[]; events: string }>(
            r.tmp.url,
            `WITH RECURSIVE t AS (SELECT "id", "keyid" FROM "key" WHERE "keyid" = $1 UNION SELECT c."id", c."keyid" FROM t JOIN "key" c ON c."parentId" = t."id")
             SELECT t."keyid", k."state"::text AS "state",
                    (SELECT array_agg(v."state"::text ORDER BY v."version") FROM "key_version" v WHERE v."keyId" = t."id") AS "versions",
                    (SELECT count(*)::text FROM "audit_event" e WHERE e."keyid" = t."keyid" AND e."outcome" = 'SUCCESS' AND e."action" IN ('key.revoke', 'key.revoke_cascade')) AS "events"
             FROM t JOIN "key" k ON k."id" = t."id" ORDER BY t."keyid"`,
            [ca.keyid],
          );
          expect(tree.length).toBeGreaterThanOrEqual(3);
          for (const x of tree) expect({ race, ...x }).toEqual({ race, keyid: x.keyid, state: 'REVOKED', versions: x.versions.map(() => 'REVOKED'), events: '1' });
          expect((await rows([root.keyid]))[root.keyid].state).toBe('ACTIVE');
        }),
        { numRuns: 42, seed: 41 },
      );
      expect(await activeBelowRevoked(r.tmp.url)).toEqual([]);
      expect(await r.a.audit.verifyChain()).toMatchObject({ ok: true });
    });
  });
});
