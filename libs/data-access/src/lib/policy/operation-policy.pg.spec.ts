import fc from 'fast-check';
import { outcome, seedKey, seedSubject, window, twoReplicas } from '../../spec/fixtures';
import { sqlQuery } from '../db';
import { reserveUsage } from '../repositories/usage';
import type { Key, OperationState, Subject } from '../types';
import { usability, type PolicyOperation } from './operation-policy';

// RESERVE_SQL (repositories/usage.ts) decides usability in one statement; operation-policy.ts decides it in
// TypeScript. On generated operations, real PostgreSQL must take a usage exactly when the policy says the key is
// usable, and name the same reason when it is not.
const STATES: OperationState[] = ['REQUESTED', 'APPROVED', 'EXHAUSTED', 'EXPIRED', 'REJECTED', 'CANCELLED'];
const STARTS = [-3_600_000, -1, 0, 1];
const ENDS = [0, 1, 3_600_000];
const DIGEST_A = 'aa'.repeat(32);
const DIGEST_B = 'bb'.repeat(32);

const keyCase = fc.record({
  revoked: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
  requiredApprovers: fc.integer({ min: 0, max: 2 }),
  usagesAllowed: fc.integer({ min: 1, max: 3 }),
  usedShare: fc.integer({ min: 0, max: 3 }),
});
const opCase = fc.record({
  // Weighted towards usable operations, so that every boundary is also met with everything else holding.
  state: fc.oneof(
    { arbitrary: fc.constant<OperationState>('APPROVED'), weight: 4 },
    { arbitrary: fc.constant<OperationState>('REQUESTED'), weight: 3 },
    { arbitrary: fc.constantFrom(...STATES), weight: 2 },
  ),
  window: fc.tuple(fc.constantFrom(...STARTS), fc.constantFrom(...ENDS)).filter(([from, to]) => from < to),
  digests: fc.constantFrom<string[]>([], [DIGEST_A], [DIGEST_A, DIGEST_B]),
  digest: fc.constantFrom<string | null>(null, DIGEST_A, DIGEST_B),
  keys: fc.array(keyCase, { minLength: 1, maxLength: 2 }),
  target: fc.constantFrom(0, 0, 1, 'absent' as const),
});

describe('RESERVE_SQL agrees with the operation policy', () => {
  let orderer: Subject;
  let subject: Subject;
  let keys: Key[];
  let absent: Key;

  const r = twoReplicas('policy');
  beforeAll(async () => {
    orderer = await seedSubject(r.a);
    subject = await seedSubject(r.a);
    keys = [await seedKey(r.a), await seedKey(r.a)];
    absent = await seedKey(r.a);
  });

  it('takes a usage exactly when the policy allows it, and names the same refusal', async () => {
    await fc.assert(
      fc.asyncProperty(opCase, async (c) => {
        const now = new Date(Date.now() - 10_000);
        const validFrom = new Date(now.getTime() + c.window[0]);
        const validTo = new Date(now.getTime() + c.window[1]);
        const used = c.keys.map((k) => Math.min(k.usedShare, k.usagesAllowed));
        await sqlQuery(r.dbA, `UPDATE "key" SET "state" = 'ACTIVE' WHERE "id" = ANY($1::uuid[])`, [keys.map((k) => k.id)]);
        const op = await r.a.operations.create({
          description: 'policy case',
          ordererId: orderer.id,
          ...window(),
          keys: c.keys.map((k, i) => ({ keyid: keys[i].keyid, usagesAllowed: k.usagesAllowed })),
        });
        await sqlQuery(r.dbA, `UPDATE "operation" SET "state" = $2::"OperationState", "validFrom" = $3, "validTo" = $4, "digests" = $5 WHERE "id" = $1::uuid`, [
          op.id,
          c.state,
          validFrom,
          validTo,
          c.digests,
        ]);
        for (const [i, k] of c.keys.entries()) {
          await sqlQuery(r.dbA, `UPDATE "operation_key" SET "usagesUsed" = $3, "requiredApprovers" = $4 WHERE "operationId" = $1::uuid AND "keyId" = $2::uuid`, [
            op.id,
            keys[i].id,
            used[i],
            k.requiredApprovers,
          ]);
          if (k.revoked) await sqlQuery(r.dbA, `UPDATE "key" SET "state" = 'REVOKED' WHERE "id" = $1::uuid`, [keys[i].id]);
        }
        const keyid = c.target === 'absent' || c.target >= c.keys.length ? absent.keyid : keys[c.target].keyid;
        const policyOp: PolicyOperation = {
          state: c.state,
          validFrom,
          validTo,
          digests: c.digests,
          keys: c.keys.map((k, i) => ({
            keyid: keys[i].keyid,
            keyState: k.revoked ? 'REVOKED' : 'ACTIVE',
            usagesAllowed: k.usagesAllowed,
            usagesUsed: used[i],
            requiredApprovers: k.requiredApprovers,
            approvals: 0,
          })),
        };
        const expected = usability(policyOp, keyid, c.digest, now) ?? 'ok';
        const got = await outcome(reserveUsage(r.dbA, { operationId: op.id, keyid, subjectId: subject.id, kind: 'signorder', digest: c.digest, now }));
        expect(got).toBe(expected);
      }),
      { numRuns: 150 },
    );
  });
});
