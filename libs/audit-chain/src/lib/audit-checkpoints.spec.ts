import { execFileSync } from 'node:child_process';
import { createHash, randomUUID, type X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testTsas, timestampToken, type OpensslPki } from '@keyserver/timestamp-token/testing';
import {
  AUDIT_GENESIS_HASH,
  AUDIT_LEGACY_ACK_ACTION,
  AuditChainVerifier,
  auditEventHash,
  auditEventHashV1,
  auditHashedText,
  verifyAuditExport,
  verifyAuditExportFile,
  verifyAuditExportStream,
  type AuditChainReport,
  type AuditHashInput,
} from './audit-chain';
import { anchoredCheckpointTrust, AUDIT_CHECKPOINT_POLICY_OID, auditCheckpointImprintDer, AuditCheckpointVerifier, entryHashOfImprint, type AuditCheckpoint } from './audit-checkpoints';

// Signed checkpoints (docs/adr/0048): tokens made by a TSA that is not the Keyserver (openssl certificates, pkijs
// tokens), checked by the verifier and by openssl ts.

type Entry = AuditHashInput & { seq: string; hash: string };

let dir: string;
let pki: OpensslPki;
let root: X509Certificate;
let tsa: X509Certificate;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'audit-cp-'));
  pki = testTsas(dir);
  root = pki.pem('root');
  tsa = pki.pem('tsa');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// After the test certificates were made (they are valid from now for 30 days), whole seconds as TSAs state them.
const T0 = Math.floor(Date.now() / 1000) * 1000 + 60_000;

/** A valid chain of `n` entries, one a minute. */
function chain(n: number): Entry[] {
  const out: Entry[] = [];
  let prev = AUDIT_GENESIS_HASH;
  for (let i = 1; i <= n; i++) {
    const e: AuditHashInput & { seq: string } = {
      seq: String(i), id: randomUUID(), at: new Date(T0 + i * 60_000), action: 'key.update', outcome: i === 2 ? 'DENIED' : 'SUCCESS',
      errorCode: null, actorTid: 't', actorOid: 'o', actorName: 'Ada', actorClient: 'c', actorSubjectId: null, keyid: 'fw',
      operationId: null, adminSessionId: null, digest: null, requestId: `r${i}`, details: { n: i }, prevHash: prev,
    };
    out.push({ ...e, hash: auditEventHash(e) });
    prev = out[i - 1].hash;
  }
  return out;
}

/** The insider: changes entry `seq` and recomputes the hash and link of it and of every later entry. */
function rewrite(entries: Entry[], seq: string, change: (e: Entry) => void): Entry[] {
  const out = entries.map((e) => ({ ...e }));
  let prev = AUDIT_GENESIS_HASH;
  for (const e of out) {
    if (e.seq === seq) change(e);
    e.prevHash = prev;
    e.hash = auditEventHash(e);
    prev = e.hash;
  }
  return out;
}

/** A checkpoint of `e` signed by `signer` (default the TSA under `root`) at `genTime` (default a second after the entry). */
function checkpoint(e: Entry, opts: { signer?: string; genTime?: Date; policy?: string } = {}): AuditCheckpoint {
  const name = opts.signer ?? 'tsa';
  const genTime = opts.genTime ?? new Date(e.at.getTime() + 1000);
  // The imprint is SHA-256 over the entry's hashed bytes: exactly its hash.
  const token = timestampToken({ signer: { cert: pki.pem(name), key: pki.key(name) }, over: new Uint8Array(Buffer.from(auditHashedText(e), 'utf8')), genTime, policy: opts.policy ?? AUDIT_CHECKPOINT_POLICY_OID });
  return { seq: e.seq, entryHash: e.hash, token: Buffer.from(token).toString('base64'), genTime: genTime.toISOString(), tsaKeyid: 'tsa', tsaKeyVersion: 1 };
}

const exportText = (entries: Entry[], cps: AuditCheckpoint[]) =>
  [...entries.map((e) => JSON.stringify({ ...e, at: e.at.toISOString() })), ...cps.map((c) => JSON.stringify({ checkpoint: c }))].join('\n') + '\n';
const anchored = () => anchoredCheckpointTrust({ roots: [root], tsaCerts: [tsa] });

describe(AuditCheckpointVerifier.name, () => {
  it('ok a chain sealed at seq 3 and 5: sealed through 5, anchored, no unsealed entries', () => {
    const c = chain(5);
    const r = verifyAuditExport(exportText(c, [checkpoint(c[2]), checkpoint(c[4])]), anchored());
    expect(r).toMatchObject({ ok: true, problems: [], seal: { sealed: true, anchored: true, checkpoints: 2, lastSealedSeq: '5', unsealedEntries: 0 } });
  });

  it('fail an entry rewritten before a checkpoint with every later hash recomputed: the chain alone verifies, each later checkpoint is checkpoint_mismatch', () => {
    const c = chain(6);
    const cps = [checkpoint(c[2]), checkpoint(c[4])];
    const forged = rewrite(c, '2', (e) => {
      e.outcome = 'SUCCESS';
    });
    expect(verifyAuditExport(exportText(forged, [])).ok).toBe(true); // what the hash chain alone says
    const r = verifyAuditExport(exportText(forged, cps), anchored());
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual([['3', 'checkpoint_mismatch'], ['5', 'checkpoint_mismatch']]);
    expect(r.seal).toMatchObject({ sealed: false, lastSealedSeq: null });
  });

  it('fail a token of the right TSA over the right hash under another policy (what the anonymous TSA route issues to anyone): checkpoint_untrusted', () => {
    const c = chain(3);
    const r = verifyAuditExport(exportText(c, [checkpoint(c[1], { policy: '2.25.71464660586911067804008473257468327654' })]), anchored());
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual([['2', 'checkpoint_untrusted']]);
  });

  it('fail a checkpoint made long after later entries were written (an old seq sealed again: the chain cut back to it, then restored): checkpoint_mismatch', () => {
    const c = chain(4);
    const late = checkpoint(c[1], { genTime: new Date(c[1].at.getTime() + 3_600_000) });
    const r = verifyAuditExport(exportText(c, [late]), anchored());
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual([['2', 'checkpoint_mismatch']]);
  });

  it('ok a checkpoint whose next entry was written while it was being signed (within AUDIT_CHECKPOINT_HEAD_SLACK_MS)', () => {
    const c = chain(3);
    const r = verifyAuditExport(exportText(c, [checkpoint(c[1], { genTime: new Date(c[2].at.getTime() + 60_000) })]), anchored());
    expect(r).toMatchObject({ ok: true, seal: { lastSealedSeq: '2' } });
  });

  it('ok a rewrite after the last checkpoint is not caught by it: the unsealed tail is reported', () => {
    const c = chain(6);
    const forged = rewrite(c, '5', (e) => {
      e.actorName = 'Mallory';
    });
    const r = verifyAuditExport(exportText(forged, [checkpoint(c[2])]), anchored());
    expect(r).toMatchObject({ ok: true, seal: { sealed: true, lastSealedSeq: '3', unsealedEntries: 3 } });
  });

  it.each([
    ['fail a token of a TSA under another ROOT', 'checkpoint_untrusted', () => ({ signer: 'foreign-tsa' })],
    ['fail a token of another TSA under the ROOT than the one given', 'checkpoint_untrusted', () => ({ signer: 'tsa2' })],
    ['fail a genTime before the entry was written', 'checkpoint_mismatch', () => ({ genTime: new Date(T0) })],
  ] as const)('%s: %s', (_n, kind, opts) => {
    const c = chain(3);
    const r = verifyAuditExport(exportText(c, [checkpoint(c[2], opts())]), anchored());
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual([['3', kind]]);
    expect(r.ok).toBe(false);
  });

  it('fail a token changed in its signature: checkpoint_signature_invalid', () => {
    const c = chain(3);
    const cp = checkpoint(c[2]);
    const der = Buffer.from(cp.token, 'base64');
    der[der.length - 3] ^= 0x01;
    const r = verifyAuditExport(exportText(c, [{ ...cp, token: der.toString('base64') }]), anchored());
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual([['3', 'checkpoint_signature_invalid']]);
  });

  it("fail a checkpoint row whose entryHash was changed to the rewritten chain's: checkpoint_mismatch", () => {
    const c = chain(3);
    const cp = checkpoint(c[2]);
    const forged = rewrite(c, '1', (e) => {
      e.actorName = 'Mallory';
    });
    const r = verifyAuditExport(exportText(forged, [{ ...cp, entryHash: forged[2].hash }]), anchored());
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual([['3', 'checkpoint_mismatch']]);
  });

  it('fail checkpoints whose genTime goes backwards: checkpoint_out_of_order', () => {
    const c = chain(5);
    const r = verifyAuditExport(exportText(c, [checkpoint(c[2], { genTime: new Date(T0 + 6 * 60_000) }), checkpoint(c[4])]), anchored());
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual([['5', 'checkpoint_out_of_order']]);
  });

  it('fail the sealed entry deleted: link_broken at the next entry and checkpoint_mismatch', () => {
    const c = chain(4);
    const r = verifyAuditExport(exportText([c[0], c[1], c[3]], [checkpoint(c[2])]), anchored());
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual([['4', 'link_broken'], ['3', 'checkpoint_mismatch']]);
  });

  it('ok no checkpoint: unsealed; without a trust anchor a good token verifies against its own certificate (anchored false)', () => {
    const c = chain(3);
    expect(verifyAuditExport(exportText(c, []), anchored()).seal).toMatchObject({ sealed: false, checkpoints: 0 });
    expect(verifyAuditExport(exportText(c, [checkpoint(c[2], { signer: 'foreign-tsa' })])).seal).toMatchObject({ sealed: true, anchored: false });
  });

  it('ok openssl ts -verify accepts a checkpoint over the entry hash (-digest) and over its hashed bytes (-data), and refuses a rewritten hash', () => {
    const c = chain(3);
    const cp = checkpoint(c[2]);
    writeFileSync(join(dir, 'cp.tst'), Buffer.from(cp.token, 'base64'));
    writeFileSync(join(dir, 'entry.json'), auditHashedText(c[2]));
    const verify = (...input: string[]) =>
      execFileSync('openssl', ['ts', '-verify', ...input, '-token_in', '-in', 'cp.tst', '-CAfile', 'root.pem', '-untrusted', 'tsa.pem'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
    expect(verify('-digest', c[2].hash)).toContain('Verification: OK');
    expect(verify('-data', 'entry.json')).toContain('Verification: OK');
    expect(createHash('sha256').update(auditHashedText(c[2])).digest('hex')).toBe(c[2].hash);
    expect(() => verify('-digest', rewrite(c, '1', (e) => (e.actorName = 'Mallory'))[2].hash)).toThrow();
  });
});

/**
 * A chain as the sealer writes it: `n` ordinary entries, each of `sealAt` (an ordinary entry's number) sealed by a
 * checkpoint and recorded by the `audit.checkpoint` entry that follows it (its seq and its token's SHA-256).
 */
function sealedChain(n: number, sealAt: number[]): { entries: Entry[]; cps: AuditCheckpoint[]; seqOf: (i: number) => string } {
  const entries: Entry[] = [];
  const cps: AuditCheckpoint[] = [];
  const seqs = new Map<number, string>();
  const push = (e: Omit<AuditHashInput, 'prevHash'>) => {
    const seq = String(entries.length + 1);
    const full = { ...e, seq, prevHash: entries.at(-1)?.hash ?? AUDIT_GENESIS_HASH };
    entries.push({ ...full, hash: auditEventHash(full) });
    return entries[entries.length - 1];
  };
  for (let i = 1; i <= n; i++) {
    const at = new Date(T0 + entries.length * 60_000);
    const e = push({
      id: randomUUID(), at, action: 'key.update', outcome: 'SUCCESS', errorCode: null, actorTid: 't', actorOid: 'o', actorName: 'Ada',
      actorClient: 'c', actorSubjectId: null, keyid: 'fw', operationId: null, adminSessionId: null, digest: null, requestId: `r${i}`, details: { n: i },
    });
    seqs.set(i, e.seq);
    if (!sealAt.includes(i)) continue;
    const cp = checkpoint(e);
    cps.push(cp);
    push({
      id: randomUUID(), at: new Date(at.getTime() + 2000), action: 'audit.checkpoint', outcome: 'SUCCESS', errorCode: null, actorTid: null, actorOid: null,
      actorName: null, actorClient: 'keyserver-api audit sealer', actorSubjectId: null, keyid: 'tsa', operationId: null, adminSessionId: null, digest: null,
      requestId: null, details: { checkpointSeq: cp.seq, entryHash: cp.entryHash, tokenSha256: createHash('sha256').update(Buffer.from(cp.token, 'base64')).digest('hex') },
    });
  }
  return { entries, cps, seqOf: (i) => seqs.get(i) as string };
}

describe(`${AuditCheckpointVerifier.name} (deleted checkpoints)`, () => {
  it('ok a chain whose checkpoints are each recorded by an audit.checkpoint entry, which the next checkpoint seals', () => {
    const { entries, cps, seqOf } = sealedChain(8, [2, 4, 7]);
    const r = verifyAuditExport(exportText(entries, cps), anchored());
    expect(r).toMatchObject({ ok: true, problems: [], seal: { sealed: true, checkpoints: 3, lastSealedSeq: seqOf(7) } });
  });

  it.each([
    ['fail a checkpoint in the middle deleted (the next one seals its record)', [1]],
    ['fail the last checkpoint deleted while its record is in the chain', [2]],
    ['fail every checkpoint after the first deleted', [1, 2]],
  ] as const)('%s: checkpoint_missing', (_n, deleted) => {
    const { entries, cps } = sealedChain(8, [2, 4, 7]);
    const kept = cps.filter((_c, i) => !(deleted as readonly number[]).includes(i));
    const r = verifyAuditExport(exportText(entries, kept), anchored());
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual(deleted.map((i) => [cps[i].seq, 'checkpoint_missing']));
  });

  it('fail every checkpoint after an entry deleted, that entry rewritten and every later hash recomputed: the chain alone verifies, each deleted checkpoint is checkpoint_missing', () => {
    const { entries, cps, seqOf } = sealedChain(8, [2, 4, 7]);
    const forged = rewrite(entries, seqOf(3), (e) => {
      e.actorName = 'Mallory';
    });
    const kept = cps.filter((c) => BigInt(c.seq) < BigInt(seqOf(3)));
    // What the hash chain alone says: every link and hash holds.
    expect(verifyAuditExport(exportText(forged, kept), anchored()).problems.filter((p) => p.kind === 'link_broken' || p.kind === 'content_changed')).toEqual([]);
    const r = verifyAuditExport(exportText(forged, kept), anchored());
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => [p.seq, p.kind])).toEqual([[cps[1].seq, 'checkpoint_missing'], [cps[2].seq, 'checkpoint_missing']]);
    expect(r.seal).toMatchObject({ lastSealedSeq: cps[0].seq });
  });

  // A streamed export the Keyserver could not finish ends at any line (ADR 0048 addendum "the export streams"): the
  // checkpoint lines come last, so the records before the cut name checkpoints the file lacks.
  it.each([
    ['fail an export cut short in its entries, after a checkpoint record', 'entries'],
    ['fail an export cut short between its checkpoint lines', 'checkpoints'],
  ] as const)('%s: checkpoint_missing', (_n, where) => {
    const { entries, cps, seqOf } = sealedChain(8, [2, 4, 7]);
    const lines = exportText(entries, cps).trimEnd().split('\n');
    const cut = where === 'entries' ? entries.findIndex((e) => e.seq === seqOf(5)) : entries.length + 1;
    const r = verifyAuditExport(`${lines.slice(0, cut).join('\n')}\n`, anchored());
    expect(r.ok).toBe(false);
    expect(r.problems.map((p) => p.kind)).toContain('checkpoint_missing');
  });

  it('fail a checkpoint row whose token is not the one its record names (a token swapped in): checkpoint_missing', () => {
    const { entries, cps } = sealedChain(5, [2, 4]);
    const other = sealedChain(5, [2, 4]).cps[0];
    const swapped = [{ ...cps[0], token: other.token }, cps[1]];
    const r = verifyAuditExport(exportText(entries, swapped), anchored());
    expect(r.problems.map((p) => p.kind)).toContain('checkpoint_missing');
    expect(r.ok).toBe(false);
  });

  it('ok streams an export: checkpoint lines are read at most one ahead of the entries they seal, whatever their place in the file', async () => {
    const { entries, cps } = sealedChain(400, Array.from({ length: 80 }, (_v, i) => 5 * i + 3));
    let entryRead = 0;
    let lead = 0;
    async function* entryLines() {
      for (const e of entries) {
        entryRead = Number(e.seq);
        yield JSON.stringify({ ...e, at: e.at.toISOString() });
      }
    }
    async function* checkpointLines() {
      for (const c of cps) {
        lead = Math.max(lead, Number(c.seq) - entryRead);
        yield JSON.stringify({ checkpoint: c });
      }
    }
    const r = await verifyAuditExportStream({ entries: entryLines(), checkpoints: checkpointLines(), acknowledgements: [] }, anchored());
    expect(r).toMatchObject({ ok: true, total: entries.length, seal: { checkpoints: 80, lastSealedSeq: cps[79].seq } });
    // The next checkpoint is held until the entry it seals arrives: never more than the one about to be matched.
    expect(lead).toBeLessThanOrEqual(6);
  });
});

describe(auditCheckpointImprintDer.name, () => {
  it('ok round-trips an entry hash; fail anything that is no SHA-256 imprint', () => {
    const h = 'ab'.repeat(32);
    expect(entryHashOfImprint(auditCheckpointImprintDer(h))).toBe(h);
    expect(entryHashOfImprint(new Uint8Array(10))).toBeNull();
    expect(() => auditCheckpointImprintDer('AB'.repeat(32))).toThrow();
  });
});

/**
 * A chain of an installation that has entries of the v1 writer: entry 1 (v1), entry 2 (v1) whose hash no rule reproduces
 * (the v1 writer hashed a mixed-case operationId, PostgreSQL stored it lower-case), then rule v2 entries as `steps` say:
 * `entry` an ordinary one, `ack` the audit.legacy_acknowledged entry naming entry 2 (what `audit-acknowledge` appends),
 * `seal` a checkpoint of the last entry (signed by `signer`) and its audit.checkpoint record.
 */
function v1Chain(steps: readonly ('entry' | 'ack' | 'seal')[], signer = 'tsa'): { entries: Entry[]; cps: AuditCheckpoint[] } {
  const entries: Entry[] = [];
  const cps: AuditCheckpoint[] = [];
  const push = (e: Partial<AuditHashInput>, rule: (x: AuditHashInput) => string = auditEventHash) => {
    const seq = String(entries.length + 1);
    const full = {
      id: randomUUID(), at: new Date(T0 + entries.length * 60_000), action: 'key.update', outcome: 'SUCCESS', errorCode: null, actorTid: 't', actorOid: 'o',
      actorName: 'Ada', actorClient: 'c', actorSubjectId: null, keyid: 'fw', operationId: null, adminSessionId: null, digest: null, requestId: `r${seq}`,
      details: { n: seq }, ...e, seq, prevHash: entries.at(-1)?.hash ?? AUDIT_GENESIS_HASH,
    } as AuditHashInput & { seq: string };
    entries.push({ ...full, hash: rule(full) });
    return entries[entries.length - 1];
  };
  push({}, auditEventHashV1);
  const mixed = '0A1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef12';
  const v1 = push({ operationId: mixed }, auditEventHashV1);
  v1.operationId = mixed.toLowerCase();
  for (const step of steps) {
    if (step === 'entry') push({});
    if (step === 'ack') push({ action: AUDIT_LEGACY_ACK_ACTION, actorName: 'Olga Operator', details: { seq: v1.seq, hash: v1.hash, reason: 'request log: mixed-case operationid' } });
    if (step !== 'seal') continue;
    const cp = checkpoint(entries[entries.length - 1], { signer });
    cps.push(cp);
    push({
      action: 'audit.checkpoint', actorName: null, actorClient: 'keyserver-api audit sealer', keyid: 'tsa',
      details: { checkpointSeq: cp.seq, entryHash: cp.entryHash, tokenSha256: createHash('sha256').update(Buffer.from(cp.token, 'base64')).digest('hex') },
    });
  }
  return { entries, cps };
}

describe(`${AuditChainVerifier.name} (acknowledgements and the seal)`, () => {
  const trusts = { anchored: () => anchored(), 'no trust anchor': () => undefined };
  const kinds = (r: AuditChainReport) => r.problems.map((p) => [p.seq, p.kind]);

  it.each([
    ['ok an acknowledgement a later signed checkpoint covers', ['entry', 'ack', 'entry', 'seal'], 'anchored'],
    ['ok an acknowledgement that is itself the sealed head', ['entry', 'ack', 'seal', 'entry'], 'anchored'],
    ['ok an acknowledgement a checkpoint covers, verified without a trust anchor (seal.anchored false)', ['ack', 'seal'], 'no trust anchor'],
  ] as const)('%s: the v1 entry is listed under legacy', (_n, steps, trust) => {
    const { entries, cps } = v1Chain(steps);
    const r = verifyAuditExport(exportText(entries, cps), trusts[trust]());
    expect([r.ok, kinds(r), r.legacy.map((l) => [l.seq, l.kind])]).toEqual([true, [], [['2', 'legacy_hash_v1']]]);
  });

  it.each([
    ['fail an acknowledgement appended after the last signed checkpoint (the unsealed tail of a copy)', ['entry', 'seal'], 'tsa', 'anchored', []],
    ['fail the same verified without a trust anchor', ['entry', 'seal'], 'tsa', 'no trust anchor', []],
    ['fail an acknowledgement in a chain no checkpoint seals', ['entry'], 'tsa', 'anchored', []],
    ['fail an acknowledgement whose only checkpoint is of a foreign TSA', ['entry', 'ack', 'seal'], 'foreign-tsa', 'anchored', [['4', 'checkpoint_untrusted']]],
  ] as const)('%s: acknowledgement_unsealed at the entry it names, not legacy', (_n, steps, signer, trust, more) => {
    const built = v1Chain(steps, signer);
    // The copy's holder appends the acknowledgement by the public hash rule, linked to the copy's last entry.
    const { entries, cps } = (steps as readonly string[]).includes('ack') ? built : { entries: appendAck(built.entries), cps: built.cps };
    const r = verifyAuditExport(exportText(entries, cps), trusts[trust]());
    expect([r.ok, kinds(r), r.legacy]).toEqual([false, [['2', 'acknowledgement_unsealed'], ...more], []]);
    expect([r.firstBadSeq, r.checked]).toEqual(['2', 1]);
  });

  it('fail an acknowledgement appended to the unsealed tail of an export file: both offline tools (the streaming verifier) report it', async () => {
    const { entries, cps } = v1Chain(['entry', 'ack', 'entry', 'seal']);
    const sealed = join(dir, 'sealed-ack.jsonl');
    writeFileSync(sealed, exportText(entries, cps));
    expect(await verifyAuditExportFile(sealed, anchored())).toMatchObject({ ok: true, legacyCount: 1, problemCount: 0 });
    // The same installation before the acknowledgement, copied; the holder of the copy appends one after its checkpoint.
    const copy = v1Chain(['entry', 'seal']);
    const forged = join(dir, 'forged-ack.jsonl');
    writeFileSync(forged, exportText(appendAck(copy.entries), copy.cps));
    const r = await verifyAuditExportFile(forged, anchored());
    expect([r.ok, kinds(r), r.legacyCount]).toEqual([false, [['2', 'acknowledgement_unsealed']], 0]);
  });
});

/** The forger: an acknowledgement of entry 2 appended after `entries`, linked to the last and hashed by the public rule v2. */
function appendAck(entries: Entry[]): Entry[] {
  const v1 = entries[1];
  const last = entries[entries.length - 1];
  const e: AuditHashInput & { seq: string } = {
    seq: String(Number(last.seq) + 1), id: randomUUID(), at: new Date(last.at.getTime() + 60_000), action: AUDIT_LEGACY_ACK_ACTION, outcome: 'SUCCESS',
    errorCode: null, actorTid: 't', actorOid: 'o', actorName: 'Olga Operator', actorClient: 'c', actorSubjectId: null, keyid: null, operationId: null,
    adminSessionId: null, digest: null, requestId: null, details: { seq: v1.seq, hash: v1.hash, reason: 'checked' }, prevHash: last.hash,
  };
  return [...entries, { ...e, hash: auditEventHash(e) }];
}
