import { Client } from 'pg';
import { sql } from '../../spec/temp-database';
import { outcome, twoReplicas } from '../../spec/fixtures';
import { AUDIT_GENESIS_HASH, auditEventHash, canonicalJson } from '../audit-hash';
import { AuditRepository, appendAuditTx } from './audit.repository';

describe(AuditRepository.name, () => {
  // Two handles = two independent pools, like two API replicas.
  const { tmp, dbA, a, b } = twoReplicas('audit');

  it('canonicalizes JSON independently of key order', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: null, y: 'x' }], c: undefined } })).toBe('{"a":{"d":[1,{"y":"x","z":null}]},"b":1}');
  });

  it('keeps one chain when two processes append concurrently', async () => {
    const first = await a.audit.append({ action: 'first', outcome: 'SUCCESS' });
    expect(first.prevHash).toBe(AUDIT_GENESIS_HASH);
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a : b).audit.append({ action: 'concurrent', outcome: i % 3 ? 'SUCCESS' : 'DENIED', details: { i, nested: { z: 1, a: [i] } } }),
      ),
    );
    const rows = await sql<{ s: string; prevHash: string; hash: string }>(tmp.url, 'SELECT seq::text AS s, "prevHash", hash FROM audit_event ORDER BY seq');
    expect(rows.filter((r, i) => i > 0 && r.prevHash !== rows[i - 1].hash)).toEqual([]);
    expect(await a.audit.verifyChain(7)).toMatchObject({ ok: true, checked: rows.length, total: rows.length, problems: [], problemCount: 0 });
  });

  it('keeps one chain when the database-side append and the Prisma transaction append interleave', async () => {
    const tricky = (i: number) => ({ i, prevHash: `"prevHash":"${i}`, name: 'Zoë 测试 🔏', quote: 'a"b\\c' });
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        i % 2
          ? b.audit.append({ action: 'sql-append', outcome: 'SUCCESS', actorName: 'Ångström', requestId: `"prevHash":"r${i}`, details: tricky(i) })
          : dbA.transaction((tx) => appendAuditTx(tx, { action: 'prisma-append', outcome: 'DENIED', details: tricky(i) })),
      ),
    );
    const v = await a.audit.verifyChain();
    expect(v.ok).toBe(true);
    const stored = await sql<{ n: string }>(tmp.url, `SELECT count(*)::text AS n FROM audit_event WHERE action IN ('sql-append', 'prisma-append')`);
    expect(stored[0].n).toBe('30');
  });

  it('names the same head for an export (with its counts) and a verification (without them)', async () => {
    await a.audit.append({ action: 'ends', outcome: 'SUCCESS' });
    const [snapshot, ends] = [await a.audit.chainSnapshot(), await b.audit.chainEnds()];
    const [stored] = await sql<{ head: string; n: string }>(tmp.url, 'SELECT max(seq)::text AS head, count(*)::text AS n FROM audit_event');
    expect(snapshot).toEqual({ head: stored.head, sealed: null, entries: Number(stored.n), checkpoints: 0 });
    expect(ends).toEqual({ head: stored.head, sealed: null });
  });

  it('stores the hash over the canonical content so it can be recomputed', async () => {
    const e = await a.audit.append({ action: 'key.create', outcome: 'SUCCESS', keyid: 'k1', details: { when: new Date(0), n: 1 } });
    expect(e.details).toEqual({ when: '1970-01-01T00:00:00.000Z', n: 1 });
    expect(auditEventHash(e)).toBe(e.hash);
  });

  it('refuses UPDATE, DELETE and TRUNCATE of audit rows, even for a superuser', async () => {
    await a.audit.append({ action: 'x', outcome: 'SUCCESS' });
    await expect(sql(tmp.url, `UPDATE audit_event SET action = 'forged'`)).rejects.toThrow(/append-only/);
    await expect(sql(tmp.url, 'DELETE FROM audit_event')).rejects.toThrow(/append-only/);
    await expect(sql(tmp.url, 'TRUNCATE audit_event')).rejects.toThrow(/append-only/);
    const grants = await sql<{ privilege_type: string }>(
      tmp.url,
      `SELECT privilege_type FROM information_schema.role_table_grants WHERE table_name = 'audit_event' AND grantee IN ('PUBLIC', 'keyserver_app')`,
    );
    const privileges = new Set(grants.map((g) => g.privilege_type));
    expect(privileges.has('INSERT')).toBe(true);
    expect(['UPDATE', 'DELETE', 'TRUNCATE'].filter((p) => privileges.has(p))).toEqual([]);
  });

  it('names the first tampered row when a superuser bypasses the trigger', async () => {
    for (let i = 0; i < 3; i++) await a.audit.append({ action: `tamper-${i}`, outcome: 'SUCCESS' });
    const target = await sql<{ seq: string }>(tmp.url, `SELECT seq::text FROM audit_event WHERE action = 'tamper-1'`);
    const c = new Client({ connectionString: tmp.url });
    await c.connect();
    try {
      await c.query(`SET session_replication_role = replica`);
      await c.query(`UPDATE audit_event SET outcome = 'DENIED' WHERE action = 'tamper-1'`);
    } finally {
      await c.end();
    }
    const v = await a.audit.verifyChain();
    expect(v).toMatchObject({ ok: false, firstBadSeq: target[0].seq, problems: [{ seq: target[0].seq, kind: 'content_changed' }], problemCount: 1 });
  });

  it('lists with filters and a seq cursor, newest first', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await a.audit.append({ action: 'page', outcome: 'SUCCESS', operationId: null, requestId: `p${i}` })).id);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await a.audit.list({ action: 'page', limit: 2, cursor });
      seen.push(...page.items.map((e) => e.id));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    expect((await a.audit.list({ requestId: 'p3' })).items.map((e) => e.id)).toEqual([ids[3]]);
    expect(await outcome(a.audit.list({ cursor: 'abc' }))).toBe('invalid_input');
    expect(await outcome(a.audit.list({ limit: 0 }))).toBe('invalid_input');
  });

  it.each([
    ['ok a cursor of the largest seq PostgreSQL holds', '9223372036854775807', 'ok'],
    ['ok a cursor with leading zeros', '0009', 'ok'],
    ['fail a cursor past bigint (19 digits pass the contract)', '9223372036854775808', 'invalid_input'],
    ['fail the largest 19-digit cursor', '9999999999999999999', 'invalid_input'],
    ['fail a cursor of 40 digits', '1'.repeat(40), 'invalid_input'],
    ['fail a cursor in other digits', '\u0661\u0662', 'invalid_input'],
  ])('%s: %s', async (_name, cursor, expected) => {
    expect(await outcome(a.audit.list({ cursor, limit: 1 }))).toBe(expected);
  });

  it.each([
    ['fail a seq past bigint', '9223372036854775808', 'invalid_input'],
    ['fail the largest 19-digit seq', '9999999999999999999', 'invalid_input'],
    ['fail a seq with a sign', '+1', 'invalid_input'],
    ['fail a seq in other digits', '\u0661', 'invalid_input'],
    ['fail the largest seq PostgreSQL holds (no such entry)', '9223372036854775807', 'not_found'],
  ])('audit-acknowledge %s: %s', async (_name, seq, expected) => {
    expect(await outcome(a.audit.acknowledgeLegacy(seq, 'Olga Operator', 'checked'))).toBe(expected);
  });
});
