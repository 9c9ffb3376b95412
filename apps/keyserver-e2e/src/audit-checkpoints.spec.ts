import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { AUDIT_CHECKPOINT_POLICY_OID, auditEventHash, auditHashedText, type StoredAuditEntry } from '@keyserver/audit-chain';
import { testTsas, timestampToken } from '@keyserver/timestamp-token/testing';
import { repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, type Api } from './admin-helpers';

// Signed audit checkpoints (docs/adr/0048-signed-audit-checkpoints.md): the Keyserver's own TSA seals the chain head,
// so an insider with write access to PostgreSQL who rewrites an entry and recomputes every later hash is still caught,
// by the API and by openssl with nothing but the ROOT and the TSA certificate.

const KSCTL = join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js');
const AUDIT_APPEND_LOCK = 0x6b732d61;

interface Seal {
  sealed: boolean;
  checkpoints: number;
  lastSealedSeq: string | null;
  lastSealedAt: string | null;
  unsealedEntries: number;
}
interface Verification {
  ok: boolean;
  problems: { seq: string; kind: string; reason: string }[];
  seal?: Seal;
}
interface CheckpointRow {
  seq: string;
  entryHash: string;
  tokenDer: Buffer;
  genTime: Date;
  serialHex: string;
}

const sh = (program: string, args: string[]) => {
  const r = spawnSync(program, args, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};
const ksctl = (...args: string[]) => {
  const r = spawnSync(process.execPath, [KSCTL, '--json', ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' }, timeout: 60_000 });
  return { status: r.status, json: r.stdout.trim() ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
};

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const checkpoints = (p: RunningPlatform) =>
  sql<CheckpointRow & Record<string, unknown>>(p, `SELECT seq::text AS seq, "entryHash", "tokenDer", "genTime", "serialHex" FROM audit_checkpoint ORDER BY audit_checkpoint.seq`);

/**
 * The last entry a checkpoint must seal: the head, unless it is the audit.checkpoint entry recording the last
 * checkpoint (that record alone is sealed by the next checkpoint, not on its own: ADR 0048 addendum).
 */
async function sealableHead(p: RunningPlatform): Promise<{ seq: string }> {
  const [head] = await sql<{ seq: string }>(p, `SELECT max(seq)::text AS seq FROM audit_event WHERE action <> 'audit.checkpoint'`);
  return head;
}

/** Every entry as a verifier sees it. */
async function entries(p: RunningPlatform): Promise<StoredAuditEntry[]> {
  const rows = await sql<Record<string, unknown>>(p, `SELECT * FROM audit_event ORDER BY seq`);
  return rows.map((r) => ({ ...r, seq: String(r['seq']), details: r['details'] ?? {} }) as unknown as StoredAuditEntry);
}

/**
 * The insider: with the append lock held and the append-only triggers disabled (a superuser can), changes the entry
 * `seq` and recomputes the hash and link of it and of every later entry, so that the chain verifies again.
 */
async function rewriteAndRechain(p: RunningPlatform, seq: string, change: (e: StoredAuditEntry) => void): Promise<void> {
  const c = new Client({ connectionString: p.databaseUrl });
  await c.connect();
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_APPEND_LOCK]);
    await c.query('ALTER TABLE audit_event DISABLE TRIGGER USER');
    const rows = (await c.query(`SELECT * FROM audit_event ORDER BY seq`)).rows.map((r) => ({ ...r, seq: String(r.seq), details: r.details ?? {} }) as StoredAuditEntry);
    let prev: string | null = null;
    for (const e of rows) {
      if (BigInt(e.seq) < BigInt(seq)) {
        prev = e.hash;
        continue;
      }
      if (e.seq === seq) change(e);
      if (prev !== null) e.prevHash = prev;
      e.hash = auditEventHash(e);
      await c.query(`UPDATE audit_event SET "actorName" = $2, outcome = $3::"AuditOutcome", "prevHash" = $4, hash = $5 WHERE seq = $1`, [e.seq, e.actorName, e.outcome, e.prevHash, e.hash]);
      prev = e.hash;
    }
    await c.query('ALTER TABLE audit_event ENABLE TRIGGER USER');
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK');
    throw err;
  } finally {
    await c.end();
  }
}

/** The insider deletes the checkpoint rows with seq in [from, to] (to null: every later one), triggers disabled. */
async function deleteCheckpoints(p: RunningPlatform, from: string, to: string | null): Promise<void> {
  const c = new Client({ connectionString: p.databaseUrl });
  await c.connect();
  try {
    await c.query('BEGIN');
    await c.query('ALTER TABLE audit_checkpoint DISABLE TRIGGER USER');
    await c.query(`DELETE FROM audit_checkpoint WHERE seq >= $1::bigint AND ($2::bigint IS NULL OR seq <= $2::bigint)`, [from, to]);
    await c.query('ALTER TABLE audit_checkpoint ENABLE TRIGGER USER');
    await c.query('COMMIT');
  } finally {
    await c.end();
  }
}

describe('signed audit checkpoints', () => {
  let p: RunningPlatform;
  let ada: Api;
  let aude: Api;
  let work: string;
  let rewrittenSeq = '1';
  const f = (name: string) => join(work, name);

  beforeAll(async () => {
    // Two replicas, each with its sealer, racing for the same heads.
    p = await startPlatform({ replicas: 2, extraApiEnv: { AUDIT_CHECKPOINT_INTERVAL_MS: '300' } });
    work = mkdtempSync(join(tmpdir(), 'ks-audit-cp-'));
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    aude = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    await activeSession(ada, apiAs(p, await bffUserToken(p, 'alan.admin@demo.test')), 'checkpoint history');
    await ada('PATCH', '/api/v1/keys/demo-fw-dev', { body: { requiredApprovers: 1 } });
    const [root] = await sql<{ certificatePem: string }>(p, `SELECT "certificatePem" FROM "key" WHERE keyid = 'demo-root'`);
    const [tsa] = await sql<{ certificatePem: string }>(p, `SELECT "certificatePem" FROM "key" WHERE keyid = 'demo-tsa'`);
    writeFileSync(f('root.pem'), root.certificatePem);
    writeFileSync(f('tsa.pem'), tsa.certificatePem);
  });

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('seals the head with the TSA once per seq across two replicas; each token is in the register and openssl ts verifies it over the entry hash and over the hashed bytes', async () => {
    const head = await sealableHead(p);
    const rows = await until(() => checkpoints(p), (cs) => cs.some((c) => BigInt(c.seq) >= BigInt(head.seq)));
    expect(rows.some((c) => BigInt(c.seq) >= BigInt(head.seq))).toBe(true);
    // No token issued for a checkpoint that was not stored: the register's audit tokens are exactly the checkpoints.
    const register = await sql<{ serialHex: string; source: string }>(p, `SELECT "serialHex", source FROM timestamp_token WHERE source = 'audit' ORDER BY "serialHex"`);
    const stored = await checkpoints(p);
    expect(register.map((r) => r.serialHex)).toEqual(stored.map((c) => c.serialHex).sort());
    // Checkpoints are increasing in seq and genTime.
    for (let i = 1; i < stored.length; i++) expect(stored[i].genTime.getTime()).toBeGreaterThanOrEqual(stored[i - 1].genTime.getTime());
    const all = await entries(p);
    const cp = stored[stored.length - 1];
    const entry = all.find((e) => e.seq === cp.seq) as StoredAuditEntry;
    expect(cp.entryHash).toBe(entry.hash);
    writeFileSync(f('cp.tst'), cp.tokenDer);
    writeFileSync(f('entry.json'), auditHashedText(entry));
    for (const input of [['-digest', entry.hash], ['-data', f('entry.json')]]) {
      const r = sh('openssl', ['ts', '-verify', ...input, '-token_in', '-in', f('cp.tst'), '-CAfile', f('root.pem'), '-untrusted', f('tsa.pem')]);
      expect([r.status, r.out]).toEqual([0, expect.stringContaining('Verification: OK')]);
    }
    const v = await aude<Verification>('GET', '/api/v1/audit/verify');
    expect(v.body).toMatchObject({ ok: true, seal: { sealed: true } });
    expect(BigInt(v.body.seal?.lastSealedSeq ?? '0')).toBeGreaterThanOrEqual(BigInt(cp.seq));
    // The auditor, offline, with the ROOT and TSA certificate obtained out of band.
    writeFileSync(f('clean.jsonl'), (await aude('GET', '/api/v1/audit/export')).text);
    const offline = ksctl('audit', 'verify', f('clean.jsonl'), '--root', f('root.pem'), '--tsa-cert', f('tsa.pem'));
    expect([offline.status, offline.json?.seal?.sealed, offline.json?.seal?.anchored]).toEqual([0, true, true]);
  });

  it('fail an entry rewritten at or before the last checkpoint with every later hash recomputed: the chain alone verifies, verify reports checkpoint_mismatch, openssl refuses the new hash', async () => {
    const all = await entries(p);
    const target = all.find((e) => e.action === 'key.update' && e.outcome === 'DENIED') as StoredAuditEntry;
    expect(target).toBeDefined();
    rewrittenSeq = target.seq;
    // The sealer has sealed a head at or after that entry by now (its first pass may have sealed an earlier head).
    const sealed = (await until(() => checkpoints(p), (cs) => cs.some((c) => BigInt(c.seq) >= BigInt(target.seq)), 5_000)).find((c) => BigInt(c.seq) >= BigInt(target.seq));
    await rewriteAndRechain(p, target.seq, (e) => {
      e.outcome = 'SUCCESS';
      e.actorName = 'Someone Else';
    });

    const v = await aude<Verification>('GET', '/api/v1/audit/verify');
    expect(v.status).toBe(200);
    // The insider's rewrite is complete: no link or content problem...
    expect(v.body.problems.filter((x) => x.kind === 'link_broken' || x.kind === 'content_changed')).toEqual([]);
    // ...but verification must not say ok: every checkpoint at or after the rewritten entry no longer matches.
    expect(v.body.ok).toBe(false);
    expect(sealed && BigInt(sealed.seq) >= BigInt(target.seq)).toBe(true);
    if (!sealed) return;
    expect(v.body.problems).toContainEqual(expect.objectContaining({ seq: sealed.seq, kind: 'checkpoint_mismatch' }));

    const rewritten = (await entries(p)).find((e) => e.seq === sealed.seq) as StoredAuditEntry;
    expect(rewritten.hash).not.toBe(sealed.entryHash);
    writeFileSync(f('old.tst'), sealed.tokenDer);
    const r = sh('openssl', ['ts', '-verify', '-digest', rewritten.hash, '-token_in', '-in', f('old.tst'), '-CAfile', f('root.pem'), '-untrusted', f('tsa.pem')]);
    expect(r.status).not.toBe(0);
  });

  it('fail the insider also rewriting the checkpoint row (entryHash) or the token: checkpoint_mismatch or checkpoint_signature_invalid', async () => {
    // Two checkpoints after the rewritten entry: one row's entryHash made to match the rewritten chain, one token changed.
    const [first, second] = (await checkpoints(p)).filter((c) => BigInt(c.seq) >= BigInt(rewrittenSeq));
    const all = await entries(p);
    const c = new Client({ connectionString: p.databaseUrl });
    await c.connect();
    try {
      await c.query('ALTER TABLE audit_checkpoint DISABLE TRIGGER USER');
      await c.query(`UPDATE audit_checkpoint SET "entryHash" = $2 WHERE seq = $1`, [first.seq, all.find((e) => e.seq === first.seq)?.hash]);
      const token = Buffer.from(second.tokenDer);
      token[token.length - 5] ^= 0x01; // inside the signature
      await c.query(`UPDATE audit_checkpoint SET "tokenDer" = $2 WHERE seq = $1`, [second.seq, token]);
      await c.query('ALTER TABLE audit_checkpoint ENABLE TRIGGER USER');
    } finally {
      await c.end();
    }
    const v = await aude<Verification>('GET', '/api/v1/audit/verify');
    expect(v.body.ok).toBe(false);
    expect(v.body.problems).toContainEqual(expect.objectContaining({ seq: first.seq, kind: 'checkpoint_mismatch' }));
    expect(v.body.problems).toContainEqual(expect.objectContaining({ seq: second.seq, kind: expect.stringMatching(/^checkpoint_(signature_invalid|mismatch)$/) }));
  });

  it('ksctl audit export carries the checkpoints; ksctl audit verify --root --tsa-cert fails on the rewritten chain (exit 6) and names checkpoint_mismatch', async () => {
    const r = await aude('GET', '/api/v1/audit/export');
    expect(r.status).toBe(200);
    const text = r.text;
    expect(text).toContain('{"checkpoint":');
    writeFileSync(f('export.jsonl'), text);
    const out = ksctl('audit', 'verify', f('export.jsonl'), '--root', f('root.pem'), '--tsa-cert', f('tsa.pem'));
    expect(out.status).toBe(6);
    expect(out.stderr + JSON.stringify(out.json ?? {})).toContain('checkpoint_mismatch');
  });
  it('fail a deleted checkpoint (its audit.checkpoint entry is in the chain, sealed by the next checkpoint): verify reports checkpoint_missing at its seq', async () => {
    // Activity after the earlier rewrites, each sealed, so that a checkpoint with a later one exists.
    for (let i = 0; i < 3; i++) {
      await aude('GET', '/api/v1/audit/verify');
      const head = await sealableHead(p);
      await until(() => checkpoints(p), (cs) => cs.some((c) => BigInt(c.seq) >= BigInt(head.seq)), 5_000);
    }
    const all = await checkpoints(p);
    const victim = all[all.length - 2];
    await deleteCheckpoints(p, victim.seq, victim.seq);
    const v = await aude<Verification>('GET', '/api/v1/audit/verify');
    expect(v.body.ok).toBe(false);
    expect(v.body.problems).toContainEqual(expect.objectContaining({ seq: victim.seq, kind: 'checkpoint_missing' }));
  });

  it('fail every checkpoint after an entry deleted, the entry rewritten and every later hash recomputed: checkpoint_missing for each, online and ksctl audit verify (exit 6)', async () => {
    const target = await sealableHead(p);
    for (let i = 0; i < 2; i++) {
      await aude('GET', '/api/v1/audit/verify');
      const head = await sealableHead(p);
      await until(() => checkpoints(p), (cs) => cs.some((c) => BigInt(c.seq) >= BigInt(head.seq)), 5_000);
    }
    const deleted = (await checkpoints(p)).filter((c) => BigInt(c.seq) >= BigInt(target.seq));
    expect(deleted.length).toBeGreaterThanOrEqual(2);
    await deleteCheckpoints(p, target.seq, null);
    await rewriteAndRechain(p, target.seq, (e) => {
      e.actorName = 'Someone Else';
    });
    const v = await aude<Verification>('GET', '/api/v1/audit/verify');
    expect(v.body.ok).toBe(false);
    for (const c of deleted) expect(v.body.problems).toContainEqual(expect.objectContaining({ seq: c.seq, kind: 'checkpoint_missing' }));

    writeFileSync(f('deleted.jsonl'), (await aude('GET', '/api/v1/audit/export')).text);
    const out = ksctl('audit', 'verify', f('deleted.jsonl'), '--root', f('root.pem'), '--tsa-cert', f('tsa.pem'));
    expect(out.status).toBe(6);
    expect(out.json?.code).toBe('audit_chain_broken');
    for (const c of deleted) expect(out.json?.problems).toContainEqual(expect.objectContaining({ seq: c.seq, kind: 'checkpoint_missing' }));
  });
});

describe('signed audit checkpoints without a usable TSA key', () => {
  let p: RunningPlatform;

  beforeAll(async () => {
    // TSA_KEYID names no key: the TSA is unavailable, as on an installation without a TSA key.
    p = await startPlatform({ extraApiEnv: { AUDIT_CHECKPOINT_INTERVAL_MS: '200', TSA_KEYID: 'no-such-tsa' } });
  });
  afterAll(() => p?.stop());

  it('ok no checkpoint is written and verify says the chain is intact but unsealed', async () => {
    const aude = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    await new Promise((r) => setTimeout(r, 1_000));
    const v = await aude<Verification>('GET', '/api/v1/audit/verify');
    expect(v.body).toMatchObject({ ok: true, seal: { sealed: false, checkpoints: 0, lastSealedSeq: null } });
    expect(await checkpoints(p)).toEqual([]);
  });
});

describe('ksctl audit verify of a large export', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'ks-audit-big-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('ok streams: an export of 40000 entries and their checkpoints (about 70 MB) verifies within a 48 MB heap', () => {
    const pki = testTsas(work);
    const signer = { cert: pki.pem('tsa'), key: pki.key('tsa') };
    const t0 = Math.floor(Date.now() / 1000) * 1000 + 60_000;
    const fd = openSync(join(work, 'big.jsonl'), 'w');
    const checkpointLines: string[] = [];
    let prev = '0'.repeat(64);
    let seq = 0;
    let buf: string[] = [];
    const push = (e: Omit<StoredAuditEntry, 'seq' | 'hash' | 'prevHash'>) => {
      seq++;
      const full = { ...e, seq: String(seq), prevHash: prev };
      const hash = auditEventHash(full);
      buf.push(JSON.stringify({ ...full, at: full.at.toISOString(), hash }));
      if (buf.length >= 5000) {
        writeSync(fd, `${buf.join('\n')}\n`);
        buf = [];
      }
      prev = hash;
      return { ...full, hash };
    };
    const base = { errorCode: null, actorTid: 't', actorOid: 'o', actorSubjectId: null, operationId: null, adminSessionId: null, digest: null, requestId: null };
    for (let i = 1; seq < 40_000; i++) {
      const at = new Date(t0 + seq * 1000);
      const e = push({ ...base, id: randomUUID(), at, action: 'key.update', outcome: 'SUCCESS', actorName: 'Ada Lovelace', actorClient: 'keyclient', keyid: 'demo-fw-dev', details: { note: 'x'.repeat(1500), n: i } });
      if (i % 400 !== 0) continue;
      const genTime = new Date(at.getTime() + 1000);
      const token = Buffer.from(timestampToken({ signer, over: Buffer.from(auditHashedText(e), 'utf8'), genTime, policy: AUDIT_CHECKPOINT_POLICY_OID }));
      checkpointLines.push(JSON.stringify({ checkpoint: { seq: e.seq, entryHash: e.hash, token: token.toString('base64'), genTime: genTime.toISOString(), tsaKeyid: 'demo-tsa', tsaKeyVersion: 1 } }));
      push({
        ...base, id: randomUUID(), at: new Date(genTime.getTime() + 1000), action: 'audit.checkpoint', outcome: 'SUCCESS', actorName: null, actorClient: 'keyserver-api audit sealer', keyid: 'demo-tsa',
        details: { checkpointSeq: e.seq, entryHash: e.hash, tokenSha256: createHash('sha256').update(token).digest('hex') },
      });
    }
    writeSync(fd, `${[...buf, ...checkpointLines].join('\n')}\n`);
    closeSync(fd);
    const file = join(work, 'big.jsonl');
    // The control: the file read whole (what verification did before it streamed) does not fit in that heap.
    const whole = spawnSync(process.execPath, ['--max-old-space-size=48', '-e', `const l = require('node:fs').readFileSync(${JSON.stringify(file)}, 'utf8').split('\\n'); console.log(l.length)`], { encoding: 'utf8', timeout: 120_000 });
    expect(whole.status).not.toBe(0);
    const r = spawnSync(process.execPath, ['--max-old-space-size=48', KSCTL, '--json', 'audit', 'verify', file, '--root', join(work, 'root.pem'), '--tsa-cert', join(work, 'tsa.pem')], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '' },
      timeout: 240_000,
    });
    // Nothing on stderr but the unsealed tail's warning: the entries after the last checkpoint (its record included).
    expect([r.status, r.stderr.replace(/^ksctl: warning: audit_tail_unsealed: .*\n/, '').slice(0, 300)]).toEqual([0, '']);
    expect(JSON.parse(r.stdout)).toMatchObject({ verified: true, status: 'valid_unsealed_tail', total: 40_000, seal: { sealed: true, anchored: true, checkpoints: checkpointLines.length } });
  }, 300_000);
});
