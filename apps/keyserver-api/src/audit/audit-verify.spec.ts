import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { AUDIT_GENESIS_HASH, auditEventHash, type AuditHashInput } from '@keyserver/audit-chain';
import { auditAcknowledgeCommand, auditVerifyCommand } from './audit-verify';

// `keyserver-api audit-verify FILE` reads a file an attacker may have written: what it prints goes to an operator's
// terminal, and its exit status is what scripts trust (0 verifies, 1 does not, 2 usage).

function chain(n: number): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let prev = AUDIT_GENESIS_HASH;
  for (let i = 1; i <= n; i++) {
    const e: AuditHashInput & { seq: string } = {
      seq: String(i), id: randomUUID(), at: new Date(Date.UTC(2026, 10, 29, 1, 0, i)), action: 'subject.update', outcome: 'SUCCESS',
      errorCode: null, actorTid: 't', actorOid: 'o', actorName: 'Ada', actorClient: 'c', actorSubjectId: null, keyid: null,
      operationId: null, adminSessionId: null, digest: null, requestId: `r${i}`, details: { n: i }, prevHash: prev,
    };
    prev = auditEventHash(e);
    out.push({ ...e, at: e.at.toISOString(), hash: prev });
  }
  return out;
}
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** Runs the command with stdout and stderr captured. */
async function run(file: string | undefined, options: string[] = []): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = jest.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = jest.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    return { code: await auditVerifyCommand(file, options), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

// C0 and C1 controls (ESC, CSI, CR, BS …), DEL, bidi overrides/isolates, zero-width and line separators.
// eslint-disable-next-line no-control-regex -- exactly what must not reach a terminal
const OBEYED = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/;

describe(auditVerifyCommand.name, () => {
  let dir: string;
  beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'audit-verify-'))));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('ok a valid export: exit 0', async () => {
    expect((await run(file('ok.jsonl', jsonl(chain(3))))).code).toBe(0);
  });

  it('fail any hostile text of the file in seq or a member name: printed with its controls shown, never obeyed, exit 1 (property)', async () => {
    const hostile = fc.array(fc.constantFrom('\u001b[2J', '\u001b]0;x\u0007', '\r', '\n', '\b', '\u009b', '\u202e', '\u2066', '\u200b', '\u2028', 'OK', ' '), { minLength: 1, maxLength: 6 }).map((a) => a.join(''));
    await fc.assert(
      fc.asyncProperty(hostile, fc.constantFrom('seq', 'member'), async (text, where) => {
        const rows = chain(2);
        const bad = where === 'seq' ? { ...rows[1], seq: text } : { ...rows[1], [text]: 1 };
        const r = await run(file('hostile.jsonl', jsonl([rows[0], bad])), []);
        expect(r.code).toBe(1);
        // Each line of the report is one line, and no character in it is one a terminal obeys.
        expect(r.out.split('\n').filter((l) => OBEYED.test(l))).toEqual([]);
        expect(r.out.split('\n').length).toBe(3);
      }),
      { numRuns: 60 },
    );
  });

  it.each([
    ['fail --root without its file', ['--root']],
    ['fail --tsa-cert without --root (nothing would anchor it)', ['--tsa-cert', '/dev/null']],
    ['fail an option it does not know (a typo would verify unanchored)', ['--rooot', '/dev/null']],
    ['fail an argument after the file', ['extra']],
    ['fail --root given twice', ['--root', '/dev/null', '--root', '/dev/null']],
  ])('%s: usage, exit 2', async (_name, options) => {
    const r = await run(file('ok.jsonl', jsonl(chain(2))), options);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
  });

  it.each([
    ['fail a directory', () => dir],
    ['fail a missing file', () => join(dir, 'missing.jsonl')],
    ['fail a device that never ends', () => '/dev/zero'],
  ])('%s: exit 2, no hang, no crash', async (_name, path) => {
    const r = await run(path());
    expect(r.code).toBe(2);
  });
});

describe(auditAcknowledgeCommand.name, () => {
  it.each([
    ['fail --by whose value is the next option', ['5', '--by', '--reason', 'checked']],
    ['fail --reason without its text', ['5', '--by', 'Olga', '--reason']],
    ['fail an option it does not know', ['5', '--by', 'Olga', '--reason', 'checked', '--force', 'yes']],
    ['fail --by given twice (which one signed?)', ['5', '--by', 'Olga', '--by', 'Eve', '--reason', 'checked']],
    ['fail no seq', ['--by', 'Olga', '--reason', 'checked']],
  ])('%s: usage, exit 2, no database opened', async (_name, args) => {
    let err = '';
    const e = jest.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
    try {
      // An address nothing listens on: a usage error must be found before any connection is tried.
      expect(await auditAcknowledgeCommand('postgresql://nobody@127.0.0.1:1/none', args)).toBe(2);
    } finally {
      e.mockRestore();
    }
    expect(err).toContain('usage');
  });
});
