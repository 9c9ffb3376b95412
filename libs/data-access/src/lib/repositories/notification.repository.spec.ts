import fc from 'fast-check';
import { sql } from '../../spec/temp-database';
import { hex, outcome, proveAccount, seedAdmin, seedKey, seedSubject, window, twoReplicas } from '../../spec/fixtures';
import { canonicalEndpoint, canonicalMailbox, NotificationRepository, SUPERSEDED, type ClaimedDelivery } from './notification.repository';

const AUDIT = { action: 'test.notifications', outcome: 'SUCCESS' as const };

describe(NotificationRepository.name, () => {
  const { tmp, a, b } = twoReplicas('notify');
  beforeAll(async () => {
    // A change that fails at COMMIT, after the outbox row was written in the same transaction.
    await sql(
      tmp.url,
      `CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
         IF NEW."description" = 'fail at commit' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END $$`,
    );
    await sql(tmp.url, `CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON "operation" DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit()`);
  });

  /** A key needing `approvers` approvals, `n` USER approvers holding APPROVE on it (with addresses), and an orderer. */
  async function scene(approvers = 1, n = 2) {
    const key = await seedKey(a, { requiredApprovers: approvers });
    const role = `approvers-${hex(3)}`;
    await a.subjects.createRole({ name: role, natures: ['APPROVER'], keys: [{ keyid: key.keyid, permissions: ['APPROVE'] }] });
    const people = [];
    for (let i = 0; i < n; i++) {
      const s = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: `approver ${i}`, roles: [role] });
      await proveAccount(a, s.id, 'MEMBER');
      await a.notifications.setAddress(s.id, `approver${i}-${hex(2)}@example.test`, AUDIT);
      people.push(s);
    }
    const orderer = await seedSubject(a);
    return { key, role, approvers: people, orderer };
  }

  const order = (s: { key: { keyid: string }; orderer: { id: string } }, description = 'release 1.2') =>
    a.operations.create({ description, ordererId: s.orderer.id, ...window(), keys: [{ keyid: s.key.keyid, usagesAllowed: 1 }] });

  it('writes the approval request in the transaction that creates the operation, naming the approvers only', async () => {
    const s = await scene();
    // Neither a disabled approver, a CLIENT holding the grant, nor the orderer himself is asked.
    const disabled = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'gone', roles: [s.role] });
    await proveAccount(a, disabled.id, 'MEMBER');
    await a.subjects.update(disabled.id, { enabled: false });
    const ordererApprover = await a.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'self', roles: [s.role] });
    await proveAccount(a, ordererApprover.id, 'MEMBER');
    const op = await order({ key: s.key, orderer: ordererApprover });
    const [event] = await a.notifications.eventsOf(op.id);
    expect(event).toMatchObject({ event: 'operation.approval_requested', expanded: false });
    expect([...event.recipientIds].sort()).toEqual(s.approvers.map((p) => p.id).sort());
  });

  it.each([
    ['ok no event for an operation whose keys need no approval', 0, 'ok', 0],
    ['fail unknown key: neither operation nor event', 1, 'not_found', 0],
  ] as const)('%s', async (_n, approvers, expected, events) => {
    const s = await scene(approvers);
    const before = await sql<{ n: number }>(tmp.url, `SELECT count(*)::int AS n FROM "notification_outbox"`);
    const r = await outcome(a.operations.create({ description: 'x', ordererId: s.orderer.id, ...window(), keys: [{ keyid: expected === 'ok' ? s.key.keyid : 'no-such-key', usagesAllowed: 1 }] }));
    expect(r).toBe(expected);
    const after = await sql<{ n: number }>(tmp.url, `SELECT count(*)::int AS n FROM "notification_outbox"`);
    expect(after[0].n - before[0].n).toBe(events);
  });

  it('writes no event when the state change fails at commit after the event was written (one transaction)', async () => {
    const s = await scene();
    const before = await sql<{ n: number }>(tmp.url, `SELECT count(*)::int AS n FROM "notification_outbox"`);
    await expect(order(s, 'fail at commit')).rejects.toThrow(/refused at commit/);
    expect(await sql(tmp.url, `SELECT 1 FROM "operation" WHERE "description" = 'fail at commit'`)).toHaveLength(0);
    expect((await sql<{ n: number }>(tmp.url, `SELECT count(*)::int AS n FROM "notification_outbox"`))[0].n).toBe(before[0].n);
  });

  it('tells the orderer once when the operation becomes usable and when it is rejected', async () => {
    const s = await scene(2);
    const op = await order(s);
    await a.operations.addApproval(op.id, s.key.keyid, s.approvers[0].id);
    expect((await a.notifications.eventsOf(op.id)).map((e) => e.event)).toEqual(['operation.approval_requested']);
    await a.operations.addApproval(op.id, s.key.keyid, s.approvers[1].id);
    const events = await a.notifications.eventsOf(op.id);
    expect(events.map((e) => [e.event, e.recipientIds])).toEqual([
      ['operation.approval_requested', expect.any(Array)],
      ['operation.approved', [s.orderer.id]],
    ]);
    const other = await order(s);
    await a.operations.reject(other.id, 'wrong build', AUDIT);
    expect((await a.notifications.eventsOf(other.id)).map((e) => [e.event, e.recipientIds])).toEqual([
      ['operation.approval_requested', expect.any(Array)],
      ['operation.rejected', [s.orderer.id]],
    ]);
  });

  it('expands each event exactly once: one email per approver with an address who did not opt out, one call per webhook', async () => {
    const s = await scene(1, 4);
    await a.notifications.setOptOuts(s.approvers[1].id, { emailEnabled: false }, AUDIT);
    await a.notifications.setOptOuts(s.approvers[2].id, { webhookEnabled: false }, AUDIT);
    await a.notifications.setAddress(s.approvers[3].id, null, AUDIT);
    const op = await order(s);
    // Both replicas expand at once: the row lock and the unique deliveries make it once.
    await Promise.all([a.notifications.expand({ email: true, webhooks: ['teams', 'ops'] }), b.notifications.expand({ email: true, webhooks: ['teams', 'ops'] }), a.notifications.expand({ email: true, webhooks: ['teams', 'ops'] })]);
    const rows = await a.notifications.deliveriesOf(op.id);
    const emails = rows.filter((r) => r.channel === 'EMAIL');
    expect(emails.map((r) => r.target).sort()).toEqual([s.approvers[0].id, s.approvers[2].id].sort());
    expect(emails.every((r) => r.address?.endsWith('@example.test'))).toBe(true);
    const hooks = rows.filter((r) => r.channel === 'WEBHOOK');
    expect(hooks.map((r) => r.target).sort()).toEqual(['ops', 'teams']);
    for (const h of hooks) expect([...h.recipientIds].sort()).toEqual([s.approvers[0].id, s.approvers[1].id, s.approvers[3].id].sort());
    expect((await a.notifications.eventsOf(op.id))[0].expanded).toBe(true);
  });

  it('makes no webhook call for an event whose every recipient opted out of webhooks, and still emails them', async () => {
    const s = await scene(1, 2);
    for (const p of s.approvers) await a.notifications.setOptOuts(p.id, { webhookEnabled: false }, AUDIT);
    const op = await order(s);
    await a.notifications.expand({ email: true, webhooks: ['teams', 'ops'] });
    const rows = await a.notifications.deliveriesOf(op.id);
    expect(rows.map((r) => r.channel)).toEqual(['EMAIL', 'EMAIL']);
    expect((await a.notifications.eventsOf(op.id))[0].expanded).toBe(true);
  });

  it('creates no email delivery when SMTP is not configured', async () => {
    const s = await scene(1, 2);
    const op = await order(s);
    await a.notifications.expand({ email: false, webhooks: ['teams'] });
    expect((await a.notifications.deliveriesOf(op.id)).map((r) => [r.channel, r.target])).toEqual([['WEBHOOK', 'teams']]);
  });

  it('lets two replicas claim concurrently without ever holding the same delivery', async () => {
    const s = await scene(1, 6);
    for (let i = 0; i < 5; i++) await order(s);
    while ((await a.notifications.expand({ email: true, webhooks: [] }, 50)).length > 0);
    const due = await sql<{ n: number }>(tmp.url, `SELECT count(*)::int AS n FROM "notification_delivery" WHERE "state" = 'PENDING' AND "leaseUntil" IS NULL`);
    const claimed: string[] = [];
    for (let round = 0; round < 20; round++) {
      const [x, y] = await Promise.all([a.notifications.claim(60_000, 5, 3), b.notifications.claim(60_000, 5, 3)]);
      claimed.push(...x.map((d) => d.id), ...y.map((d) => d.id));
      if (x.length + y.length === 0) break;
    }
    expect(claimed.length).toBeGreaterThanOrEqual(30);
    expect(new Set(claimed).size).toBe(claimed.length);
    expect(claimed.length).toBe(due[0].n);
  });

  it('fences completion by the lease: a lost lease cannot complete, an expired one is claimed again, the last failure is DEAD', async () => {
    const s = await scene(1, 1);
    const op = await order(s);
    await a.notifications.expand({ email: true, webhooks: [] });
    await sql(tmp.url, `UPDATE "notification_delivery" SET "state" = 'SENT' WHERE "state" = 'PENDING' AND "outboxId" NOT IN (SELECT "id" FROM "notification_outbox" WHERE "operationId" = $1)`, [op.id]);
    const [first] = await a.notifications.claim(1, 3);
    expect(first.attempts).toBe(1);
    await new Promise((r) => setTimeout(r, 20));
    const [second] = await b.notifications.claim(60_000, 3);
    expect(second.id).toBe(first.id);
    expect(await a.notifications.markSent(first.id, first.leaseToken)).toBe(false);
    expect(await b.notifications.markFailed(second.id, second.leaseToken, 'smtp 451', 0)).toBe(true);
    const [third] = await a.notifications.claim(60_000, 3);
    expect(third.attempts).toBe(3);
    expect(await a.notifications.markFailed(third.id, third.leaseToken, 'smtp 451', null)).toBe(true);
    expect(await a.notifications.claim(60_000, 3)).toEqual([]);
    expect((await a.notifications.deliveriesOf(op.id))[0]).toMatchObject({ state: 'DEAD', attempts: 3, lastError: 'smtp 451' });
  });

  it('marks an approval request stale once its operation no longer awaits approval', async () => {
    const s = await scene(1, 1);
    const op = await order(s);
    await a.notifications.expand({ email: true, webhooks: [] });
    await sql(tmp.url, `UPDATE "notification_delivery" SET "state" = 'SENT' WHERE "state" = 'PENDING' AND "outboxId" NOT IN (SELECT "id" FROM "notification_outbox" WHERE "operationId" = $1)`, [op.id]);
    await a.operations.cancel(op.id, AUDIT);
    const [claimed] = await a.notifications.claim(60_000, 3);
    expect(claimed).toMatchObject({ staleReason: 'the operation no longer awaits approval', payload: { type: 'operation.approval_requested' } });
    expect(await a.notifications.markSkipped(claimed.id, claimed.leaseToken, 'decided')).toBe(true);
    expect((await a.notifications.deliveriesOf(op.id))[0]).toMatchObject({ state: 'SKIPPED', lastError: 'decided' });
  });

  it('marks an email stale once its recipient turned email off, and only that one', async () => {
    const s = await scene(1, 2);
    const op = await order(s);
    await a.notifications.expand({ email: true, webhooks: ['teams'] });
    await sql(tmp.url, `UPDATE "notification_delivery" SET "state" = 'SENT' WHERE "state" = 'PENDING' AND "outboxId" NOT IN (SELECT "id" FROM "notification_outbox" WHERE "operationId" = $1)`, [op.id]);
    await a.notifications.setOptOuts(s.approvers[1].id, { emailEnabled: false }, AUDIT);
    const claimed = await a.notifications.claim(60_000, 3);
    expect(claimed.map((d) => [d.channel, d.target, d.staleReason]).sort()).toEqual(
      [
        ['EMAIL', s.approvers[0].id, null],
        ['EMAIL', s.approvers[1].id, 'the recipient turned email off or was disabled'],
        ['WEBHOOK', 'teams', null],
      ].sort(),
    );
  });

  /** Every delivery due now, marked SENT, so the next claims see only the case's own. */
  // Earlier tests' events still unexpanded (a property's random number of them) would take an expand's batch, and
  // their deliveries a claim's: both settled, so a test's own expand and claim see only its own.
  const settleOthers = async () => {
    await sql(tmp.url, `UPDATE "notification_outbox" SET "expandedAt" = now() WHERE "expandedAt" IS NULL`);
    await sql(tmp.url, `UPDATE "notification_delivery" SET "state" = 'SENT', "leaseToken" = NULL, "leaseUntil" = NULL WHERE "state" = 'PENDING'`);
  };
  const kinds = (claimed: ClaimedDelivery[]) => ({
    admitted: claimed.filter((d) => d.staleReason === null && !d.heldNotice).length,
    notices: claimed.filter((d) => d.staleReason === null && d.heldNotice).length,
    held: claimed.filter((d) => d.staleReason === 'recipient_hourly_limit' || d.staleReason === 'endpoint_hourly_limit').length,
  });

  it('caps approval-request emails per recipient and hour exactly, with one held-back notice, while two replicas race to claim', async () => {
    // An orderer allowed on the key orders (and cancels) in a loop: each approver's mailbox gets at most `cap`
    // requests an hour, then one notice that more are waiting in the console, then nothing more that hour.
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), async (cap, n, batchA, batchB) => {
        await settleOthers();
        const s = await scene(1, 1);
        for (let i = 0; i < n; i++) await order(s, `flood ${i}`);
        while ((await a.notifications.expand({ email: true, webhooks: [] }, 50)).length > 0);
        const claimed: ClaimedDelivery[] = [];
        for (let round = 0; round < 40; round++) {
          const [x, y] = await Promise.all([a.notifications.claim(60_000, 5, batchA, cap), b.notifications.claim(60_000, 5, batchB, cap)]);
          claimed.push(...x, ...y);
          if (x.length + y.length === 0) break;
        }
        await settleOthers();
        expect(claimed.length).toBe(n);
        expect(new Set(claimed.map((d) => d.id)).size).toBe(n);
        expect(kinds(claimed)).toEqual({ admitted: Math.min(n, cap), notices: n > cap ? 1 : 0, held: Math.max(0, n - cap - 1) });
      }),
      { numRuns: 12 },
    );
  });

  it('counts the hour from the claims: requests admitted more than an hour ago no longer count, and a new notice may follow', async () => {
    await settleOthers();
    const s = await scene(1, 1);
    for (let i = 0; i < 4; i++) await order(s, `first hour ${i}`);
    await a.notifications.expand({ email: true, webhooks: [] }, 50);
    expect(kinds(await a.notifications.claim(60_000, 5, 10, 2))).toEqual({ admitted: 2, notices: 1, held: 1 });
    await settleOthers();
    // Cancelled requests are stale before the cap is counted: they use none of it.
    const cancelled = await order(s, 'cancelled at once');
    await a.operations.cancel(cancelled.id, AUDIT);
    await a.notifications.expand({ email: true, webhooks: [] }, 50);
    const [stale] = await a.notifications.claim(60_000, 5, 10, 2);
    expect(stale).toMatchObject({ staleReason: 'the operation no longer awaits approval', heldNotice: false });
    await settleOthers();
    await sql(tmp.url, `UPDATE "notification_delivery" SET "admittedAt" = "admittedAt" - interval '61 minutes', "heldAt" = "heldAt" - interval '61 minutes' WHERE "address" = $1`, [
      (await a.notifications.settings(s.approvers[0].id)).email,
    ]);
    for (let i = 0; i < 4; i++) await order(s, `second hour ${i}`);
    await a.notifications.expand({ email: true, webhooks: [] }, 50);
    expect(kinds(await a.notifications.claim(60_000, 5, 10, 2))).toEqual({ admitted: 2, notices: 1, held: 1 });
    await settleOthers();
  });

  it('does not cap the notices to the orderer (usable, rejected), nor count them against the cap', async () => {
    await settleOthers();
    const s = await scene(1, 1);
    await a.notifications.setAddress(s.orderer.id, `orderer-${hex(2)}@example.test`, AUDIT);
    for (let i = 0; i < 3; i++) {
      const op = await order(s, `ok ${i}`);
      await a.operations.reject(op.id, 'no', AUDIT);
    }
    await a.notifications.expand({ email: true, webhooks: [] }, 50);
    const claimed = await a.notifications.claim(60_000, 5, 20, 1);
    const toOrderer = claimed.filter((d) => d.target === s.orderer.id);
    expect(toOrderer.map((d) => [d.payload.type, d.staleReason, d.heldNotice])).toEqual(Array.from({ length: 3 }, () => ['operation.rejected', null, false]));
    await settleOthers();
  });

  /** `local@domain` with each letter's case chosen by `upper` (cycled): one mailbox, spelled another way. */
  const spelled = (address: string, upper: boolean[]) =>
    [...address].map((ch, i) => (upper[i % upper.length] ? ch.toUpperCase() : ch.toLowerCase())).join('');

  it('counts the hourly cap per mailbox, not per spelling: case variants of one address share it exactly while two replicas race', async () => {
    // The attack on the cap itself: one mailbox on file under several spellings (Ada@Example.com, ada@example.com,
    // ada@EXAMPLE.COM) for several approvers would get the cap once per spelling.
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), { minLength: 2, maxLength: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        async (cap, spellings, orders, batch) => {
          await settleOthers();
          const s = await scene(1, spellings.length);
          const mailbox = `ada.${hex(3)}@example.test`;
          for (const [i, p] of s.approvers.entries()) await a.notifications.setAddress(p.id, spelled(mailbox, spellings[i]), AUDIT);
          for (let i = 0; i < orders; i++) await order(s, `flood ${i}`);
          while ((await a.notifications.expand({ email: true, webhooks: [] }, 50)).length > 0);
          const claimed: ClaimedDelivery[] = [];
          for (let round = 0; round < 40; round++) {
            const [x, y] = await Promise.all([a.notifications.claim(60_000, 5, batch, cap), b.notifications.claim(60_000, 5, batch, cap)]);
            claimed.push(...x, ...y);
            if (x.length + y.length === 0) break;
          }
          await settleOthers();
          const n = spellings.length * orders;
          expect(claimed.length).toBe(n);
          expect(kinds(claimed)).toEqual({ admitted: Math.min(n, cap), notices: n > cap ? 1 : 0, held: Math.max(0, n - cap - 1) });
        },
      ),
      { numRuns: 12 },
    );
  });

  it.each([
    ['ok the domain is stored lower-cased (case-insensitive, RFC 5321 2.4), the local part as typed', 'Ada.Lovelace@Mail.EXAMPLE.Test', 'Ada.Lovelace@mail.example.test'],
    ['ok an address already canonical is kept', 'ada@example.test', 'ada@example.test'],
    ['ok surrounding whitespace never reaches the table', '  ada@Example.test\t', 'ada@example.test'],
  ])('%s', async (_n, typed, stored) => {
    const s = await seedSubject(a);
    expect((await a.notifications.setAddress(s.id, typed, AUDIT)).email).toBe(stored);
    expect((await a.notifications.settings(s.id)).email).toBe(stored);
  });

  it.each([
    ['ok case variants are one mailbox', ['Ada@Example.com', 'ada@example.com', 'ada@EXAMPLE.COM', 'ADA@example.COM'], 'ada@example.com'],
    ['ok surrounding whitespace is dropped', [' ada@example.com', 'ada@example.com\t'], 'ada@example.com'],
    ['ok a U-label domain and its A-label are one domain (IDNA)', ['ada@B\u00fccher.example', 'ada@xn--bcher-kva.EXAMPLE'], 'ada@xn--bcher-kva.example'],
    ['ok a local part differing only by Unicode normalisation is one', ['Jos\u00e9@example.com', 'jose\u0301@example.com'], 'jos\u00e9@example.com'],
  ])('%s', (_n, spellings, mailbox) => {
    expect(spellings.map(canonicalMailbox)).toEqual(spellings.map(() => mailbox));
  });

  it('caps approval-request webhook calls per endpoint and hour exactly, with one held-back summary, while two replicas race to claim', async () => {
    // The same flood through a chat channel: one call per event and endpoint, whoever the approvers are.
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), async (cap, n, batchA, batchB) => {
        await settleOthers();
        const endpoint = `chat-${hex(3)}`;
        const s = await scene(1, 2);
        for (let i = 0; i < n; i++) await order(s, `flood ${i}`);
        while ((await a.notifications.expand({ email: false, webhooks: [endpoint] }, 50)).length > 0);
        const claimed: ClaimedDelivery[] = [];
        for (let round = 0; round < 40; round++) {
          const [x, y] = await Promise.all([a.notifications.claim(60_000, 5, batchA, 20, cap), b.notifications.claim(60_000, 5, batchB, 20, cap)]);
          claimed.push(...x, ...y);
          if (x.length + y.length === 0) break;
        }
        await settleOthers();
        expect(claimed.map((d) => d.target)).toEqual(Array.from({ length: n }, () => endpoint));
        expect(new Set(claimed.map((d) => d.id)).size).toBe(n);
        expect(kinds(claimed)).toEqual({ admitted: Math.min(n, cap), notices: n > cap ? 1 : 0, held: Math.max(0, n - cap - 1) });
        expect(claimed.filter((d) => d.staleReason !== null).map((d) => d.staleReason)).toEqual(Array.from({ length: Math.max(0, n - cap - 1) }, () => 'endpoint_hourly_limit'));
      }),
      { numRuns: 12 },
    );
  });

  it('caps each endpoint on its own, and counts neither emails against an endpoint nor webhook calls against a mailbox', async () => {
    await settleOthers();
    const [chat, other] = [`chat-${hex(3)}`, `chat-${hex(3)}`];
    const s = await scene(1, 1);
    for (let i = 0; i < 3; i++) await order(s, `flood ${i}`);
    await a.notifications.expand({ email: true, webhooks: [chat, other] }, 50);
    const claimed = await a.notifications.claim(60_000, 5, 50, 2, 1);
    const by = (f: (d: ClaimedDelivery) => boolean) => kinds(claimed.filter(f));
    expect(by((d) => d.target === chat)).toEqual({ admitted: 1, notices: 1, held: 1 });
    expect(by((d) => d.target === other)).toEqual({ admitted: 1, notices: 1, held: 1 });
    expect(by((d) => d.channel === 'EMAIL')).toEqual({ admitted: 2, notices: 1, held: 0 });
    await settleOthers();
  });

  it('does not cap outcome webhook calls (usable, rejected), nor count them, nor stale requests, against the endpoint cap', async () => {
    await settleOthers();
    const endpoint = `chat-${hex(3)}`;
    const s = await scene(1, 1);
    for (let i = 0; i < 3; i++) await a.operations.reject((await order(s, `rejected ${i}`)).id, 'no', AUDIT);
    const usable = await order(s, 'usable');
    await a.operations.addApproval(usable.id, s.key.keyid, s.approvers[0].id);
    await a.notifications.expand({ email: false, webhooks: [endpoint] }, 50);
    const claimed = await a.notifications.claim(60_000, 5, 50, 20, 1);
    expect(claimed.filter((d) => d.payload.type !== 'operation.approval_requested').map((d) => [d.payload.type, d.staleReason, d.heldNotice]).sort()).toEqual(
      [...Array.from({ length: 3 }, () => ['operation.rejected', null, false]), ['operation.approved', null, false]].sort(),
    );
    // The requests were decided before the claim: stale, skipped before they count.
    expect(new Set(claimed.filter((d) => d.payload.type === 'operation.approval_requested').map((d) => d.staleReason))).toEqual(new Set(['the operation no longer awaits approval']));
    await settleOthers();
    // So the hour's one admission is still free for the next real request.
    await order(s, 'next');
    await a.notifications.expand({ email: false, webhooks: [endpoint] }, 50);
    expect(kinds(await a.notifications.claim(60_000, 5, 50, 20, 1))).toEqual({ admitted: 1, notices: 0, held: 0 });
    await settleOthers();
  });

  /** `url` with each letter of its host cased by `upper` (cycled). */
  const hostCased = (host: string, upper: boolean[]) => [...host].map((ch, i) => (upper[i % upper.length] ? ch.toUpperCase() : ch.toLowerCase())).join('');
  /** `text` with the unreserved characters chosen by `pick` percent-encoded (hex case by `lower`): one resource to RFC 3986 6.2.2.2. */
  const encoded = (text: string, pick: boolean[], lower: boolean) =>
    [...text]
      .map((ch, i) => {
        if (!pick[i % pick.length] || !/[A-Za-z0-9._~-]/.test(ch)) return ch;
        const h = ch.charCodeAt(0).toString(16).toUpperCase();
        return `%${lower ? h.toLowerCase() : h}`;
      })
      .join('');
  /** One spelling of `https://<host>/<path>?<query>` as an operator might configure it. */
  const spelling = fc.record({
    upper: fc.array(fc.boolean(), { minLength: 1, maxLength: 6 }),
    pick: fc.array(fc.boolean(), { minLength: 1, maxLength: 5 }),
    lowerHex: fc.boolean(),
    port: fc.boolean(),
    trailingDot: fc.boolean(),
    unicodeHost: fc.boolean(),
    fragment: fc.boolean(),
    emptyQuery: fc.boolean(),
  });
  const spell = (v: { upper: boolean[]; pick: boolean[]; lowerHex: boolean; port: boolean; trailingDot: boolean; unicodeHost: boolean; fragment: boolean; emptyQuery: boolean }, path: string, query = '') => {
    const host = `${v.unicodeHost ? 'b\u00fccher' : 'xn--bcher-kva'}.${hostCased('hooks.example', v.upper)}${v.trailingDot ? '.' : ''}`;
    const q = query ? `?${encoded(query, v.pick, v.lowerHex)}` : v.emptyQuery ? '?' : '';
    return `${hostCased('HTTPS', v.upper)}://${host}${v.port ? ':443' : ''}/${encoded(path, v.pick, v.lowerHex)}${q}${v.fragment ? '#channel' : ''}`;
  };

  it('ok spellings of one endpoint URL are one endpoint: scheme and host case, default port, IDNA, trailing dot, percent-encoding, fragment', () => {
    fc.assert(
      fc.property(spelling, spelling, fc.stringMatching(/^[A-Za-z][A-Za-z0-9._~-]{0,11}$/), (x, y, token) => {
        // A token of unreserved characters (not `.` or `..`: WHATWG resolves those as dot segments).
        const path = `services/T0/B1/${token}`;
        expect(canonicalEndpoint(spell(x, path, `sig=${token}`))).toBe(canonicalEndpoint(spell(y, path, `sig=${token}`)));
        expect(canonicalEndpoint(spell(x, path))).toBe(`https://xn--bcher-kva.hooks.example/${path}`);
        expect(canonicalEndpoint(canonicalEndpoint(spell(x, path)))).toBe(canonicalEndpoint(spell(x, path)));
      }),
      { numRuns: 300 },
    );
  });

  it.each([
    ['fail another path case (paths are case-sensitive: a Slack token)', 'https://hooks.example/services/T0/B1/abc', 'https://hooks.example/services/T0/B1/ABC'],
    ['fail another query (a Teams sig)', 'https://hooks.example/wf?sig=a', 'https://hooks.example/wf?sig=b'],
    ['fail another port', 'https://hooks.example/x', 'https://hooks.example:8443/x'],
    ['fail another scheme', 'http://127.0.0.1/x', 'https://127.0.0.1/x'],
    ['fail an encoded slash is not a slash (reserved, RFC 3986 6.2.2.2)', 'https://hooks.example/a/b', 'https://hooks.example/a%2Fb'],
    ['fail another host', 'https://hooks.example/x', 'https://hooks2.example/x'],
  ])('%s: two endpoints', (_n, x, y) => {
    expect(canonicalEndpoint(x)).not.toBe(canonicalEndpoint(y));
  });

  it.each([
    ['ok dot segments resolved (WHATWG)', 'https://hooks.example/a/./b/../c', 'https://hooks.example/a/c'],
    ['ok IPv4 written in hex is the address (WHATWG)', 'http://0x7f.0.0.1:80/x', 'http://127.0.0.1/x'],
    ['ok userinfo does not change the receiver', 'https://user:pw@hooks.example/x', 'https://hooks.example/x'],
    ['ok an empty path is /', 'https://Hooks.Example', 'https://hooks.example/'],
    ['ok a non-ASCII path is UTF-8 percent-encoded, hex upper-cased', 'https://hooks.example/caf\u00e9?x=%c3%a9', 'https://hooks.example/caf%C3%A9?x=%C3%A9'],
  ])('%s', (_n, url, canonical) => {
    expect(canonicalEndpoint(url)).toBe(canonical);
  });

  it('counts the webhook cap per endpoint URL, not per configured name: names spelling one URL share one cap exactly while two replicas race', async () => {
    // Two (or more) names configured with one URL got one cap each: the channel behind it got the cap times the names.
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.array(spelling, { minLength: 2, maxLength: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), async (cap, spellings, orders, batch) => {
        await settleOthers();
        const path = `services/T0/B1/${hex(6)}`;
        const endpoints = spellings.map((v, i) => ({ name: `chat-${i}-${hex(2)}`, url: spell(v, path) }));
        // A third endpoint of its own keeps its own cap.
        const own = { name: `own-${hex(2)}`, url: `https://hooks.example/${hex(6)}` };
        const s = await scene(1, 1);
        for (let i = 0; i < orders; i++) await order(s, `flood ${i}`);
        while ((await a.notifications.expand({ email: false, webhooks: [...endpoints, own].map((e) => e.name) }, 50)).length > 0);
        const claimed: ClaimedDelivery[] = [];
        for (let round = 0; round < 40; round++) {
          const [x, y] = await Promise.all([a.notifications.claim(60_000, 5, batch, 20, cap, [...endpoints, own]), b.notifications.claim(60_000, 5, batch, 20, cap, [own, ...endpoints])]);
          claimed.push(...x, ...y);
          if (x.length + y.length === 0) break;
        }
        await settleOthers();
        const n = spellings.length * orders;
        expect(kinds(claimed.filter((d) => d.target !== own.name))).toEqual({ admitted: Math.min(n, cap), notices: n > cap ? 1 : 0, held: Math.max(0, n - cap - 1) });
        expect(kinds(claimed.filter((d) => d.target === own.name))).toEqual({ admitted: Math.min(orders, cap), notices: orders > cap ? 1 : 0, held: Math.max(0, orders - cap - 1) });
      }),
      { numRuns: 10 },
    );
  });

  it('keeps the endpoint URL out of the database: the cap key is a digest of the canonical URL (Slack and Teams URLs are bearer secrets)', async () => {
    await settleOthers();
    const endpoint = { name: `chat-${hex(2)}`, url: `https://hooks.example/services/T0/B1/${hex(12)}` };
    const s = await scene(1, 1);
    const op = await order(s);
    await a.notifications.expand({ email: false, webhooks: [endpoint.name] }, 50);
    expect(kinds(await a.notifications.claim(60_000, 5, 10, 20, 5, [endpoint]))).toEqual({ admitted: 1, notices: 0, held: 0 });
    const [row] = await sql<{ capKey: string }>(tmp.url, `SELECT d."capKey" FROM "notification_delivery" d JOIN "notification_outbox" o ON o."id" = d."outboxId" WHERE o."operationId" = $1::uuid`, [op.id]);
    expect(row.capKey).toMatch(/^webhook:sha256:[0-9a-f]{64}$/);
    expect(row.capKey).not.toContain(endpoint.url.split('/').pop());
    await settleOthers();
  });

  /** The approval-request rounds written about `opId`: [round, recipients sorted]. */
  const rounds = async (opId: string) =>
    (await a.notifications.eventsOf(opId)).filter((e) => e.event === 'operation.approval_requested').map((e) => [e.round, [...e.recipientIds].sort()]);
  const ids = (...people: { id: string }[]) => people.map((p) => p.id).sort();
  /** The orderer's notices of a fall back written about `opId`: [round, recipients]. */
  const reopened = async (opId: string) =>
    (await a.notifications.eventsOf(opId)).filter((e) => e.event === 'operation.reopened').map((e) => [e.round, e.recipientIds]);

  it('asks again, in a new round, the approvers who can still approve and have not approved, when a withdrawal sends the operation back to REQUESTED', async () => {
    await settleOthers();
    // Two approvals required; approvers 0 and 1 approve, 2 and 3 do not; 4 is disabled; the orderer may approve too.
    const s = await scene(2, 5);
    await a.subjects.update(s.approvers[4].id, { enabled: false });
    const op = await order(s);
    await a.notifications.expand({ email: true, webhooks: ['chat'] }, 50);
    await a.operations.addApproval(op.id, s.key.keyid, s.approvers[0].id);
    await a.operations.addApproval(op.id, s.key.keyid, s.approvers[1].id);
    expect((await a.operations.get(op.id)).state).toBe('APPROVED');
    const requestId = `withdraw-${hex(4)}`;
    await b.subjects.update(s.approvers[0].id, { enabled: false }, { action: 'subject.update', outcome: 'SUCCESS', actorName: 'admin', requestId });
    expect((await a.operations.get(op.id)).state).toBe('REQUESTED');
    // Round 2 asks 2 and 3: not 0 (disabled), not 1 (approved, still counted), not 4 (disabled).
    expect(await rounds(op.id)).toEqual([
      [1, ids(s.approvers[0], s.approvers[1], s.approvers[2], s.approvers[3])],
      [2, ids(s.approvers[2], s.approvers[3])],
    ]);
    // Audited with the change that reopened it: the withdrawal names the new round.
    const [withdrawn] = (await a.audit.list({ action: 'operation.approval_withdrawn', requestId })).items;
    expect(withdrawn.details).toMatchObject({ reopened: true, approvalRequestRound: 2 });
    // Both replicas expand and claim at once: one delivery per recipient and endpoint for the round, sent once.
    await Promise.all([a.notifications.expand({ email: true, webhooks: ['chat'] }, 50), b.notifications.expand({ email: true, webhooks: ['chat'] }, 50)]);
    const [x, y] = await Promise.all([a.notifications.claim(60_000, 5, 50), b.notifications.claim(60_000, 5, 50)]);
    const claimed = [...x, ...y].filter((d) => d.payload.type === 'operation.approval_requested' && 'operation' in d.payload && d.payload.operation.id === op.id);
    expect(new Set(claimed.map((d) => d.id)).size).toBe(claimed.length);
    const live = claimed.filter((d) => d.staleReason === null);
    expect(live.map((d) => [d.channel, d.channel === 'EMAIL' ? d.target : d.recipients.map((r) => r.subjectId).sort()]).sort()).toEqual(
      [['EMAIL', s.approvers[2].id], ['EMAIL', s.approvers[3].id], ['WEBHOOK', ids(s.approvers[2], s.approvers[3])]].sort(),
    );
    expect(live.every((d) => 'operation' in d.payload && d.payload.round === 2)).toBe(true);
    // The first round's requests still queued are superseded, not sent a second time.
    expect(new Set(claimed.filter((d) => d.staleReason !== null).map((d) => d.staleReason))).toEqual(new Set([SUPERSEDED]));
    await settleOthers();
  });

  it('asks once per round when two replicas withdraw approvals of one operation at once, and again on each later fall back', async () => {
    for (let cycle = 0; cycle < 6; cycle++) {
      await settleOthers();
      const s = await scene(2, 6);
      const op = await order(s);
      await a.operations.addApproval(op.id, s.key.keyid, s.approvers[0].id);
      await a.operations.addApproval(op.id, s.key.keyid, s.approvers[1].id);
      // Replica a disables approver 0 while replica b takes approver 1's role: one fall back, one round.
      await Promise.all([
        (cycle % 2 ? a : b).subjects.update(s.approvers[0].id, { enabled: false }),
        (cycle % 2 ? b : a).subjects.update(s.approvers[1].id, { roles: [] }),
      ]);
      expect((await a.operations.get(op.id)).state).toBe('REQUESTED');
      const second = await rounds(op.id);
      expect(second.map(([r]) => r)).toEqual([1, 2]);
      // Whichever committed first decided the round: the other's approver may still count (approved) or be gone.
      expect(second[1][1]).toEqual(ids(s.approvers[2], s.approvers[3], s.approvers[4], s.approvers[5]));
      // The orderer is told of the fall back once, in the same round, whichever replica withdrew what.
      expect(await reopened(op.id)).toEqual([[2, [s.orderer.id]]]);
      // Approved again by 2 and 3 (the orderer told again), then 2 loses APPROVE: round 3 asks 4 and 5.
      await b.operations.addApproval(op.id, s.key.keyid, s.approvers[2].id);
      await a.operations.addApproval(op.id, s.key.keyid, s.approvers[3].id);
      expect((await a.notifications.eventsOf(op.id)).filter((e) => e.event === 'operation.approved').map((e) => e.round)).toEqual([1, 2]);
      await b.subjects.update(s.approvers[2].id, { enabled: false });
      expect(await rounds(op.id)).toEqual([...second, [3, ids(s.approvers[4], s.approvers[5])]]);
      expect(await reopened(op.id)).toEqual([
        [2, [s.orderer.id]],
        [3, [s.orderer.id]],
      ]);
    }
  });

  it('tells the orderer of a fall back within the hourly caps (never as the hour\'s notice), and not once the operation no longer awaits approval', async () => {
    await settleOthers();
    const s = await scene(1, 3);
    const chat = [{ name: 'chat', url: `https://chat-${hex(3)}.example.test/in` }];
    const claim = () => a.notifications.claim(60_000, 5, 50, 1, 1, chat);
    // The orderer's mailbox is approver 1's too (another spelling): one cap between them.
    const shared = (await a.notifications.settings(s.approvers[1].id)).email as string;
    await a.notifications.setAddress(s.orderer.id, shared.toUpperCase(), AUDIT);
    const op = await order(s);
    await a.notifications.expand({ email: true, webhooks: ['chat'] }, 50);
    expect(kinds(await claim())).toEqual({ admitted: 4, notices: 0, held: 0 });
    await a.operations.addApproval(op.id, s.key.keyid, s.approvers[0].id);
    await settleOthers();
    await a.subjects.update(s.approvers[0].id, { enabled: false });
    await a.notifications.expand({ email: true, webhooks: ['chat'] }, 50);
    const claimed = await claim();
    // The mailbox and the endpoint had their one request of the hour: the orderer's notices are held like a request,
    // and the hour's one notice or summary is an approval request's (its text is about approval requests).
    const toOrderer = claimed.filter((d) => d.payload.type === 'operation.reopened');
    expect(toOrderer.map((d) => [d.channel, d.heldNotice, d.staleReason]).sort()).toEqual([
      ['EMAIL', false, 'recipient_hourly_limit'],
      ['WEBHOOK', false, 'endpoint_hourly_limit'],
    ]);
    expect(claimed.filter((d) => d.heldNotice).every((d) => d.payload.type === 'operation.approval_requested')).toBe(true);
    await settleOthers();
    // Approved again before the orderer's notice went: it is stale (the approved notice tells him what counts).
    const again = await order(s);
    await a.operations.addApproval(again.id, s.key.keyid, s.approvers[1].id);
    await a.subjects.update(s.approvers[1].id, { enabled: false });
    await a.operations.addApproval(again.id, s.key.keyid, s.approvers[2].id);
    expect((await a.operations.get(again.id)).state).toBe('APPROVED');
    await a.notifications.expand({ email: true, webhooks: ['chat'] }, 50);
    const late = (await a.notifications.claim(60_000, 5, 50, 100, 100, chat)).filter((d) => d.payload.type === 'operation.reopened');
    expect(late.map((d) => d.staleReason)).toEqual(['the operation no longer awaits approval', 'the operation no longer awaits approval']);
    await settleOthers();
  });

  it('ok no new round while the operation stays REQUESTED, nor for a withdrawal from an operation already finished', async () => {
    await settleOthers();
    const s = await scene(2, 3);
    const op = await order(s);
    await a.operations.addApproval(op.id, s.key.keyid, s.approvers[0].id);
    await a.subjects.update(s.approvers[0].id, { enabled: false });
    // Still REQUESTED: everyone who may approve was asked in round 1 and still is.
    expect((await rounds(op.id)).map(([r]) => r)).toEqual([1]);
    const cancelled = await order(s);
    await a.operations.addApproval(cancelled.id, s.key.keyid, s.approvers[1].id);
    await a.operations.addApproval(cancelled.id, s.key.keyid, s.approvers[2].id);
    await a.operations.cancel(cancelled.id, AUDIT);
    await a.subjects.update(s.approvers[1].id, { enabled: false });
    expect((await rounds(cancelled.id)).map(([r]) => r)).toEqual([1]);
  });

  it('counts a new round against the hourly caps like the first', async () => {
    await settleOthers();
    const s = await scene(1, 2);
    const op = await order(s);
    await a.notifications.expand({ email: true, webhooks: [] }, 50);
    // Approver 1's one request of the hour is used by round 1.
    expect(kinds((await a.notifications.claim(60_000, 5, 50, 1)).filter((d) => d.target === s.approvers[1].id))).toEqual({ admitted: 1, notices: 0, held: 0 });
    await settleOthers();
    await a.operations.addApproval(op.id, s.key.keyid, s.approvers[0].id);
    await a.subjects.update(s.approvers[0].id, { enabled: false });
    await a.notifications.expand({ email: true, webhooks: [] }, 50);
    const again = await a.notifications.claim(60_000, 5, 50, 1);
    expect(again.map((d) => [d.target, d.heldNotice, d.staleReason])).toEqual([[s.approvers[1].id, true, null]]);
    await settleOthers();
  });

  it('asks the other enabled administrators to authorize a four-eyes session opened PENDING, and only those', async () => {
    const [creator, other] = [await seedAdmin(a), await seedAdmin(a)];
    const disabled = await seedAdmin(a);
    await a.subjects.update(disabled.id, { enabled: false });
    const expiresAt = new Date(Date.now() + 3_600_000);
    const pending = await a.adminSessions.open({ description: 'add key for product X', creatorId: creator.id, requiredApprovals: 1, expiresAt });
    const [event] = await a.notifications.eventsOf(pending.id);
    expect(event.event).toBe('admin_session.authorization_requested');
    expect(event.recipientIds).toContain(other.id);
    expect(event.recipientIds).not.toContain(creator.id);
    expect(event.recipientIds).not.toContain(disabled.id);
    // A session that needs nobody else (test/dev: 0 more approvals) is active at once: nobody is asked.
    const solo = await a.adminSessions.open({ description: 'dev', creatorId: creator.id, requiredApprovals: 0, expiresAt });
    expect(await a.notifications.eventsOf(solo.id)).toEqual([]);
    // Once authorized, a request still queued is stale.
    await a.notifications.setAddress(other.id, 'other@example.test', AUDIT);
    await a.notifications.expand({ email: true, webhooks: [] });
    await sql(tmp.url, `UPDATE "notification_delivery" SET "state" = 'SENT' WHERE "state" = 'PENDING' AND "outboxId" <> $1`, [event.id]);
    await a.adminSessions.authorize(pending.id, other.id);
    const claimed = await a.notifications.claim(60_000, 3);
    expect(claimed.map((d) => [d.target, d.staleReason])).toEqual([[other.id, 'the administrative session no longer awaits authorization']]);
  });

  it('prunes only old events whose every delivery is finished', async () => {
    const s = await scene(1, 2);
    const [done, due] = [await order(s), await order(s)];
    await a.notifications.expand({ email: true, webhooks: [] });
    await sql(tmp.url, `UPDATE "notification_delivery" SET "state" = 'SENT' WHERE "outboxId" IN (SELECT "id" FROM "notification_outbox" WHERE "operationId" = $1)`, [done.id]);
    await sql(tmp.url, `UPDATE "notification_delivery" SET "state" = 'DEAD' WHERE "outboxId" IN (SELECT "id" FROM "notification_outbox" WHERE "operationId" = $1) AND "target" = $2`, [due.id, s.approvers[0].id]);
    await sql(tmp.url, `UPDATE "notification_outbox" SET "createdAt" = now() - interval '100 days' WHERE "operationId" = ANY($1::uuid[])`, [[done.id, due.id]]);
    expect(await a.notifications.prune(90)).toBeGreaterThanOrEqual(1);
    expect(await a.notifications.eventsOf(done.id)).toEqual([]);
    expect(await a.notifications.deliveriesOf(done.id)).toEqual([]);
    // One of its deliveries is still PENDING: the event and both deliveries stay.
    expect(await a.notifications.deliveriesOf(due.id)).toHaveLength(2);
    expect(await a.notifications.prune(365)).toBe(0);
  });

  it('keeps settings per subject with defaults, audits every change, and refuses unknown subjects', async () => {
    const s = await seedSubject(a);
    expect(await a.notifications.settings(s.id)).toMatchObject({ email: null, emailEnabled: true, webhookEnabled: true, updatedAt: null });
    await a.notifications.setAddress(s.id, 'x@example.test', AUDIT);
    expect(await a.notifications.setOptOuts(s.id, { webhookEnabled: false }, AUDIT)).toMatchObject({ email: 'x@example.test', emailEnabled: true, webhookEnabled: false });
    const audits = await sql<{ details: { before: unknown; after: unknown } }>(tmp.url, `SELECT "details" FROM "audit_event" WHERE "details"->>'subjectId' = $1 ORDER BY "seq"`, [s.id]);
    expect(audits.map((x) => x.details.after)).toEqual([
      { email: 'x@example.test', emailEnabled: true, webhookEnabled: true },
      { email: 'x@example.test', emailEnabled: true, webhookEnabled: false },
    ]);
    expect(await outcome(a.notifications.settings('00000000-0000-0000-0000-000000000000'))).toBe('not_found');
    expect(await outcome(a.notifications.setOptOuts('nope', { emailEnabled: false }, AUDIT))).toBe('not_found');
  });
});
