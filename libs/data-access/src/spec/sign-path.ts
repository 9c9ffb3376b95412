// The sign path's test vocabulary, shared by the specs that run it on a direct pool and through PgBouncer.
import { hex, outcome, seedKey, seedSubject, window } from './fixtures';
import { sql } from './temp-database';
import type { Repositories } from '../lib/repositories';
import type { SignRequest } from '../lib/repositories/sign-order.repository';

/** A digest sign order on (operation, key) by `subjectId`. */
export const signRequest = (operationId: string, keyid: string, subjectId: string, extra: Partial<SignRequest> = {}): SignRequest => ({
  operationId,
  keyid,
  subjectId,
  description: 'fw image',
  inputdata: 'ab'.repeat(32),
  inputformat: 'digest',
  inputpadding: 'none',
  signatureformat: 'der',
  digest: 'ab'.repeat(32),
  audit: { action: 'sign', outcome: 'SUCCESS', actorOid: 'o', details: { test: true } },
  ...extra,
});

/** A promise plus the function that settles it: an HSM call the test finishes when it wants. */
export function hsmGate<T>(value: T): { wait: () => Promise<T>; open: () => void; entered: Promise<void> } {
  let open!: () => void;
  let enter!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const entered = new Promise<void>((r) => (enter = r));
  return {
    wait: async () => {
      enter();
      await opened;
      return value;
    },
    open,
    entered,
  };
}

/** An orderer and an operation over `keys` fresh keys with `usages` each. */
export async function seedOperation(repos: Repositories, opts: { usages?: number; approvers?: number; digests?: string[]; keys?: number } = {}) {
  const orderer = await seedSubject(repos);
  const keys = [];
  for (let i = 0; i < (opts.keys ?? 1); i++) keys.push(await seedKey(repos, { requiredApprovers: opts.approvers ?? 0 }));
  const op = await repos.operations.create({
    description: 'release 1.2.3',
    ordererId: orderer.id,
    ...window(),
    digests: opts.digests,
    keys: keys.map((k) => ({ keyid: k.keyid, usagesAllowed: opts.usages ?? 3 })),
  });
  return { orderer, key: keys[0], keys, op };
}

/**
 * 45 orders on three (operation, key) rows of two operations (12 usages each) from two replicas in mixed order, held
 * in the HSM until all 36 that fit have reserved, plus two with one idempotency key: the reservations committed
 * together (fewer commits than orders), the counts exact, the duplicate a conflict, the chain intact.
 */
export async function ordersReservedTogether(a: Repositories, b: Repositories, databaseUrl: string): Promise<void> {
  const one = await seedOperation(a, { usages: 12, keys: 2 });
  const two = await seedOperation(a, { usages: 12 });
  const three = await seedOperation(a, { usages: 3 });
  const held = hsmGate(hex(64));
  let entered = 0;
  const sign = () => {
    entered++;
    return held.wait();
  };
  const targets = [
    [one.op.id, one.keys[0].keyid, one.orderer.id],
    [two.op.id, two.key.keyid, two.orderer.id],
    [one.op.id, one.keys[1].keyid, one.orderer.id],
  ] as const;
  const tag = `together-${hex(4)}-`;
  const orders = Array.from({ length: 45 }, (_, i) => {
    const [opId, keyid, subject] = targets[i % 3];
    return outcome((i % 2 ? a : b).signOrders.recordWithUsage(signRequest(opId, keyid, subject, { requestId: `${tag}${i}` }), sign));
  });
  // Two more with the same idempotency key, sent at once: one signs, the other is a conflict.
  const dupes = [0, 1].map(() => outcome(a.signOrders.recordWithUsage(signRequest(three.op.id, three.key.keyid, three.orderer.id, { idempotencyKey: `same-build-${tag}` }), sign)));
  for (let i = 0; i < 300 && entered < 36 + 1; i++) await new Promise((r) => setTimeout(r, 10));
  // Held in the HSM: their reservation rows are committed, several per transaction.
  const reserved = await sql<{ n: string; commits: string }>(
    databaseUrl,
    `SELECT count(*)::text AS "n", count(DISTINCT xmin::text)::text AS "commits" FROM "usage_reservation" WHERE "requestId" LIKE $1`,
    [`${tag}%`],
  );
  expect(Number(reserved[0].n)).toBe(36);
  expect(Number(reserved[0].commits)).toBeLessThan(36);
  held.open();
  const results = await Promise.all(orders);
  expect(results.filter((r) => r === 'ok')).toHaveLength(36);
  expect(results.filter((r) => r !== 'ok').every((r) => r === 'usage_exhausted')).toBe(true);
  expect((await Promise.all(dupes)).sort()).toEqual(['conflict', 'ok']);
  expect((await a.operations.get(three.op.id)).keys[0].usagesUsed).toBe(1);
  expect((await a.operations.get(one.op.id)).keys.map((k) => k.usagesUsed)).toEqual([12, 12]);
  expect((await a.operations.get(two.op.id)).keys[0].usagesUsed).toBe(12);
  expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
}

/** Text that would break a statement built by concatenation (quotes, backslashes, dollar quotes, placeholders, NL, emoji). */
export const hostileText = (i: number): string => `'; DROP TABLE "audit_event"; -- $1 \\ E'\\' $q$ \n\u00e9\u{1F512} ${i}`;

/** The 30 orders `hostile-0..29` (description and audit with {@link hostileText}, result `sig'\\<i>`) stored exactly, in fewer commits than orders. */
export async function expectHostileOrdersStored(databaseUrl: string): Promise<void> {
  const rows = await sql<{ requestId: string; description: string; result: string; commits: string }>(
    databaseUrl,
    `SELECT "requestId", "description", "result", (SELECT count(DISTINCT xmin::text) FROM "sign_order" WHERE "requestId" LIKE 'hostile-%')::text AS "commits"
     FROM "sign_order" WHERE "requestId" LIKE 'hostile-%'`,
  );
  expect(rows).toHaveLength(30);
  for (const r of rows) {
    const i = Number(r.requestId.slice('hostile-'.length));
    expect([r.description, r.result]).toEqual([hostileText(i), `sig'\\${i}`]);
  }
  expect(Number(rows[0].commits)).toBeLessThan(30);
}
