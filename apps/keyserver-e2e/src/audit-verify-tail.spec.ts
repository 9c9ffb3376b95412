import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUDIT_CHECKPOINT_POLICY_OID, auditEventHash, auditHashedText, type StoredAuditEntry } from '@keyserver/audit-chain';
import { testTsas, timestampToken } from '@keyserver/timestamp-token/testing';
import { repoRoot } from '@keyserver/testing';

// `ksctl audit verify` of an export whose last entries no signed checkpoint covers (docs/adr/0048, addendum "the
// unsealed tail"): the chain verifies, but nothing proves the copy holds every entry of that tail, so a copy cut
// within it looks the same. verify says so: status valid_unsealed_tail and a warning line, exit 0 as before.

// `keyserver-api audit-verify` (the API's offline verifier) says the same with the same words: a `status` line on
// stdout and the warning `audit-verify: warning: audit_tail_unsealed: …` on stderr, its exit codes unchanged.

const KSCTL = join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js');
const API = join(repoRoot, 'dist', 'apps', 'keyserver-api', 'main.js');

const run = (main: string, ...args: string[]) => {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' }, timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
};
const ksctl = (...args: string[]) => run(KSCTL, ...args);
const auditVerify = (file: string) => run(API, 'audit-verify', file);

interface Chain {
  /** One export line per entry, then the checkpoint lines. */
  lines: string[];
  checkpointLines: string[];
}

/**
 * A chain of `entries` entries (seq 1…) and a checkpoint (a token of a test TSA) at each seq of `sealAt`, each
 * followed by its `audit.checkpoint` record unless `records` is false; frozen times.
 */
function chain(work: string, entries: number, sealAt: number[] = [], records = true): Chain {
  const pki = testTsas(work);
  const signer = { cert: pki.pem('tsa'), key: pki.key('tsa') };
  const t0 = Date.parse('2026-12-01T08:00:00.000Z');
  const base = { errorCode: null, actorTid: 't', actorOid: 'o', actorSubjectId: null, operationId: null, adminSessionId: null, digest: null, requestId: null };
  const lines: string[] = [];
  const checkpointLines: string[] = [];
  let prev = '0'.repeat(64);
  let seq = 0;
  const push = (e: Omit<StoredAuditEntry, 'seq' | 'hash' | 'prevHash'>) => {
    seq++;
    const full = { ...e, seq: String(seq), prevHash: prev };
    const hash = auditEventHash(full);
    lines.push(JSON.stringify({ ...full, at: full.at.toISOString(), hash }));
    prev = hash;
    return { ...full, hash };
  };
  for (let n = 1; n <= entries; n++) {
    const at = new Date(t0 + seq * 1000);
    const e = push({ ...base, id: randomUUID(), at, action: 'key.update', outcome: 'SUCCESS', actorName: 'Ada Lovelace', actorClient: 'keyclient', keyid: 'demo-fw-dev', details: { n } });
    if (!sealAt.includes(n)) continue;
    const genTime = new Date(at.getTime() + 500);
    const token = Buffer.from(timestampToken({ signer, over: Buffer.from(auditHashedText(e), 'utf8'), genTime, policy: AUDIT_CHECKPOINT_POLICY_OID }));
    checkpointLines.push(JSON.stringify({ checkpoint: { seq: e.seq, entryHash: e.hash, token: token.toString('base64'), genTime: genTime.toISOString(), tsaKeyid: 'demo-tsa', tsaKeyVersion: 1 } }));
    if (!records) continue;
    push({
      ...base, id: randomUUID(), at: new Date(genTime.getTime() + 500), action: 'audit.checkpoint', outcome: 'SUCCESS', actorName: null, actorClient: 'keyserver-api audit sealer', keyid: 'demo-tsa',
      details: { checkpointSeq: e.seq, entryHash: e.hash, tokenSha256: createHash('sha256').update(token).digest('hex') },
    });
  }
  return { lines, checkpointLines };
}

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'ks-audit-tail-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

const write = (name: string, lines: string[]) => {
  const file = join(work, name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
};

const unsealed = () => chain(work, 10);
const sealedThenTail = () => chain(work, 7, [5]);
const tails = [
  ['warn an unsealed chain, whole', () => unsealed().lines, 10, null],
  ['warn an unsealed chain cut before its end: it verifies like a shorter chain, and says that nothing proves it whole', () => unsealed().lines.slice(0, 6), 6, null],
  ['warn a sealed chain with entries after its last checkpoint (its record and two more)', () => { const c = sealedThenTail(); return [...c.lines, ...c.checkpointLines]; }, 3, '5'],
] as const;

describe('ksctl audit verify: the unsealed tail', () => {
  it.each(tails)('%s: exit 0, status valid_unsealed_tail, warning audit_tail_unsealed', (_name, lines, tail, lastSealedSeq) => {
    const file = write(`${randomUUID()}.jsonl`, lines());
    const json = ksctl('--json', 'audit', 'verify', file);
    const out = JSON.parse(json.stdout) as { verified: boolean; status: string; unsealedTail: { entries: number; afterSeq: string | null } };
    expect([json.status, out.verified, out.status, out.unsealedTail]).toEqual([0, true, 'valid_unsealed_tail', { entries: tail, afterSeq: lastSealedSeq }]);
    expect(json.stderr).toContain('warning: audit_tail_unsealed');
    const table = ksctl('audit', 'verify', file);
    expect([table.status, table.stderr.includes('warning: audit_tail_unsealed'), table.stdout.includes('valid_unsealed_tail')]).toEqual([0, true, true]);
  });

  it('ok a chain whose last entry a checkpoint covers: status valid_sealed, no warning', () => {
    const c = chain(work, 6, [6], false);
    const file = write('sealed.jsonl', [...c.lines, ...c.checkpointLines]);
    const r = ksctl('--json', 'audit', 'verify', file);
    const out = JSON.parse(r.stdout) as { status: string; unsealedTail: unknown; seal: { lastSealedSeq: string } };
    expect([r.status, out.status, out.unsealedTail, out.seal.lastSealedSeq, r.stderr]).toEqual([0, 'valid_sealed', null, '6', '']);
  });

  it('fail a broken chain stays exit 6 audit_chain_broken, whatever its tail', () => {
    const c = unsealed();
    const file = write('broken.jsonl', c.lines.filter((_l, i) => i !== 3));
    const r = ksctl('--json', 'audit', 'verify', file);
    expect([r.status, (JSON.parse(r.stdout) as { code: string }).code]).toEqual([6, 'audit_chain_broken']);
  });
});

describe('keyserver-api audit-verify: the unsealed tail', () => {
  it.each(tails)('%s: exit 0, status valid_unsealed_tail, warning audit_tail_unsealed', (_name, lines, tail, lastSealedSeq) => {
    const c = lines();
    const file = write(`${randomUUID()}.jsonl`, [...c]);
    const r = auditVerify(file);
    const where = lastSealedSeq === null ? 'no entry is covered by a signed checkpoint' : `the last ${tail} entries come after the last signed checkpoint (seq ${lastSealedSeq})`;
    const lastHash = (JSON.parse(c.filter((l) => !l.startsWith('{"checkpoint"')).at(-1) ?? '{}') as { hash: string }).hash;
    expect([r.status, r.stdout.split('\n').filter((l) => l.startsWith('  status') || l.startsWith('  lastHash'))]).toEqual([
      0,
      [`  status valid_unsealed_tail: unsealedTail entries=${tail} afterSeq=${lastSealedSeq ?? 'null'}`, `  lastHash ${lastHash}`],
    ]);
    expect(r.stderr).toMatch(new RegExp(`^audit-verify: warning: audit_tail_unsealed: the chain verifies, but ${where.replace(/[()]/g, '\\$&')}: .*\n$`));
  });

  it('ok a chain whose last entry a checkpoint covers: status valid_sealed, no warning', () => {
    const c = chain(work, 6, [6], false);
    const r = auditVerify(write('sealed-api.jsonl', [...c.lines, ...c.checkpointLines]));
    expect([r.status, r.stdout.split('\n').filter((l) => l.startsWith('  status')), r.stderr]).toEqual([0, ['  status valid_sealed'], '']);
  });

  it('fail a broken chain stays exit 1 with no status and no warning, whatever its tail', () => {
    const r = auditVerify(write('broken-api.jsonl', unsealed().lines.filter((_l, i) => i !== 3)));
    expect([r.status, /^audit-verify: FAILED at seq 5/.test(r.stdout), r.stdout.includes('  status'), r.stderr]).toEqual([1, true, false, '']);
  });
});
