import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  AUDIT_ACKNOWLEDGEMENTS_MAX,
  AUDIT_EXPORT_LINE_MAX,
  AUDIT_GENESIS_HASH,
  AUDIT_LEGACY_ACK_ACTION,
  auditEventHash,
  auditEventHashV1,
  exportAcknowledgement,
  fileAcknowledgements,
  fileLines,
  verifyAuditExport,
  verifyAuditExportFile,
  type AuditHashInput,
} from './audit-chain';

// An attacker's copy of an export (ADR 0009 addendum "one reading per export line"): whatever the verifier accepts
// must read the same to every JSON reader and every auditor, and name each entry by its true seq.

type Row = Record<string, unknown>;

/** A valid exported chain of `n` entries, in the member order of GET /api/v1/audit/export. */
function chain(n: number, rule: (e: AuditHashInput) => string = auditEventHash, prevHash = AUDIT_GENESIS_HASH, from = 1): Row[] {
  const out: Row[] = [];
  let prev = prevHash;
  for (let i = from; i < from + n; i++) {
    const e: AuditHashInput & { seq: string } = {
      seq: String(i), id: randomUUID(), at: new Date(Date.UTC(2026, 10, 29, 1, 0, i)), action: 'subject.update', outcome: 'SUCCESS',
      errorCode: null, actorTid: 't', actorOid: 'o', actorName: 'Ada', actorClient: 'c', actorSubjectId: null, keyid: null,
      operationId: null, adminSessionId: null, digest: null, requestId: `r${i}`, details: { n: i, nested: { b: 1, a: [1, 2] } }, prevHash: prev,
    };
    const hash = rule(e);
    out.push({ ...e, at: e.at.toISOString(), hash });
    prev = hash;
  }
  return out;
}
const jsonl = (lines: string[]) => lines.join('\n') + '\n';
const lines = (rows: Row[]) => rows.map((r) => JSON.stringify(r));
const problems = (text: string) => verifyAuditExport(text).problems.map((p) => [p.seq, p.kind]);

describe(`${verifyAuditExport.name} of a hostile copy`, () => {
  it.each([
    ['fail a member written twice, the first (what a first-wins reader shows) forged', (l: string) => `{"action":"key.destroy",${l.slice(1)}`],
    ['fail a details member written twice', (l: string) => l.replace('"details":{', '"details":{"n":999,')],
    ['fail a member written twice under another spelling of its name', (l: string) => `{"\\u0061ction":"key.destroy",${l.slice(1)}`],
    ['fail a member the export does not write', (l: string) => `{"approvedBy":"the security officer",${l.slice(1)}`],
    ['fail at in another form of the same instant', (l: string) => l.replace('01:00:02.000Z', '02:00:02.000+01:00')],
    ['fail at without its milliseconds', (l: string) => l.replace('01:00:02.000Z', '01:00:02Z')],
    ['fail at without a zone (read in the verifier\'s local time)', (l: string) => l.replace('01:00:02.000Z', '01:00:02.000')],
    ['fail a seq that is not a decimal string', (l: string) => l.replace('"seq":"2"', '"seq":2')],
    ['fail a seq that is missing', (l: string) => l.replace('"seq":"2",', '')],
  ])('%s: not_an_entry', (_name, tamper) => {
    const text = jsonl(lines(chain(3)).map((l, i) => (i === 1 ? tamper(l) : l)));
    const r = verifyAuditExport(text);
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => p.kind)).toContain('not_an_entry');
  });

  it.each([
    ['fail entries renumbered, links intact', ['1', '3', '2', '4']],
    ['fail two entries under one seq', ['1', '2', '2', '3']],
  ])('%s: link_broken at the entry whose seq is not after the one before', (_name, seqs) => {
    const rows = chain(4).map((r, i) => ({ ...r, seq: seqs[i] }));
    expect(problems(jsonl(lines(rows)))).toEqual([[seqs[2], 'link_broken']]);
  });

  it.each([
    ['ok a byte order mark before the first line', (t: string) => `\ufeff${t}`],
    ['ok CRLF line ends', (t: string) => t.replace(/\n/g, '\r\n')],
    ['ok gaps in seq (identity values a rolled-back append used)', (t: string) => t.replace('"seq":"3"', '"seq":"7"')],
  ])('%s', (_name, change) => {
    expect(verifyAuditExport(change(jsonl(lines(chain(3)))))).toMatchObject({ ok: true, problemCount: 0, total: 3 });
  });

  it.each([
    ['fail a line that starts like a checkpoint line and is none', '{"checkpoint":null}'],
    ['fail a checkpoint line that is not JSON', '{"checkpoint":{'],
  ])('%s: not_an_entry, not silently skipped', (_name, line) => {
    const r = verifyAuditExport(jsonl([...lines(chain(2)), line]));
    expect([r.ok, r.problems.map((p) => p.kind)]).toEqual([false, ['not_an_entry']]);
  });

  describe('acknowledgements', () => {
    /** A v1 chain whose entry 2 no rule reproduces, followed by one v2 entry. */
    function v1ChainWithUnverifiable(): Row[] {
      const rows = chain(3, auditEventHashV1);
      const e = { ...rows[1], operationId: randomUUID().replace(/[a-f]/, (c) => c.toUpperCase()), at: new Date(String(rows[1]['at'])) } as unknown as AuditHashInput;
      const hash = auditEventHashV1(e);
      rows[1] = { ...rows[1], operationId: (e.operationId as string).toLowerCase(), hash };
      rows[2] = { ...rows[2], prevHash: hash };
      rows[2]['hash'] = auditEventHashV1({ ...(rows[2] as unknown as AuditHashInput), at: new Date(String(rows[2]['at'])) });
      return [...rows, ...chain(1, auditEventHash, String(rows[2]['hash']), 4)];
    }
    const forgedAck = (rows: Row[], extra: Row) =>
      JSON.stringify({ ...extra, seq: '99', id: randomUUID(), at: '2026-11-30T00:00:00.000Z', action: AUDIT_LEGACY_ACK_ACTION, outcome: 'SUCCESS', actorName: 'Security Officer', details: { seq: '2', hash: rows[1]['hash'], reason: 'checked' }, prevHash: 'f'.repeat(64), hash: 'e'.repeat(64) });

    it.each([
      ['fail an acknowledgement on a line that starts like a checkpoint line', (rows: Row[]) => forgedAck(rows, { checkpoint: null })],
      ['fail an acknowledgement that is not a chain entry (wrong link, wrong hash)', (rows: Row[]) => forgedAck(rows, {})],
    ])('%s: the entry it names stays a problem', (_name, forge) => {
      const rows = v1ChainWithUnverifiable();
      const r = verifyAuditExport(jsonl([...lines(rows), forge(rows)]));
      expect(r.ok).toBe(false);
      expect(r.problems.find((p) => p.seq === '2')).toMatchObject({ kind: 'content_changed', acknowledgeable: true });
      expect(r.legacy).toEqual([]);
      expect(r.firstBadSeq).toBe('2');
      expect(r.checked).toBe(1);
    });
  });

  it('fail any hostile rewrite of one line of a valid export (property)', () => {
    const rewrite = fc.oneof(
      // The same member twice, the forged value first (a first-wins JSON reader shows it, JSON.parse keeps the last).
      fc.tuple(fc.constantFrom('action', 'outcome', 'actorName', 'keyid', 'errorCode', 'at', 'prevHash', 'hash', 'seq'), fc.string()).map(
        ([k, v]) => (l: string) => `{${JSON.stringify(k)}:${JSON.stringify(v)},${l.slice(1)}`,
      ),
      // A member the export does not write (any name but an export member).
      fc.tuple(fc.string({ unit: 'binary', maxLength: 8 }), fc.jsonValue()).filter(([k]) => !EXPORT_MEMBERS.includes(k)).map(
        ([k, v]) => (l: string) => `{${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'},${l.slice(1)}`,
      ),
      // The instant written another way (an offset in whole minutes, or no milliseconds).
      fc.integer({ min: -14 * 60, max: 14 * 60 }).map((m) => (l: string) => {
        const at = new Date(Date.UTC(2026, 10, 29, 1, 0, 2) + m * 60_000);
        const off = `${m < 0 ? '-' : '+'}${String(Math.floor(Math.abs(m) / 60)).padStart(2, '0')}:${String(Math.abs(m) % 60).padStart(2, '0')}`;
        return l.replace('2026-11-29T01:00:02.000Z', `${at.toISOString().slice(0, 23)}${off}`);
      }),
      // Another seq, or none of the export's form.
      fc.oneof(fc.string({ unit: 'binary', maxLength: 6 }), fc.constantFrom('1', '01', '+2', ' 2', '２', '٢', '-2', '2.0', '1e0')).map((s) => (l: string) => l.replace('"seq":"2"', `"seq":${JSON.stringify(s)}`)),
    );
    fc.assert(
      fc.property(rewrite, (change) => {
        const all = lines(chain(3));
        const changed = change(all[1]);
        fc.pre(changed !== all[1]);
        expect(verifyAuditExport(jsonl([all[0], changed, all[2]])).ok).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});

const EXPORT_MEMBERS = ['seq', 'id', 'at', 'action', 'outcome', 'errorCode', 'actorTid', 'actorOid', 'actorName', 'actorClient', 'actorSubjectId', 'keyid', 'operationId', 'adminSessionId', 'digest', 'requestId', 'details', 'prevHash', 'hash'];

describe(fileLines.name, () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'audit-lines-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('fail a line longer than AUDIT_EXPORT_LINE_MAX: never held whole, reported as not_an_entry, the chain goes on', async () => {
    const rows = lines(chain(2));
    const file = join(dir, 'long.jsonl');
    writeFileSync(file, `${rows[0]}\n{"x":"${'a'.repeat(AUDIT_EXPORT_LINE_MAX + 10)}"}\n${rows[1]}\n`);
    let longest = 0;
    for await (const l of fileLines(file)) longest = Math.max(longest, l.length);
    expect(longest).toBeLessThanOrEqual(AUDIT_EXPORT_LINE_MAX);
    const r = await verifyAuditExportFile(file);
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual([['line 2', 'not_an_entry']]);
    expect([r.ok, r.total, r.checked]).toEqual([false, 3, 1]);
  });

  it('ok a line of exactly AUDIT_EXPORT_LINE_MAX characters is read whole', async () => {
    const file = join(dir, 'max.jsonl');
    const line = `{"x":"${'a'.repeat(AUDIT_EXPORT_LINE_MAX - 8)}"}`;
    writeFileSync(file, `${line}\n`);
    const got: number[] = [];
    for await (const l of fileLines(file)) got.push(l.length);
    expect(got).toEqual([AUDIT_EXPORT_LINE_MAX, 0]);
  });
});

describe(fileAcknowledgements.name, () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'audit-acks-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ackLine = (i: number, pad = '') =>
    JSON.stringify({ seq: String(i), action: AUDIT_LEGACY_ACK_ACTION, outcome: 'SUCCESS', actorName: 'Eve', details: { seq: '1', hash: 'f'.repeat(64), reason: pad, junk: [pad] }, hash: 'e'.repeat(64) });

  it('fail a file of acknowledgement lines cannot fill the first pass: at most AUDIT_ACKNOWLEDGEMENTS_MAX kept, each with the members the verifier reads', async () => {
    const file = join(dir, 'acks.jsonl');
    writeFileSync(file, Array.from({ length: AUDIT_ACKNOWLEDGEMENTS_MAX + 5 }, (_x, i) => ackLine(i + 2)).join('\n'));
    expect((await fileAcknowledgements(file)).length).toBe(AUDIT_ACKNOWLEDGEMENTS_MAX);
  });

  it('fail an acknowledgement line of megabytes is not kept whole (the reason cut, other members dropped)', () => {
    const ack = exportAcknowledgement(ackLine(2, 'r'.repeat(1_000_000)));
    expect(JSON.stringify(ack).length).toBeLessThan(4_000);
    expect(ack).toMatchObject({ seq: '2', action: AUDIT_LEGACY_ACK_ACTION, outcome: 'SUCCESS', actorName: 'Eve', hash: 'e'.repeat(64), details: { seq: '1', hash: 'f'.repeat(64) } });
  });
});
