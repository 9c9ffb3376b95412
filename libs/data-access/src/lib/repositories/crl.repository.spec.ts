import { hex, outcome, twoReplicas } from '../../spec/fixtures';
import { sql } from '../../spec/temp-database';
import type { AuditInput, Key } from '../types';
import { CRL_NUMBER_SECOND_BITS, CrlRepository, crlEntriesSha256, crlNumberFloor, crlNumberSecond, type CrlScope, type CrlSigner } from './crl.repository';
import { KeyLifecycleRepository } from './key-lifecycle.repository';

const event = (action: string): AuditInput => ({ action, outcome: 'SUCCESS', actorName: 'test' });
const PEM = '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n';
/** A signer that binds no time: the bare counter (the number's time part is tested in "a restore of a backup"). */
const EPOCH = new Date(0);

describe(CrlRepository.name, () => {
  const r = twoReplicas('crl', 4);

  const ca = async (): Promise<Key> =>
    r.a.keys.create({ keyid: `ca-${hex(4)}`, type: 'CA', algorithm: 'EC_P256', hash: 'SHA256', hsmKeyId: hex(8), certificatePem: PEM, certificateSerial: hex(8), notBefore: new Date(Date.now() - 1000), notAfter: new Date(Date.now() + 86_400_000) });
  /** A signer that counts its calls and takes a CRL number each time (the HSM's part is not this test's). */
  const countingSigner = (calls: { n: number }, delayMs = 0): CrlSigner => async (stored, _entries, sha, takeNumber) => {
    if (stored && stored.entriesSha256 === sha) return null;
    calls.n++;
    await new Promise((res) => setTimeout(res, delayMs));
    const crlNumber = await takeNumber(EPOCH);
    return { crlNumber, der: Buffer.from(`crl ${crlNumber}`), thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 3_600_000), final: false };
  };

  it('ok two replicas refreshing the same version at once sign once; the second finds the first one\'s CRL', async () => {
    const k = await ca();
    const [a, b] = [new CrlRepository(r.dbA), new CrlRepository(r.dbB)];
    const scope = await a.scope(k.keyid, null);
    if (!scope) throw new Error('no scope');
    const calls = { n: 0 };
    const [x, y] = await Promise.all([a.refresh(scope, countingSigner(calls, 200)), b.refresh(scope, countingSigner(calls, 200))]);
    expect(calls.n).toBe(1);
    expect(x?.crlNumber).toBe(1n);
    expect(y?.der.equals(x?.der ?? Buffer.alloc(0))).toBe(true);
    expect(await sql(r.tmp.url, `SELECT "crlNumber"::text FROM "crl" WHERE "keyVersionId" = $1`, [scope.versionId])).toEqual([{ crlNumber: '1' }]);
  });

  it('ok CRL numbers are handed out once across a key\'s versions refreshed at the same time (one counter per key)', async () => {
    const k = await ca();
    const life = new KeyLifecycleRepository(r.dbA);
    for (const v of [1, 2, 3]) await life.addVersion(k.keyid, v, { hsmKeyId: hex(8), certificatePem: PEM, certificateSerial: hex(8), notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), issuerKeyid: null, issuerVersion: null }, event('key.rotate'));
    const crls = [new CrlRepository(r.dbA), new CrlRepository(r.dbB)];
    const always: CrlSigner = async (_s, _e, _sha, takeNumber) => ({ crlNumber: await takeNumber(EPOCH), der: Buffer.from('x'), thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 3_600_000), final: false });
    const results = await Promise.all([1, 2, 3, 4].flatMap((v) => crls.map(async (c) => c.refresh((await c.scope(k.keyid, v)) as CrlScope, always))));
    expect(results.map((x) => Number(x?.crlNumber)).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('ok a revocation is in the scope of the version that signed the certificate (and its renewals), not of a rotated key pair', async () => {
    const k = await ca();
    const life = new KeyLifecycleRepository(r.dbA);
    const renewal = { hsmKeyId: k.hsmKeyId, certificatePem: PEM, certificateSerial: hex(8), notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), issuerKeyid: null, issuerVersion: null };
    await life.addVersion(k.keyid, 1, renewal, event('key.renew'));
    await life.addVersion(k.keyid, 2, { ...renewal, hsmKeyId: hex(8), certificateSerial: hex(8) }, event('key.rotate'));
    const byVersion = { 1: 'aa01', 2: 'aa02', 3: 'aa03' } as const;
    for (const [v, serialHex] of Object.entries(byVersion)) {
      await r.a.certificates.insert({ issuerKeyid: k.keyid, issuerVersion: Number(v), serialHex, subjectDn: 'CN=d', notBefore: new Date(), notAfter: new Date(Date.now() + 3_600_000), pem: PEM });
      await r.a.certificates.revoke(k.keyid, serialHex, 'keyCompromise');
    }
    const crls = new CrlRepository(r.dbA);
    const serials = async (v: number | null) => {
      const s = await crls.scope(k.keyid, v);
      return s ? (await crls.entries(s)).map((e) => e.serialHex) : null;
    };
    // Versions 1 and 2 share a key pair (a renewal): one scope; version 3 is a new key pair.
    expect(await serials(1)).toEqual(['aa01', 'aa02']);
    expect(await serials(2)).toEqual(['aa01', 'aa02']);
    expect(await serials(3)).toEqual(['aa03']);
    expect(await serials(null)).toEqual(['aa03']);
    expect(await serials(4)).toBeNull();
    expect((await crls.liveScopes()).filter((s) => s.keyid === k.keyid).map((s) => s.version)).toEqual([1, 2, 3]);
  });

  it('ok a CRL lists only its issuer\'s revocations, also when another issuer revoked the same serials (devices and keys)', async () => {
    const [x, y] = [await ca(), await ca()];
    const [deviceSerial, keySerial] = [hex(8), hex(8)];
    for (const issuer of [x, y]) {
      await r.a.certificates.insert({ issuerKeyid: issuer.keyid, issuerVersion: 1, serialHex: deviceSerial, subjectDn: 'CN=d', notBefore: new Date(), notAfter: new Date(Date.now() + 3_600_000), pem: PEM });
      const fw = await r.b.keys.create({ keyid: `fw-${hex(4)}`, type: 'FW', algorithm: 'EC_P256', hash: 'SHA256', hsmKeyId: hex(8), parentKeyid: issuer.keyid, certificatePem: PEM, certificateSerial: keySerial, notBefore: new Date(), notAfter: new Date(Date.now() + 3_600_000) });
      if (issuer === y) {
        await r.a.certificates.revoke(y.keyid, deviceSerial, 'keyCompromise');
        await r.b.keys.revoke(fw.keyid, 'keyCompromise');
      }
    }
    const [a, b] = [new CrlRepository(r.dbA), new CrlRepository(r.dbB)];
    const listed = async (c: CrlRepository, k: Key) => (await c.entries((await c.scope(k.keyid, null)) as CrlScope)).map((e) => e.serialHex).sort();
    expect(await listed(a, x)).toEqual([]);
    expect(await listed(b, y)).toEqual([deviceSerial, keySerial].sort());
  });

  /** The signer of a key's last CRLs before destruction (crl.service finalCrls), held `delayMs` inside the lock. */
  const finalSigner = (delayMs = 0): CrlSigner => async (_s, _e, _sha, takeNumber) => {
    await new Promise((res) => setTimeout(res, delayMs));
    return { crlNumber: await takeNumber(EPOCH), der: Buffer.from('final'), thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 86_400_000), final: true };
  };
  const device = (issuerKeyid: string, issuerVersion: number, serialHex = hex(8)) =>
    r.a.certificates.insert({ issuerKeyid, issuerVersion, serialHex, subjectDn: 'CN=d', notBefore: new Date(), notAfter: new Date(Date.now() + 3_600_000), pem: PEM });

  it('fail a revocation after the version that signed the certificate (or a renewal sharing its key pair) signed its final CRL: refused, the final CRL cannot list it', async () => {
    // The destruction signs the final CRLs first, then deletes the HSM objects, then marks the key destroyed: when
    // it stops after the CRLs (an HSM error; a retry) the issuer is not destroyed yet, but its CRL can no longer change.
    const k = await ca();
    const life = new KeyLifecycleRepository(r.dbA);
    await life.addVersion(k.keyid, 1, { hsmKeyId: k.hsmKeyId, certificatePem: PEM, certificateSerial: hex(8), notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), issuerKeyid: null, issuerVersion: null }, event('key.renew'));
    const c = await device(k.keyid, 1);
    const crls = new CrlRepository(r.dbA);
    await crls.refresh((await crls.scope(k.keyid, 2)) as CrlScope, finalSigner());
    expect(await outcome(r.a.certificates.revoke(k.keyid, c.serialHex, 'keyCompromise'))).toBe('invalid_state');
    expect((await r.a.certificates.get(k.keyid, c.serialHex)).revokedAt).toBeNull();
  });

  it('ok a revocation and the signing of the final CRL at the same time: the revocation is on the final CRL or refused, never revoked and missing', async () => {
    const k = await ca();
    const c = await device(k.keyid, 1);
    const crls = new CrlRepository(r.dbA);
    const scope = (await crls.scope(k.keyid, 1)) as CrlScope;
    const signing = crls.refresh(scope, finalSigner(300));
    await new Promise((res) => setTimeout(res, 100));
    const revoked = await outcome(r.b.certificates.revoke(k.keyid, c.serialHex, 'keyCompromise'));
    const final = await signing;
    const entries = await crls.entries(scope);
    // Usually the refresh holds the lock first and the revocation is refused; if the revocation got there first, it is listed.
    expect(['invalid_state', 'ok']).toContain(revoked);
    expect({ revoked, listed: final?.entriesSha256 === crlEntriesSha256(entries) }).toEqual({ revoked, listed: true });
  });

  it('ok a final CRL is never replaced, and a destroyed version is not live', async () => {
    const k = await ca();
    const crls = new CrlRepository(r.dbA);
    const scope = await crls.scope(k.keyid, 1);
    if (!scope) throw new Error('no scope');
    const final: CrlSigner = async (_s, _e, _sha, takeNumber) => ({ crlNumber: await takeNumber(EPOCH), der: Buffer.from('final'), thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 86_400_000), final: true });
    expect((await crls.refresh(scope, final))?.final).toBe(true);
    const calls = { n: 0 };
    expect((await crls.refresh(scope, countingSigner(calls)))?.der.toString()).toBe('final');
    expect(calls.n).toBe(0);
    await sql(r.tmp.url, `UPDATE "key_version" SET "destroyedAt" = now() WHERE "id" = $1`, [scope.versionId]);
    expect((await crls.liveScopes()).some((s) => s.keyid === k.keyid)).toBe(false);
  });

  describe('one CRL issuer per key pair: the versions a renewal made (one name, one key pair) publish one CRL sequence', () => {
    /** A CA with versions 1..n sharing its key pair (renewals: the same name and key, new certificates). */
    const renewed = async (n: number) => {
      const k = await ca();
      const life = new KeyLifecycleRepository(r.dbA);
      for (let v = 1; v < n; v++) await life.addVersion(k.keyid, v, { hsmKeyId: k.hsmKeyId, certificatePem: PEM, certificateSerial: hex(8), notBefore: new Date(), notAfter: new Date(Date.now() + (v + 1) * 86_400_000), issuerKeyid: null, issuerVersion: null }, event('key.renew'));
      return k;
    };
    const numbers = (keyid: string) =>
      sql(r.tmp.url, `SELECT v."version", c."crlNumber"::text AS "n", encode(sha256(c."der"), 'hex') AS "der" FROM "crl" c JOIN "key_version" v ON v."id" = c."keyVersionId" JOIN "key" k ON k."id" = v."keyId" WHERE k."keyid" = $1 ORDER BY 1`, [keyid]);

    it('ok whichever version refreshes, one CRL is signed and every version serves it: the numbers a relying party fetches from that issuer and key never go back', async () => {
      const k = await renewed(2);
      const [a, b] = [new CrlRepository(r.dbA), new CrlRepository(r.dbB)];
      const [v1, v2] = [(await a.scope(k.keyid, 1)) as CrlScope, (await b.scope(k.keyid, 2)) as CrlScope];
      const calls = { n: 0 };
      const fetched: bigint[] = [];
      const fetchBoth = async () => {
        for (const [c, s] of [[a, v2], [b, v1]] as const) fetched.push((await c.stored(s.versionId))?.crlNumber ?? -1n);
      };
      await a.refresh(v1, countingSigner(calls));
      // Version 2 lists the same set under the same name and key: version 1's CRL is its CRL (before: it signed another).
      await b.refresh(v2, countingSigner(calls));
      await fetchBoth();
      const c = await device(k.keyid, 1);
      await r.a.certificates.revoke(k.keyid, c.serialHex, 'keyCompromise');
      await b.refresh(v2, countingSigner(calls));
      // Version 1 serves the CRL version 2 just signed (before: its own older one, a lower number after a higher one).
      await fetchBoth();
      await a.refresh(v1, countingSigner(calls));
      await fetchBoth();
      expect({ signed: calls.n, fetched }).toEqual({ signed: 2, fetched: [1n, 1n, 2n, 2n, 2n, 2n] });
      const rows = await numbers(k.keyid);
      expect(rows.map((x) => [x['version'], x['n']])).toEqual([[1, '2'], [2, '2']]);
      expect(new Set(rows.map((x) => x['der'])).size).toBe(1);
    });

    it('ok two replicas refreshing every version of one key pair at once sign one CRL per revoked set, numbers handed out once and increasing', async () => {
      const k = await renewed(3);
      const crls = [new CrlRepository(r.dbA), new CrlRepository(r.dbB)];
      const calls = { n: 0 };
      const signedInOrder: bigint[] = [];
      const recording = (inner: CrlSigner): CrlSigner => async (...args) => {
        const signed = await inner(...args);
        if (signed) signedInOrder.push(signed.crlNumber);
        return signed;
      };
      for (let round = 0; round < 3; round++) {
        const c = await device(k.keyid, 1 + (round % 3));
        await r.b.certificates.revoke(k.keyid, c.serialHex, 'superseded');
        await Promise.all([1, 2, 3].flatMap((v) => crls.map(async (x) => x.refresh((await x.scope(k.keyid, v)) as CrlScope, recording(countingSigner(calls, 30))))));
      }
      expect({ signed: calls.n, numbers: signedInOrder }).toEqual({ signed: 3, numbers: [1n, 2n, 3n] });
      expect((await numbers(k.keyid)).map((x) => x['n'])).toEqual(['3', '3', '3']);
    });

    it('ok the signer is given the newest CRL of the key pair and the latest thisUpdate of any of its CRLs, also from rows stored per version before (interleaved)', async () => {
      const k = await renewed(2);
      const crls = new CrlRepository(r.dbA);
      const [v1, v2] = [(await crls.scope(k.keyid, 1)) as CrlScope, (await crls.scope(k.keyid, 2)) as CrlScope];
      const t = Math.floor(Date.now() / 1000) * 1000;
      // As versions stored them before: version 1's CRL number 5 dated by a replica 5 s ahead, version 2's number 6 after it.
      for (const [v, n, at] of [[v1, 5, t + 5_000], [v2, 6, t]] as const) {
        await sql(r.tmp.url, `INSERT INTO "crl" ("keyVersionId", "crlNumber", "der", "entriesSha256", "thisUpdate", "nextUpdate") VALUES ($1, $2, $3, $4, $5, $6)`, [v.versionId, n, Buffer.from(`crl ${n}`), crlEntriesSha256([]), new Date(at), new Date(at + 86_400_000)]);
      }
      expect((await crls.stored(v1.versionId))?.crlNumber).toBe(6n);
      const given: unknown[] = [];
      await crls.refresh(v1, async (stored, _e, _sha, _take, latest) => {
        given.push(stored?.crlNumber, (latest as Date | undefined)?.getTime());
        return null;
      });
      expect(given).toEqual([6n, t + 5_000]);
      // Kept (null): version 1's row now holds the newest CRL too.
      expect((await numbers(k.keyid)).map((x) => x['n'])).toEqual(['6', '6']);
    });

    it('ok a final CRL of one version is the final CRL of every version sharing its key pair; none is signed after it', async () => {
      const k = await renewed(2);
      const crls = new CrlRepository(r.dbA);
      await crls.refresh((await crls.scope(k.keyid, 1)) as CrlScope, finalSigner());
      const calls = { n: 0 };
      const after = await crls.refresh((await crls.scope(k.keyid, 2)) as CrlScope, countingSigner(calls));
      expect({ calls: calls.n, final: after?.final, der: after?.der.toString() }).toEqual({ calls: 0, final: true, der: 'final' });
      expect((await numbers(k.keyid)).map((x) => x['n'])).toEqual(['1', '1']);
    });

    it('ok a rotation is another CRL issuer (another key): its versions keep their own CRL', async () => {
      const k = await renewed(1);
      const life = new KeyLifecycleRepository(r.dbA);
      await life.addVersion(k.keyid, 1, { hsmKeyId: hex(8), certificatePem: PEM, certificateSerial: hex(8), notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000), issuerKeyid: null, issuerVersion: null }, event('key.rotate'));
      const crls = new CrlRepository(r.dbA);
      const calls = { n: 0 };
      for (const v of [1, 2]) await crls.refresh((await crls.scope(k.keyid, v)) as CrlScope, countingSigner(calls));
      expect(calls.n).toBe(2);
      expect((await numbers(k.keyid)).map((x) => [x['version'], x['n']])).toEqual([[1, '1'], [2, '2']]);
    });
  });

  describe('a restore of a backup rewinds the key\'s counter: CRL numbers are bound to thisUpdate, so none published is handed out again', () => {
    const SECOND = 1000;
    /** The service's rule in short: thisUpdate in whole seconds, the number taken for it, thisUpdate moved to the number's second. */
    const timed = (at: number, published: { n: bigint; at: number }[]): CrlSigner => async (_s, _e, _sha, takeNumber) => {
      const thisUpdate = new Date(Math.floor(at / SECOND) * SECOND);
      const crlNumber = await takeNumber(thisUpdate);
      const dated = new Date(Math.max(thisUpdate.getTime(), crlNumberSecond(crlNumber).getTime()));
      published.push({ n: crlNumber, at: dated.getTime() });
      return { crlNumber, der: Buffer.from(`crl ${crlNumber}`), thisUpdate: dated, nextUpdate: new Date(dated.getTime() + 86_400_000), final: false };
    };
    const counter = async (keyid: string) => BigInt((await sql(r.tmp.url, `SELECT "crlNumber"::text AS "n" FROM "key" WHERE "keyid" = $1`, [keyid]))[0]['n'] as string);
    /** What pg_restore of an earlier dump does to the CRL state: the counter and the stored CRLs as they were. */
    const restore = async (keyid: string, backup: { counter: bigint; rows: Record<string, unknown>[] }) => {
      await sql(r.tmp.url, `UPDATE "key" SET "crlNumber" = $2 WHERE "keyid" = $1`, [keyid, backup.counter.toString()]);
      await sql(r.tmp.url, `DELETE FROM "crl" c USING "key_version" v, "key" k WHERE v."id" = c."keyVersionId" AND k."id" = v."keyId" AND k."keyid" = $1`, [keyid]);
      for (const row of backup.rows) await sql(r.tmp.url, `INSERT INTO "crl" SELECT * FROM json_populate_record(NULL::"crl", $1::json)`, [JSON.stringify(row)]);
    };
    const rows = (keyid: string) => sql(r.tmp.url, `SELECT row_to_json(c) AS "row" FROM "crl" c JOIN "key_version" v ON v."id" = c."keyVersionId" JOIN "key" k ON k."id" = v."keyId" WHERE k."keyid" = $1`, [keyid]).then((x) => x.map((y) => y['row'] as Record<string, unknown>));

    it('ok numbers taken, the counter and CRLs restored to an earlier backup, numbers taken again minutes later: every new number is larger than every one published (before: the counter handed them out again)', async () => {
      const k = await ca();
      const crls = new CrlRepository(r.dbA);
      const scope = (await crls.scope(k.keyid, null)) as CrlScope;
      const t0 = Math.floor(Date.now() / SECOND) * SECOND - 3_600_000;
      const published: { n: bigint; at: number }[] = [];
      await crls.refresh(scope, timed(t0, published));
      const backup = { counter: await counter(k.keyid), rows: await rows(k.keyid) };
      // After the backup: several CRLs, three of them in one second (a counter within the second), then later ones.
      const c = await device(k.keyid, 1);
      await r.a.certificates.revoke(k.keyid, c.serialHex, 'keyCompromise');
      for (const at of [t0 + 60_000, t0 + 60_000, t0 + 60_400, t0 + 600_000]) await crls.refresh(scope, timed(at, published));
      const highest = published.reduce((m, p) => (p.n > m ? p.n : m), 0n);
      await restore(k.keyid, backup);
      const after: { n: bigint; at: number }[] = [];
      // The restore took ten minutes; then one CRL, and two more in one second.
      for (const at of [t0 + 1_200_000, t0 + 1_200_000, t0 + 1_200_500]) await crls.refresh(scope, timed(at, after));
      expect(after.map((p) => p.n > highest)).toEqual([true, true, true]);
      expect(after.map((p, i) => i === 0 || p.n > after[i - 1].n)).toEqual([true, true, true]);
      // Published numbers are all different, and each names its thisUpdate's second.
      const all = [...published, ...after];
      expect(new Set(all.map((p) => p.n)).size).toBe(all.length);
      expect(all.map((p) => crlNumberSecond(p.n).getTime() === p.at)).toEqual(all.map(() => true));
    });

    it('ok a replica whose clock is behind takes a number larger than the one a replica ahead took; within one second the numbers count up', async () => {
      const k = await ca();
      const [a, b] = [new CrlRepository(r.dbA), new CrlRepository(r.dbB)];
      const scope = (await a.scope(k.keyid, null)) as CrlScope;
      const t = Math.floor(Date.now() / SECOND) * SECOND;
      const published: { n: bigint; at: number }[] = [];
      await a.refresh(scope, timed(t + 5_000, published)); // 5 s ahead
      await b.refresh(scope, timed(t, published)); // on time: the counter within A's second
      await b.refresh(scope, timed(t + 1_000, published));
      expect(published.map((p) => p.n - crlNumberFloor(new Date(t + 5_000)))).toEqual([0n, 1n, 2n]);
      expect(published.map((p) => p.at)).toEqual([t + 5_000, t + 5_000, t + 5_000]);
    });

    it('ok the signer is given the time of the audit chain\'s head (the newest moment the restored database records), which a new CRL may not precede', async () => {
      const k = await ca();
      const crls = new CrlRepository(r.dbA);
      await r.a.audit.append({ action: 'test.head', outcome: 'SUCCESS', actorName: 'test' });
      const head = (await sql(r.tmp.url, `SELECT max("at") AS "at" FROM "audit_event"`))[0]['at'] as Date;
      const given: unknown[] = [];
      await crls.refresh((await crls.scope(k.keyid, null)) as CrlScope, async (_s, _e, _sha, _take, _latest, recorded) => {
        given.push(recorded?.getTime());
        return null;
      });
      expect(given).toEqual([head.getTime()]);
    });

    it('ok a number fits the 20 octets of RFC 5280 5.2.3 and the bigint column for any thisUpdate a certificate can carry (through 9999)', () => {
      const last = crlNumberFloor(new Date(Date.UTC(9999, 11, 31, 23, 59, 59))) + (1n << BigInt(CRL_NUMBER_SECOND_BITS)) - 1n;
      expect(last < 1n << 63n).toBe(true);
      expect(crlNumberSecond(last).getTime()).toBe(Date.UTC(9999, 11, 31, 23, 59, 59));
      expect(crlNumberFloor(new Date(1_000_999))).toBe(1000n << BigInt(CRL_NUMBER_SECOND_BITS));
    });
  });
});
