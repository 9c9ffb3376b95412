import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Client } from 'pg';
import { AUDIT_GENESIS_HASH, auditEventHash, auditEventHashV1, auditHashParts, canonicalAuditContent, type AuditHashInput } from '@keyserver/audit-chain';
import { sql } from '../../spec/temp-database';
import { outcome, twoReplicas } from '../../spec/fixtures';
import type { AuditInput } from '../types';
import { AuditRepository, appendAuditTx, toAuditEvent } from './audit.repository';

// Issue 13 item 1: whatever a (refused) request puts into an audit event, the stored entry verifies. Real PostgreSQL:
// the defects were in what uuid columns, text encoding and jsonb do to the values the application hashed.

const UPPER_ID = '0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D';

/** Strings that PostgreSQL text, jsonb or JSON encoding handle differently from a JS string. */
const hostileChar = fc.constantFrom(
  '\u0000', '\ud800', '\udfff', '\udbff\udfff', '\u{1F50F}', '\u202e', '\u200b', '\ufeff', '\ufffd', '"', '\\', '\n', '\u001f', '\u007f',
  '\u2028', 'é', 'e\u0301', 'ß', 'İ', 'A', '"prevHash":"',
);
const hostileString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.array(hostileChar, { maxLength: 8 }).map((a) => a.join('')),
  fc.string({ unit: fc.constantFrom('\ud800', 'x', '\u0000'), minLength: 3000, maxLength: 3500 }),
);
const uuidLike = fc.oneof(
  fc.uuid().map((u) => u.toUpperCase()),
  fc.uuid(),
  fc.uuid().map((u) => u.replace(/[a-f]/g, (c, i: number) => (i % 2 ? c.toUpperCase() : c))),
  hostileString,
);
const jsonish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    hostileString,
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(hostileString, tie('value'), { maxKeys: 4 }),
  ),
})).value;

const auditInput: fc.Arbitrary<AuditInput> = fc.record({
  action: hostileString,
  outcome: fc.constantFrom('SUCCESS' as const, 'DENIED' as const, 'FAILED' as const),
  errorCode: fc.option(hostileString),
  actorTid: fc.option(hostileString),
  actorOid: fc.option(hostileString),
  actorName: fc.option(hostileString),
  actorClient: fc.option(hostileString),
  actorSubjectId: fc.option(uuidLike),
  keyid: fc.option(hostileString),
  operationId: fc.option(uuidLike),
  adminSessionId: fc.option(uuidLike),
  digest: fc.option(hostileString),
  requestId: fc.option(hostileString),
  details: fc.dictionary(hostileString, jsonish, { maxKeys: 5 }),
});

/** An object nested `n` levels deep. */
function nested(n: number): Record<string, unknown> {
  const top: Record<string, unknown> = {};
  let at = top;
  for (let i = 0; i < n; i++) at = (at['a'] = {}) as Record<string, unknown>;
  return top;
}
function cyclic(): Record<string, unknown> {
  const o: Record<string, unknown> = { name: 'loop', list: [1] };
  o['self'] = o;
  (o['list'] as unknown[]).push(o);
  return o;
}

describe(`${AuditRepository.name} canonical form`, () => {
  const r = twoReplicas('audit_canon');

  async function storedRows() {
    return (await r.dbA.prisma.auditEvent.findMany({ orderBy: { seq: 'asc' } })).map(toAuditEvent);
  }

  it.each<[string, AuditInput]>([
    ['ok upper-case operationId', { action: 'operation.cancel', outcome: 'DENIED', operationId: UPPER_ID }],
    ['ok upper-case adminSessionId', { action: 'key.update', outcome: 'DENIED', adminSessionId: UPPER_ID }],
    ['ok upper-case actorSubjectId', { action: 'x', outcome: 'DENIED', actorSubjectId: UPPER_ID }],
    ['ok lone high surrogate in keyid', { action: 'signorder.create', outcome: 'DENIED', keyid: 'fw-\ud800' }],
    ['ok lone low surrogate in actorName', { action: 'x', outcome: 'DENIED', actorName: '\udc00Ada' }],
    ['ok NUL in keyid', { action: 'x', outcome: 'DENIED', keyid: 'fw\u0000dev' }],
    ['ok NUL and lone surrogates in details', { action: 'x', outcome: 'DENIED', details: { 'k\u0000': 'v\u0000', s: ['\ud83d'], '\udc00': 1 } }],
    ['ok not a UUID in a uuid field', { action: 'x', outcome: 'DENIED', operationId: 'nope', adminSessionId: '{0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}' }],
    ['ok huge keyid', { action: 'x', outcome: 'DENIED', keyid: 'k'.repeat(100_000) }],
    ['ok numbers jsonb re-formats', { action: 'x', outcome: 'SUCCESS', details: { big: 1e21, tiny: 5e-324, neg: -0, frac: 0.1 + 0.2, exp: 1.5e300 } }],
    // The writer is total (ADR 0009 addendum "one reading per export line"): JSON.stringify throws on these.
    ['ok details nested 1000 deep', { action: 'x', outcome: 'DENIED', details: { deep: nested(1000) } }],
    ['ok details nested 10000 deep', { action: 'x', outcome: 'DENIED', details: { deep: nested(10_000) } }],
    ['ok details holding a cycle', { action: 'x', outcome: 'DENIED', details: cyclic() }],
    ['ok details holding a bigint and a Date deep down', { action: 'x', outcome: 'DENIED', details: { a: [{ n: 2n ** 70n, at: new Date(0), gone: undefined }] } }],
  ])('%s: appends and verifies', async (_name, input) => {
    const appended = await r.a.audit.append(input);
    const [row] = (await storedRows()).filter((e) => e.id === appended.id);
    expect(auditEventHash(row)).toBe(row.hash);
    expect(row.hash).toBe(appended.hash);
    expect(await r.a.audit.verifyChain()).toMatchObject({ ok: true });
  });

  it('ok any string in any field of any event appends (pool and Prisma transaction) and verifies', async () => {
    await fc.assert(
      fc.asyncProperty(auditInput, fc.boolean(), async (input, viaTx) => {
        const appended = viaTx ? await r.dbB.transaction((tx) => appendAuditTx(tx, input)) : await r.b.audit.append(input);
        const rows = await sql<{ hash: string }>(r.tmp.url, 'SELECT hash FROM audit_event WHERE id = $1', [appended.id]);
        // The hash the database finished equals the one the application computes from the row it reads back.
        const [row] = (await storedRows()).filter((e) => e.id === appended.id);
        expect(rows[0].hash).toBe(appended.hash);
        expect(auditEventHash(row)).toBe(row.hash);
        // The event the writer returns is the stored one.
        expect(appended).toEqual(row);
      }),
      { seed: 13_001, numRuns: 150 },
    );
    expect(await r.a.audit.verifyChain()).toMatchObject({ ok: true });
  });
});

describe(`${AuditRepository.name} database guard`, () => {
  const r = twoReplicas('audit_guard');

  const content = (over: Partial<AuditHashInput> = {}) =>
    canonicalAuditContent({
      id: randomUUID(), at: new Date(), action: 'x', outcome: 'DENIED', errorCode: null, actorTid: null, actorOid: null, actorName: null,
      actorClient: null, actorSubjectId: null, keyid: 'fw', operationId: null, adminSessionId: null, digest: null, requestId: null, details: {},
      ...over,
    });
  /** Calls keyserver_append_audit with the hash parts of `hashed` but the column values of `stored`. */
  const call = (hashed: ReturnType<typeof content>, stored: ReturnType<typeof content>) => {
    const { prefix, suffix } = auditHashParts(hashed);
    const s = stored;
    return sql(r.tmp.url, `SELECT keyserver_append_audit(1, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`, [
      prefix, suffix, s.id, s.at, s.action, s.outcome, s.errorCode, s.actorTid, s.actorOid, s.actorName, s.actorClient, s.actorSubjectId,
      s.keyid, s.operationId, s.adminSessionId, s.digest, s.requestId,
    ]);
  };

  it('ok appends when the hashed bytes are the canonical form of the stored values', async () => {
    const c = content({ details: { a: [1, 'é'] } });
    await expect(call(c, c)).resolves.toHaveLength(1);
  });

  it.each<[string, (c: ReturnType<typeof content>) => ReturnType<typeof content>]>([
    ['fail an upper-case UUID column', (c) => ({ ...c, operationId: c.id.toUpperCase() })],
    ['fail a text column other than the hashed one', (c) => ({ ...c, keyid: 'FW' })],
    ['fail another time', (c) => ({ ...c, at: new Date(c.at.getTime() + 1) })],
    ['fail another requestId', (c) => ({ ...c, requestId: 'r' })],
  ])('%s: refuses the append (SQLSTATE 22000 or 22P02) and stores nothing', async (_name, change) => {
    const c = content();
    const before = await sql<{ n: string }>(r.tmp.url, 'SELECT count(*)::text AS n FROM audit_event');
    const code = await call(c, change(c)).then(() => 'ok', (err: { code?: string }) => err.code);
    expect(code).toBe('22000');
    expect(await sql(r.tmp.url, 'SELECT count(*)::text AS n FROM audit_event')).toEqual(before);
  });
});

describe(`${AuditRepository.name} verification report`, () => {
  /** Runs statements as the superuser past the append-only trigger. */
  async function tamper(url: string, ...statements: string[]): Promise<void> {
    const c = new Client({ connectionString: url });
    await c.connect();
    try {
      await c.query('SET session_replication_role = replica');
      for (const s of statements) await c.query(s);
    } finally {
      await c.end();
    }
  }

  // A database of its own for each case (each reads the whole chain).
  describe('of a tampered chain', () => {
    const r = twoReplicas('audit_report');

    it('reports every bad entry and tells a link break (deleted, reordered rows) from a content change', async () => {
      const seqs: string[] = [];
      for (let i = 1; i <= 8; i++) seqs.push((await r.a.audit.append({ action: `e${i}`, outcome: 'SUCCESS' })).seq);
      await tamper(
        r.tmp.url,
        `UPDATE audit_event SET outcome = 'DENIED' WHERE seq = ${seqs[1]}`,
        `DELETE FROM audit_event WHERE seq = ${seqs[3]}`,
        `UPDATE audit_event SET action = 'forged' WHERE seq = ${seqs[6]}`,
      );
      const v = await r.a.audit.verifyChain(3);
      expect(v).toMatchObject({ ok: false, checked: 1, total: 7, firstBadSeq: seqs[1], problemCount: 3, legacyCount: 0 });
      expect(v.problems.map((p) => [p.seq, p.kind])).toEqual([
        [seqs[1], 'content_changed'],
        [seqs[4], 'link_broken'],
        [seqs[6], 'content_changed'],
      ]);
    });
  });

  describe('of a chain with v1 entries', () => {
    const r = twoReplicas('audit_report_v1');

    it('lists entries of the v1 writer that verify over the request bytes as legacy_hash_v1, and never accepts v1 after v2', async () => {
      // Rows exactly as the v1 function wrote them: the hash over the request's value, the column holding PostgreSQL's.
      let prev = AUDIT_GENESIS_HASH;
      const upper = randomUUID().toUpperCase();
      const mixed = randomUUID().replace(/[a-f]/, (c) => c.toUpperCase());
      const v1 = (requested: Partial<AuditHashInput>, stored: Partial<AuditHashInput> = requested, rule = auditEventHashV1) => {
        const base: AuditHashInput = {
          id: randomUUID(), at: new Date(Date.UTC(2026, 11, 1)), action: 'signorder.create', outcome: 'DENIED', errorCode: 'key_not_found', actorTid: 't',
          actorOid: 'o', actorName: 'Ada', actorClient: 'c', actorSubjectId: null, keyid: null, operationId: null, adminSessionId: null, digest: null,
          requestId: 'r', details: {}, prevHash: prev,
        };
        const hash = rule({ ...base, ...requested });
        const row = { ...base, ...stored, hash };
        prev = hash;
        return sql(r.tmp.url, `INSERT INTO audit_event (id, at, action, outcome, "errorCode", "actorTid", "actorOid", "actorName", "actorClient",
          "actorSubjectId", keyid, "operationId", "adminSessionId", digest, "requestId", details, "prevHash", hash)
          VALUES ($1, $2, $3, $4::"AuditOutcome", $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING seq::text`, [
          row.id, row.at, row.action, row.outcome, row.errorCode, row.actorTid, row.actorOid, row.actorName, row.actorClient, row.actorSubjectId,
          row.keyid, row.operationId, row.adminSessionId, row.digest, row.requestId, JSON.stringify(row.details), row.prevHash, row.hash,
        ]).then((rows) => (rows[0] as { seq: string }).seq);
      };
      const clean = await v1({ keyid: 'fw-dev' });
      const upperOp = await v1({ operationId: upper }, { operationId: upper.toLowerCase() });
      const surrogate = await v1({ keyid: 'fw-\udbff' }, { keyid: 'fw-\ufffd' });
      const both = await v1({ adminSessionId: upper, keyid: '\udc00' }, { adminSessionId: upper.toLowerCase(), keyid: '\ufffd' });
      const mixedCase = await v1({ operationId: mixed }, { operationId: mixed.toLowerCase() });
      const head = await sql<{ hash: string }>(r.tmp.url, 'SELECT hash FROM audit_event ORDER BY seq DESC LIMIT 1');
      expect(head[0].hash).toBe(prev);
      const v2 = await r.a.audit.append({ action: 'x', outcome: 'SUCCESS', operationId: upper });
      prev = v2.hash;
      const late = await v1({ keyid: 'late' });

      const v = await r.a.audit.verifyChain();
      expect(v).toMatchObject({ ok: false, total: 7, checked: 4, legacyCount: 3, problemCount: 2 });
      expect(v.legacy.map((e) => [e.seq, e.kind])).toEqual([[upperOp, 'legacy_hash_v1'], [surrogate, 'legacy_hash_v1'], [both, 'legacy_hash_v1']]);
      expect(v.legacy[0].reason).toContain('upper-case operationId');
      expect(v.legacy[1].reason).toContain('U+DBFF in keyid');
      expect(v.problems.map((p) => [p.seq, p.kind, p.acknowledgeable])).toEqual([[mixedCase, 'content_changed', true], [late, 'content_changed', undefined]]);
      expect(v.problems.map((p) => p.seq)).not.toContain(clean);

      // The repair step: an operator acknowledges the v1 entry that cannot be reconstructed, never a later one.
      expect(await outcome(r.a.audit.acknowledgeLegacy(late, 'Olga Operator', 'checked'))).toBe('invalid_state');
      expect(await outcome(r.a.audit.acknowledgeLegacy(clean, 'Olga Operator', 'checked'))).toBe('invalid_state');
      expect(await outcome(r.a.audit.acknowledgeLegacy('999999', 'Olga Operator', 'checked'))).toBe('not_found');
      expect(await outcome(r.a.audit.acknowledgeLegacy(mixedCase, ' ', 'checked'))).toBe('invalid_input');
      const ack = await r.a.audit.acknowledgeLegacy(mixedCase, 'Olga Operator', 'request log shows a mixed-case operationid');
      expect(ack).toMatchObject({ action: 'audit.legacy_acknowledged', actorName: 'Olga Operator', details: { seq: mixedCase } });
      const after = await r.a.audit.verifyChain();
      expect(after).toMatchObject({ legacyCount: 4, problemCount: 1, problems: [{ seq: late, kind: 'content_changed' }] });
      expect(after.legacy[3]).toEqual({ seq: mixedCase, kind: 'legacy_hash_v1', reason: `acknowledged by entry seq ${ack.seq} (Olga Operator): request log shows a mixed-case operationid` });
    });
  });
});
