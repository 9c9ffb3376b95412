import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { AUDIT_GENESIS_HASH, auditEventHash } from '@keyserver/audit-chain';
import { repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { userToken } from './operations-support';

// GET /api/v1/audit/export streams (ADR 0048 addendum "the export streams"): a batch of entries at a time from the
// chain as it stood when the export began, as fast as the client reads; an API whose heap is a fraction of the export
// serves it whole, a client that goes away stops the reads, and an export cut short is never a valid-looking file.

const KSCTL = join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js');
const AUDIT_APPEND_LOCK = 0x6b732d61;
/** Entries added to the demo chain: about 130 MB of export. */
const ADDED = 60_000;
/**
 * The API's heap, smaller than the export: the in-memory export of that chain (rows, lines and their join) died here
 * and at twice this heap (out of memory, the API gone mid-request).
 */
const HEAP_MB = 96;

/** Appends ADDED valid entries (about 2 KB each) to the chain, under the append lock, the sequence moved past them. */
async function growChain(p: RunningPlatform): Promise<void> {
  const c = new Client({ connectionString: p.databaseUrl });
  await c.connect();
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock($1::bigint)', [AUDIT_APPEND_LOCK]);
    const { rows: [head] } = await c.query<{ seq: string; hash: string }>('SELECT seq::text AS seq, hash FROM audit_event ORDER BY audit_event.seq DESC LIMIT 1');
    // The demo chain may still be empty: then these entries start it.
    let seq = Number(head?.seq ?? 0);
    let prev = head?.hash ?? AUDIT_GENESIS_HASH;
    const t0 = Math.floor(Date.now() / 1000) * 1000;
    for (let done = 0; done < ADDED; done += 1000) {
      const values: unknown[] = [];
      const rows: string[] = [];
      for (let i = 0; i < 1000; i++) {
        seq++;
        const e = {
          seq: String(seq), id: randomUUID(), at: new Date(t0 + i), action: 'key.update', outcome: 'SUCCESS', errorCode: null, actorTid: 't', actorOid: 'o',
          actorName: 'Ada Lovelace', actorClient: 'keyclient', actorSubjectId: null, keyid: 'demo-fw-dev', operationId: null, adminSessionId: null, digest: null,
          requestId: `bulk-${seq}`, details: { note: 'x'.repeat(2000) }, prevHash: prev,
        };
        const hash = auditEventHash(e);
        const row = [e.seq, e.id, e.at, e.action, e.outcome, e.actorTid, e.actorOid, e.actorName, e.actorClient, e.keyid, e.requestId, JSON.stringify(e.details), prev, hash];
        rows.push(`(${row.map((v) => `$${values.push(v)}`).join(', ')})`);
        prev = hash;
      }
      await c.query(
        `INSERT INTO audit_event (seq, id, at, action, outcome, "actorTid", "actorOid", "actorName", "actorClient", keyid, "requestId", details, "prevHash", hash) VALUES ${rows.join(', ')}`,
        values,
      );
    }
    await c.query(`SELECT setval(pg_get_serial_sequence('audit_event', 'seq'), $1::bigint)`, [seq]);
    await c.query('COMMIT');
  } finally {
    await c.end();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('GET /api/v1/audit/export (streaming)', () => {
  let p: RunningPlatform;
  let work: string;
  let auditor: string;

  const ksctlEnv = () => ({ PATH: process.env['PATH'] ?? '', KSCTL_CACHE_DIR: join(work, 'cache'), KEYSERVER_TOKEN: auditor, KEYSERVER_URL: p.env.urls.api });

  beforeAll(async () => {
    // A lock wait of the export's reads fails fast: the test below cuts an export short by holding the table's lock.
    p = await startPlatform({ extraApiEnv: { NODE_OPTIONS: `--max-old-space-size=${HEAP_MB}`, LOG_LEVEL: 'info', DATABASE_LOCK_TIMEOUT_MS: '1000' } });
    work = mkdtempSync(join(tmpdir(), 'ks-audit-export-'));
    auditor = await userToken(p, 'aude.auditor@demo.test', 'keyclient');
    await growChain(p);
  }, 300_000);

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it(`ok serves an export of ${ADDED} entries (about 130 MB) whole from an API with a ${HEAP_MB} MB heap, the API alive after it`, async () => {
    const file = join(work, 'big.jsonl');
    const r = spawnSync(process.execPath, [KSCTL, '--json', 'audit', 'export', '--out', file], { encoding: 'utf8', env: ksctlEnv(), timeout: 240_000 });
    expect([r.status, r.stderr.slice(0, 300)]).toEqual([0, '']);
    expect(statSync(file).size).toBeGreaterThan(120 * 1024 * 1024);
    expect(p.api.child.exitCode).toBeNull();
    const verified = spawnSync(process.execPath, [KSCTL, '--json', 'audit', 'verify', file], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' }, timeout: 240_000 });
    // Nothing on stderr but the unsealed tail's warning (no checkpoint covers the entries added here).
    expect([verified.status, verified.stderr.replace(/^ksctl: warning: audit_tail_unsealed: .*\n/, '').slice(0, 300)]).toEqual([0, '']);
    // Whole: every entry of the snapshot its audit event names.
    const c = new Client({ connectionString: p.databaseUrl });
    await c.connect();
    const { rows: [event] } = await c.query<{ details: { entries: number } }>(`SELECT details FROM audit_event WHERE action = 'audit.export' ORDER BY audit_event.seq DESC LIMIT 1`).finally(() => c.end());
    expect(event.details.entries).toBeGreaterThan(ADDED);
    expect(JSON.parse(verified.stdout)).toMatchObject({ verified: true, total: event.details.entries });
  }, 300_000);

  it('ok stops reading the database when the client goes away mid-export (and reads ahead only what the socket takes)', async () => {
    const requestId = `export-gone-${randomUUID()}`;
    const url = new URL('/api/v1/audit/export', p.env.urls.api);
    await new Promise<void>((resolve, reject) => {
      const req = request(url, { headers: { authorization: `Bearer ${auditor}`, 'x-request-id': requestId } }, (res) => {
        expect(res.statusCode).toBe(200);
        res.once('data', () => {
          // Read nothing more for a while: backpressure holds the export; then go away.
          res.pause();
          setTimeout(() => {
            req.destroy();
            resolve();
          }, 3000);
        });
      });
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
      req.end();
    });
    let line: { entries: number; of: number } | undefined;
    for (let i = 0; i < 50 && !line; i++) {
      await sleep(100);
      const found = p.api.output().split('\n').find((l) => l.includes(requestId) && l.includes('audit export stopped before its end'));
      if (found) line = JSON.parse(found) as { entries: number; of: number };
    }
    expect(line).toBeDefined();
    // A few MB in the socket's buffers at most, of about 130 MB.
    expect(line?.entries).toBeLessThan((line?.of ?? 0) / 4);
  }, 60_000);

  it('fail an export the API cannot finish after its headers went out: ksctl audit export exits 5 audit_export_truncated and writes no file', async () => {
    const file = join(work, 'cut.jsonl');
    const child = spawn(process.execPath, [KSCTL, '--json', 'audit', 'export', '--out', file], { env: ksctlEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // Once the export is under way, the table's lock held past the API's lock timeout: its next batch read fails.
    // ksctl writes into a new temporary file beside --out (`.cut.jsonl.<random>.tmp`, ADR 0015 addendum 2026-12-07).
    const temporary = () => readdirSync(work).filter((f) => f.startsWith('.cut.jsonl.') && f.endsWith('.tmp'));
    const started = () => temporary().some((f) => (statSync(join(work, f), { throwIfNoEntry: false })?.size ?? 0) > 0);
    for (let i = 0; i < 600 && !started() && !existsSync(file); i++) await sleep(10);
    const c = new Client({ connectionString: p.databaseUrl });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query('LOCK TABLE audit_event IN ACCESS EXCLUSIVE MODE');
      const code = await exited;
      await c.query('ROLLBACK');
      const out = JSON.parse(stdout || stderr) as { code?: string };
      expect([code, out.code]).toEqual([5, 'audit_export_truncated']);
      expect([existsSync(file), temporary()]).toEqual([false, []]);
    } finally {
      await c.end();
    }
  }, 120_000);
});
