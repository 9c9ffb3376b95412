import { outcome, seedKeyBelow, twoReplicas } from '../../spec/fixtures';
import { sql } from '../../spec/temp-database';
import type { AuditInput } from '../types';
import { KeyLifecycleRepository } from './key-lifecycle.repository';

// Session 25, an attacker's look at the lifecycle routes: two administrators (or one double-clicking through two API
// replicas) retire and revoke the same keys at once. Whatever the interleaving: each change ends in its documented
// outcome (ok or invalid_state, never a deadlock or a 500), exactly one SUCCESS event per change made, and the tree
// ends consistent (every key below a REVOKED key REVOKED, every version of a REVOKED key REVOKED).

const event = (action: string, requestId: string): AuditInput => ({ action, outcome: 'SUCCESS', actorName: 'test', requestId });

describe(`${KeyLifecycleRepository.name}: retire and revoke racing on two replicas`, () => {
  const r = twoReplicas('key_races', 6);
  const life = { a: () => new KeyLifecycleRepository(r.dbA), b: () => new KeyLifecycleRepository(r.dbB) };

  const states = async (keyids: string[]) =>
    (await sql<{ keyid: string; state: string; versions: string }>(
      r.tmp.url,
      `SELECT k."keyid", k."state"::text AS "state", string_agg(DISTINCT v."state"::text, ',') AS "versions" FROM "key" k JOIN "key_version" v ON v."keyId" = k."id" WHERE k."keyid" = ANY($1) GROUP BY k."keyid", k."state"`,
      [keyids],
    )).reduce<Record<string, string>>((m, x) => ({ ...m, [x.keyid]: `${x.state}/${x.versions}` }), {});
  const successes = async (requestIds: string[]) => Number((await sql<{ n: string }>(r.tmp.url, `SELECT count(*)::text AS "n" FROM "audit_event" WHERE "requestId" = ANY($1) AND "outcome" = 'SUCCESS' AND "action" IN ('key.retire', 'key.revoke')`, [requestIds]))[0].n);

  type Change = 'retire-ca' | 'revoke-ca' | 'revoke-fw' | 'retire-fw';
  const run = (side: 'a' | 'b', change: Change, keys: { ca: string; fw: string }, requestId: string) => {
    const repos = side === 'a' ? r.a : r.b;
    switch (change) {
      case 'retire-ca':
        return life[side]().retire(keys.ca, event('key.retire', requestId));
      case 'retire-fw':
        return life[side]().retire(keys.fw, event('key.retire', requestId));
      case 'revoke-ca':
        return repos.keys.revoke(keys.ca, 'keyCompromise', new Date(), event('key.revoke', requestId));
      case 'revoke-fw':
        return repos.keys.revoke(keys.fw, 'keyCompromise', new Date(), event('key.revoke', requestId));
    }
  };

  it.each<[string, Change, Change, string[][], Record<'ca' | 'fw', string>]>([
    ['ok two retirements of one key: one ok, the other invalid_state', 'retire-ca', 'retire-ca', [['invalid_state', 'ok']], { ca: 'RETIRED/RETIRED', fw: 'ACTIVE/ACTIVE' }],
    ['ok two revocations of one CA: one ok, the other invalid_state; the key below revoked once', 'revoke-ca', 'revoke-ca', [['invalid_state', 'ok']], { ca: 'REVOKED/REVOKED', fw: 'REVOKED/REVOKED' }],
    ['ok a CA and the key below revoked at once: both ok (whichever first), everything REVOKED', 'revoke-ca', 'revoke-fw', [['ok', 'ok'], ['invalid_state', 'ok']], { ca: 'REVOKED/REVOKED', fw: 'REVOKED/REVOKED' }],
    ['ok a retirement and a revocation of one CA: the revocation wins whatever the order (a retired key can be revoked)', 'retire-ca', 'revoke-ca', [['ok', 'ok'], ['invalid_state', 'ok']], { ca: 'REVOKED/REVOKED', fw: 'REVOKED/REVOKED' }],
    ['ok the key below retired while its CA is revoked: everything REVOKED', 'retire-fw', 'revoke-ca', [['ok', 'ok'], ['invalid_state', 'ok']], { ca: 'REVOKED/REVOKED', fw: 'REVOKED/REVOKED' }],
  ])('%s (10 rounds)', async (_n, first, second, allowed, end) => {
    for (let round = 0; round < 10; round++) {
      const root = await seedKeyBelow(r.a, 'ROOT', null);
      const ca = await seedKeyBelow(r.a, 'CA', root);
      const fw = await seedKeyBelow(r.a, 'FW', ca);
      const keys = { ca: ca.keyid, fw: fw.keyid };
      const ids = [`race-${round}-a-${ca.keyid}`, `race-${round}-b-${ca.keyid}`];
      const results = await Promise.all([outcome(run('a', first, keys, ids[0])), outcome(run('b', second, keys, ids[1]))]);
      expect(allowed.map((x) => [...x].sort().join())).toContain([...results].sort().join());
      expect(await states([ca.keyid, fw.keyid])).toEqual({ [ca.keyid]: end.ca, [fw.keyid]: end.fw });
      expect(await successes(ids)).toBe(results.filter((x) => x === 'ok').length);
    }
  });
});
