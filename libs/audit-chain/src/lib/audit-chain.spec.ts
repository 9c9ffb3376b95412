import { createHash, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import {
  AUDIT_GENESIS_HASH,
  AUDIT_INDEXED_TEXT_MAX,
  auditEventHash,
  auditEventHashV1,
  auditHashParts,
  canonicalAuditContent,
  canonicalJson,
  storableText,
  verifyAuditExport,
  type AuditHashInput,
} from './audit-chain';

/** A valid exported chain of `n` entries, as GET /api/v1/audit/export writes it. */
function chain(n: number, rule: (e: AuditHashInput) => string = auditEventHash, prevHash = AUDIT_GENESIS_HASH, from = 1): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let prev = prevHash;
  for (let i = from; i < from + n; i++) {
    const e: AuditHashInput & { seq: string } = {
      seq: String(i),
      id: randomUUID(),
      at: new Date(Date.UTC(2026, 10, 29, 1, 0, i)),
      action: 'subject.update',
      outcome: 'SUCCESS',
      errorCode: null,
      actorTid: 't',
      actorOid: 'o',
      actorName: 'Ada',
      actorClient: 'c',
      actorSubjectId: null,
      keyid: null,
      operationId: null,
      adminSessionId: null,
      digest: null,
      requestId: `r${i}`,
      details: { n: i, nested: { b: 1, a: [1, 2] } },
      prevHash: prev,
    };
    const hash = rule(e);
    out.push({ ...e, at: e.at.toISOString(), hash });
    prev = hash;
  }
  return out;
}

const jsonl = (rows: Record<string, unknown>[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

describe(canonicalJson.name, () => {
  it('sorts keys recursively and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: null, y: 'x' }], c: undefined } })).toBe('{"a":{"d":[1,{"y":"x","z":null}]},"b":1}');
  });
});

describe(auditEventHash.name, () => {
  it('is the sha256 of the canonical content, independent of key order', () => {
    const [row] = chain(1);
    const { seq: _seq, hash, ...content } = row;
    const shuffled = Object.fromEntries(Object.entries(content).reverse());
    expect(auditEventHash({ ...(shuffled as unknown as AuditHashInput), at: new Date(String(row['at'])) })).toBe(hash);
  });
});

describe(auditHashParts.name, () => {
  it.each([
    ['ok plain event', {}],
    ['ok details holding a prevHash key and quotes', { details: { prevHash: 'x"y', nested: { prevHash: '"prevHash":"' } } }],
    ['ok requestId with the marker text', { requestId: '"prevHash":"' }],
    ['ok non-ASCII names', { actorName: 'Zoë Ångström 测试', details: { note: 'emoji 🔏' } }],
  ] as const)('%s: prefix + prevHash + suffix hashes like auditEventHash', (_name, extra) => {
    const [first] = chain(1);
    const base = { ...first, at: new Date(String(first['at'])), prevHash: 'a'.repeat(64), ...extra } as unknown as AuditHashInput;
    const { prevHash, ...rest } = base;
    delete (rest as Record<string, unknown>)['seq'];
    delete (rest as Record<string, unknown>)['hash'];
    const { prefix, suffix } = auditHashParts(rest);
    const viaParts = createHash('sha256').update(prefix + prevHash + suffix).digest('hex');
    expect(viaParts).toBe(auditEventHash(base));
  });
});

describe(verifyAuditExport.name, () => {
  it('verifies every entry of an intact export and reports the chain head', () => {
    const rows = chain(4);
    expect(verifyAuditExport(jsonl(rows))).toEqual({
      ok: true, checked: 4, total: 4, problems: [], problemCount: 0, legacy: [], legacyCount: 0, lastHash: rows[3]['hash'],
    });
  });

  it('accepts an empty export', () => {
    expect(verifyAuditExport('')).toMatchObject({ ok: true, checked: 0, total: 0, lastHash: AUDIT_GENESIS_HASH });
  });

  it.each([
    ['fail edited content: content_changed only', (rows: Record<string, unknown>[]) => (rows[2]['action'] = 'key.create'), [['3', 'content_changed']]],
    ['fail removed entry: link_broken only', (rows: Record<string, unknown>[]) => rows.splice(1, 1), [['3', 'link_broken']]],
    ['fail removed first entry: link_broken at the new first', (rows: Record<string, unknown>[]) => rows.splice(0, 1), [['2', 'link_broken']]],
    ['fail inserted copy: link_broken twice', (rows: Record<string, unknown>[]) => rows.splice(2, 0, { ...rows[0] }), [['1', 'link_broken'], ['3', 'link_broken']]],
    ['fail swapped neighbours: link breaks, contents intact', (rows: Record<string, unknown>[]) => rows.splice(1, 2, rows[2], rows[1]), [['3', 'link_broken'], ['2', 'link_broken'], ['4', 'link_broken']]],
    ['fail two edits and a deletion: each listed', (rows: Record<string, unknown>[]) => {
      rows[0]['actorName'] = 'Eve';
      rows[3]['details'] = {};
      rows.splice(4, 1);
    }, [['1', 'content_changed'], ['4', 'content_changed'], ['6', 'link_broken']]],
    ['fail recomputed hash without relinking: content intact, next link broken', (rows: Record<string, unknown>[]) => {
      rows[1]['action'] = 'key.create';
      rows[1]['hash'] = auditEventHash({ ...(rows[1] as unknown as AuditHashInput), at: new Date(String(rows[1]['at'])) });
    }, [['3', 'link_broken']]],
  ])('%s', (_name, tamper, problems) => {
    const rows = chain(6);
    tamper(rows);
    const r = verifyAuditExport(jsonl(rows));
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual(problems);
    expect([r.ok, r.problemCount, r.firstBadSeq]).toEqual([false, problems.length, problems[0][0]]);
  });

  it('goes on after a line that is not an entry and keeps the chain from the last entry', () => {
    const lines = jsonl(chain(3)).trim().split('\n');
    const r = verifyAuditExport([lines[0], '{not json', lines[1], lines[2]].join('\n'));
    expect(r.problems).toEqual([{ seq: 'line 2', kind: 'not_an_entry', reason: 'not JSON' }]);
    expect([r.total, r.checked]).toEqual([4, 1]);
  });

  it.each([
    ['fail edited content', (rows: Record<string, unknown>[]) => (rows[2]['action'] = 'key.create'), '3', 2],
    ['fail edited details', (rows: Record<string, unknown>[]) => (rows[1]['details'] = { n: 99 }), '2', 1],
    ['fail edited time', (rows: Record<string, unknown>[]) => (rows[0]['at'] = '2026-11-29T01:00:59.000Z'), '1', 0],
    ['fail removed entry', (rows: Record<string, unknown>[]) => rows.splice(1, 1), '3', 1],
    ['fail reordered entries', (rows: Record<string, unknown>[]) => rows.reverse(), '4', 0],
    ['fail recomputed hash without relinking', (rows: Record<string, unknown>[]) => {
      rows[1]['action'] = 'key.create';
      rows[1]['hash'] = auditEventHash({ ...(rows[1] as unknown as AuditHashInput), at: new Date(String(rows[1]['at'])) });
    }, '3', 2],
  ])('%s names the first bad seq', (_name, tamper, seq, checked) => {
    const rows = chain(4);
    tamper(rows);
    expect(verifyAuditExport(jsonl(rows))).toMatchObject({ ok: false, firstBadSeq: seq, checked });
  });

  it.each([
    ['fail a line that is not JSON', '{not json'],
    ['fail a JSON line that is not an object', 'null'],
  ])('%s names the line', (_name, line) => {
    const text = jsonl(chain(2)) + `${line}\n`;
    expect(verifyAuditExport(text)).toMatchObject({ ok: false, firstBadSeq: 'line 3', checked: 2 });
  });

  it('refuses an entry without its hash fields', () => {
    const rows = chain(2);
    delete rows[1]['prevHash'];
    expect(verifyAuditExport(jsonl(rows))).toMatchObject({ ok: false, firstBadSeq: '2', reason: 'not an audit entry' });
  });
});

// Hostile strings: whatever PostgreSQL text, jsonb and UTF-8 encoding treat specially.
const hostile = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 10 }),
  fc.array(fc.constantFrom('\u0000', '\ud800', '\udfff', '\ud83d\udd0f', '\u202e', '\u200b', '\ufffd', '"', '\\', '\u001f', 'A', 'ß'), { maxLength: 6 }).map((a) => a.join('')),
);
const json = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small' }, hostile, fc.double(), fc.boolean(), fc.constant(null), fc.array(tie('v'), { maxLength: 3 }), fc.dictionary(hostile, tie('v'), { maxKeys: 3 })),
})).v;
const content = fc.record({
  id: fc.uuid(),
  at: fc.date({ min: new Date(0), max: new Date(Date.UTC(9999, 0)), noInvalidDate: true }),
  action: hostile,
  outcome: fc.constantFrom('SUCCESS', 'DENIED', 'FAILED'),
  errorCode: fc.option(hostile),
  actorTid: fc.option(hostile),
  actorOid: fc.option(hostile),
  actorName: fc.option(hostile),
  actorClient: fc.option(hostile),
  actorSubjectId: fc.option(fc.oneof(fc.uuid().map((u) => u.toUpperCase()), hostile)),
  keyid: fc.option(fc.oneof(hostile, fc.string({ minLength: AUDIT_INDEXED_TEXT_MAX - 2, maxLength: AUDIT_INDEXED_TEXT_MAX + 3 }))),
  operationId: fc.option(fc.oneof(fc.uuid().map((u) => u.toUpperCase()), hostile)),
  adminSessionId: fc.option(fc.uuid()),
  digest: fc.option(hostile),
  requestId: fc.option(hostile),
  details: fc.dictionary(hostile, json, { maxKeys: 4 }),
});
// eslint-disable-next-line no-control-regex -- NUL is what the canonical form must remove
const isWellFormed = (s: string) => !/\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
const strings = (v: unknown): string[] =>
  typeof v === 'string' ? [v] : Array.isArray(v) ? v.flatMap(strings) : v && typeof v === 'object' ? Object.entries(v).flatMap(([k, x]) => [k, ...strings(x)]) : [];

describe(canonicalAuditContent.name, () => {
  const opts = { seed: 13_002, numRuns: 300 };

  it('ok yields only storable strings, lower-case UUIDs and short indexed columns, and is idempotent but for the escape of its own keys', () => {
    fc.assert(
      fc.property(content, (c) => {
        const canon = canonicalAuditContent(c);
        expect(strings({ ...canon, at: null }).every(isWellFormed)).toBe(true);
        for (const f of ['id', 'actorSubjectId', 'operationId', 'adminSessionId'] as const) {
          expect(canon[f] === null || /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(canon[f] as string)).toBe(true);
        }
        expect((canon.keyid ?? '').length).toBeLessThanOrEqual(AUDIT_INDEXED_TEXT_MAX);
        // Fed back as a caller's event, the writer's own `column:`/`caller:` keys are a caller's: escaped once more.
        const escapedAgain = Object.fromEntries(Object.entries(canon.details).map(([k, v]) => [/^(column|caller):/.test(k) ? `caller:${k}` : k, v]));
        expect(canonicalAuditContent(canon)).toEqual({ ...canon, details: escapedAgain });
      }),
      opts,
    );
  });

  it('ok survives the JSON round trip an export makes: the exported entry verifies', () => {
    fc.assert(
      fc.property(content, (c) => {
        const canon = { ...canonicalAuditContent(c), prevHash: AUDIT_GENESIS_HASH };
        const line = JSON.stringify({ ...canon, seq: '1', at: canon.at.toISOString(), hash: auditEventHash(canon) });
        expect(verifyAuditExport(line)).toMatchObject({ ok: true, checked: 1 });
      }),
      opts,
    );
  });

  it('ok prefix + prevHash + suffix hashes like auditEventHash for any content', () => {
    fc.assert(
      fc.property(content, fc.stringMatching(/^[0-9a-f]{64}$/), (c, prevHash) => {
        const canon = canonicalAuditContent(c);
        const { prefix, suffix } = auditHashParts(canon);
        expect(createHash('sha256').update(prefix + prevHash + suffix).digest('hex')).toBe(auditEventHash({ ...canon, prevHash }));
      }),
      opts,
    );
  });

  it.each([
    ['ok upper-case UUID becomes lower-case', { operationId: 'AB0C3D4E-0000-4000-8000-00000000000F' }, { operationId: 'ab0c3d4e-0000-4000-8000-00000000000f' }],
    ['ok not a UUID moves to details', { operationId: 'nope' }, { operationId: null, details: { 'column:operationId': 'nope' } }],
    ['ok lone surrogate and NUL become U+FFFD', { keyid: 'a\ud800b\u0000' }, { keyid: 'a\ufffdb\ufffd' }],
    ['ok a valid pair stays', { keyid: '\ud83d\udd0f' }, { keyid: '\ud83d\udd0f' }],
    ['ok keys differing only in unstorable characters stay apart', { details: { '\ud800': 1, '\udc00': 2, '\ufffd': 3 } }, { details: { '\ufffd': 3, '\ufffd~2': 1, '\ufffd~3': 2 } }],
    ['ok a __proto__ key stays a member', { details: JSON.parse('{"__proto__":{"x":1}}') as Record<string, unknown> }, { details: JSON.parse('{"__proto__":{"x":1}}') as Record<string, unknown> }],
    ['ok a huge keyid is cut in its column and kept whole in details', { keyid: 'k'.repeat(600) }, { keyid: `${'k'.repeat(AUDIT_INDEXED_TEXT_MAX - 1)}…`, details: { 'column:keyid': 'k'.repeat(600) } }],
    ['ok a caller key in the moved namespace is escaped', { details: { 'column:keyid': 'planted', other: 1 } }, { details: { 'caller:column:keyid': 'planted', other: 1 } }],
    ['ok a caller key in the escape namespace is escaped too (injective)', { details: { 'caller:column:keyid': 1, 'column:keyid': 2 } }, { details: { 'caller:caller:column:keyid': 1, 'caller:column:keyid': 2 } }],
    ['ok the moved value and a caller key of the same name stay apart', { keyid: 'k'.repeat(600), details: { 'column:keyid': 'x' } }, { details: { 'column:keyid': 'k'.repeat(600), 'caller:column:keyid': 'x' } }],
    ['ok Dates, undefined, NaN and bigint as JSON reads them back', { details: { d: new Date(0), u: undefined, n: NaN, b: BigInt(7) } }, { details: { d: '1970-01-01T00:00:00.000Z', n: null, b: '7' } }],
  ] as const)('%s', (_name, input, expected) => {
    const [row] = chain(1);
    const base = { ...row, details: {}, at: new Date(String(row['at'])) } as unknown as AuditHashInput;
    const canon = canonicalAuditContent({ ...base, ...(input as Partial<AuditHashInput>) });
    expect(canon).toMatchObject(expected);
    if ('details' in expected) expect(Object.keys(canon.details).sort()).toEqual(Object.keys(expected.details).sort());
  });

  it('fail a long keyid and a short one with a planted details key: they never store (or hash) alike', () => {
    const [row] = chain(1);
    const base = { ...row, details: {}, at: new Date(String(row['at'])) } as unknown as AuditHashInput;
    const long = 'k'.repeat(AUDIT_INDEXED_TEXT_MAX + 1);
    const honest = canonicalAuditContent({ ...base, keyid: long });
    const forged = canonicalAuditContent({ ...base, keyid: `${'k'.repeat(AUDIT_INDEXED_TEXT_MAX - 1)}…`, details: { 'column:keyid': long } });
    expect(forged.keyid).toBe(honest.keyid);
    expect(canonicalJson(forged.details)).not.toBe(canonicalJson(honest.details));
    expect(auditEventHash({ ...forged, prevHash: '0'.repeat(64) })).not.toBe(auditEventHash({ ...honest, prevHash: '0'.repeat(64) }));
  });

  it('ok details of any value JSON.stringify takes store exactly as JSON reads them back (the depth bound changes nothing there)', () => {
    const [row] = chain(1);
    const base = { ...row, details: {}, at: new Date(String(row['at'])) } as unknown as AuditHashInput;
    const asJson = (v: unknown) => JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? 'null') as unknown;
    fc.assert(
      fc.property(
        fc.anything({ maxDepth: 5, withBigInt: true, withBoxedValues: true, withDate: true, withMap: true, withSet: true, withNullPrototype: true, withSparseArray: true, withObjectString: true }),
        (v) => {
          expect(canonicalAuditContent({ ...base, details: { v } }).details).toEqual(canonicalAuditContent({ ...base, details: asJson({ v }) }).details);
        },
      ),
      { seed: 13_004, numRuns: 500 },
    );
  });

  it.each([
    ['ok a value nested deeper than the bound is stored as a marker text', () => {
      const top: Record<string, unknown> = {};
      let at = top;
      for (let i = 0; i < 10_000; i++) at = (at['a'] = {}) as Record<string, unknown>;
      return top;
    }],
    ['ok a value that contains itself is stored as a marker text', () => {
      const o: Record<string, unknown> = { list: [] };
      o['self'] = o;
      (o['list'] as unknown[]).push(o, { shared: 1 });
      return o;
    }],
  ])('%s: the writer is total', (_name, details) => {
    const [row] = chain(1);
    const base = { ...row, at: new Date(String(row['at'])) } as unknown as AuditHashInput;
    const canon = { ...canonicalAuditContent({ ...base, details: details() }), prevHash: AUDIT_GENESIS_HASH };
    const text = JSON.stringify(canon.details);
    expect(text).toMatch(/…(nested deeper than 100 levels|circular)/);
    const line = JSON.stringify({ ...canon, seq: '1', at: canon.at.toISOString(), hash: auditEventHash(canon) });
    expect(verifyAuditExport(line)).toMatchObject({ ok: true, checked: 1 });
  });

  it('is the identity on already storable strings', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme' }), (s) => storableText(s) === s), { seed: 13_003 });
  });
});

describe(`${verifyAuditExport.name} of v1 entries`, () => {
  /** Entry `seq` of a v1 chain whose hash no rule reproduces (as a mixed-case UUID of the v1 writer left it). */
  function v1ChainWithUnverifiable(): Record<string, unknown>[] {
    const rows = chain(3, auditEventHashV1);
    const e = { ...rows[1], operationId: randomUUID().replace(/[a-f]/, (c) => c.toUpperCase()), at: new Date(String(rows[1]['at'])) } as unknown as AuditHashInput;
    // Rebuild the chain from entry 2 on: its hash covered the mixed-case id, its row holds the lower-case one.
    const hash = auditEventHashV1(e);
    rows[1] = { ...rows[1], operationId: (e.operationId as string).toLowerCase(), hash };
    rows[2] = { ...rows[2], prevHash: hash };
    rows[2]['hash'] = auditEventHashV1({ ...(rows[2] as unknown as AuditHashInput), at: new Date(String(rows[2]['at'])) });
    return rows;
  }
  const ack = (rows: Record<string, unknown>[], details: Record<string, unknown>) => {
    const [a] = chain(1, auditEventHash, String(rows[rows.length - 1]['hash']), rows.length + 1);
    a['action'] = 'audit.legacy_acknowledged';
    a['details'] = details;
    a['hash'] = auditEventHash({ ...(a as unknown as AuditHashInput), at: new Date(String(a['at'])) });
    return [...rows, a];
  };

  it('accepts v1 entries before the first v2 entry and lists an unverifiable one as acknowledgeable', () => {
    const rows = v1ChainWithUnverifiable();
    const r = verifyAuditExport(jsonl([...rows, ...chain(1, auditEventHash, String(rows[2]['hash']), 4)]));
    expect(r.problems).toEqual([{ seq: '2', kind: 'content_changed', reason: expect.stringContaining('before the v2 cutover'), acknowledgeable: true }]);
  });

  // An acknowledgement that names the entry counts only under a signed checkpoint (ADR 0048 addendum "acknowledgements
  // need a seal"; the sealed cases are in audit-checkpoints.spec.ts): here none, so the entry is acknowledgement_unsealed.
  it.each([
    ['fail an acknowledgement naming seq and stored hash, no checkpoint covering it', (rows: Record<string, unknown>[]) => ({ seq: '2', hash: rows[1]['hash'], reason: 'checked' }), 'acknowledgement_unsealed'],
    ['fail an acknowledgement naming another hash', () => ({ seq: '2', hash: 'f'.repeat(64), reason: 'checked' }), 'content_changed'],
    ['fail an acknowledgement naming another seq', (rows: Record<string, unknown>[]) => ({ seq: '3', hash: rows[1]['hash'], reason: 'checked' }), 'content_changed'],
  ])('%s: %s', (_name, details, kind) => {
    const rows = v1ChainWithUnverifiable();
    const r = verifyAuditExport(jsonl(ack(rows, details(rows))));
    expect([r.ok, r.problems.map((p) => [p.seq, p.kind]), r.legacy]).toEqual([false, [['2', kind]], []]);
  });

  it('fail an acknowledged entry whose link is broken stays a problem', () => {
    const rows = v1ChainWithUnverifiable();
    rows[1]['prevHash'] = 'e'.repeat(64);
    const r = verifyAuditExport(jsonl(ack(rows, { seq: '2', hash: rows[1]['hash'], reason: 'checked' })));
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual([['2', 'link_broken'], ['2', 'content_changed']]);
  });
});

describe(auditEventHashV1.name, () => {
  it('differs from rule v2 (the "v":2 member), so a verifier knows which rule an entry used', () => {
    const [row] = chain(1);
    const e = { ...row, at: new Date(String(row['at'])) } as unknown as AuditHashInput;
    expect(auditEventHashV1(e)).not.toBe(auditEventHash(e));
  });
});
