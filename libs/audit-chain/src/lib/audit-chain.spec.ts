import { createHash, randomUUID } from 'node:crypto';
import { AUDIT_GENESIS_HASH, auditEventHash, auditHashParts, canonicalJson, verifyAuditExport, type AuditHashInput } from './audit-chain';

/** A valid exported chain of `n` entries, as GET /api/v1/audit/export writes it. */
function chain(n: number): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let prev = AUDIT_GENESIS_HASH;
  for (let i = 1; i <= n; i++) {
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
    const hash = auditEventHash(e);
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
    expect(verifyAuditExport(jsonl(rows))).toEqual({ ok: true, checked: 4, lastHash: rows[3]['hash'] });
  });

  it('accepts an empty export', () => {
    expect(verifyAuditExport('')).toEqual({ ok: true, checked: 0, lastHash: AUDIT_GENESIS_HASH });
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
