import { Client } from 'pg';
import { lockWaiters, outcome, seedApprover, seedKey, seedSubject, twoReplicas } from '../../spec/fixtures';
import { OperationRepository } from './operation.repository';

// ADR 0017 addendum (session 25): an approval judges the window against the keys as they are when it commits. A
// renewal (or re-issue, retirement, revocation) on another replica that holds a key's lock is waited for and seen.

const HOUR = 3_600_000;

describe(`${OperationRepository.name}: an approval against the key's certificate and state on two replicas`, () => {
  const r = twoReplicas('op_key_validity');

  async function ordered() {
    const key = await seedKey(r.a, { requiredApprovers: 1 });
    const orderer = await seedSubject(r.a);
    const op = await r.a.operations.create({ description: 'd', ordererId: orderer.id, validFrom: new Date(), validTo: new Date(Date.now() + 6 * HOUR), keys: [{ keyid: key.keyid, usagesAllowed: 1 }] });
    return { key, op, approver: await seedApprover(r.a, [key.keyid]) };
  }

  /** Replica B's change of the key row, its lock held (FOR NO KEY UPDATE, as addVersion, retire and revoke take it) until `commit`. */
  async function holdingChange(keyid: string, set: string) {
    const c = new Client({ connectionString: r.tmp.url });
    await c.connect();
    await c.query('BEGIN');
    await c.query(`SELECT "id" FROM "key" WHERE "keyid" = $1 FOR NO KEY UPDATE`, [keyid]);
    await c.query(`UPDATE "key" SET ${set} WHERE "keyid" = $1`, [keyid]);
    return {
      commit: async () => {
        await c.query('COMMIT');
        await c.end();
      },
    };
  }

  it.each([
    ['fail an approval waiting on a renewal to a notAfter inside the window: refused once the renewal commits', `"notAfter" = now() + interval '1 hour', "currentVersion" = "currentVersion" + 1`, 'window_outside_certificate'],
    ['fail an approval waiting on a retirement: refused once it commits', `"state" = 'RETIRED', "retiredAt" = now()`, 'key_revoked'],
    ['ok an approval waiting on a renewal that still covers the window', `"notAfter" = now() + interval '30 days', "currentVersion" = "currentVersion" + 1`, 'ok'],
  ])('%s; nothing is counted when refused', async (_n, set, expected) => {
    const { key, op, approver } = await ordered();
    const change = await holdingChange(key.keyid, set);
    const approval = outcome(r.b.operations.approve(op.id, [key.keyid], approver.id));
    await lockWaiters(r.tmp.url, 1);
    await change.commit();
    expect(await approval).toBe(expected);
    const after = await r.a.operations.get(op.id);
    expect([after.state, after.keys[0].approverIds.length]).toEqual(expected === 'ok' ? ['APPROVED', 1] : ['REQUESTED', 0]);
  });
});
