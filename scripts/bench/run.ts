// The end-to-end benchmark (bundled and run by scripts/bench.mjs): one real platform with two API replicas, every
// HTTP cell driven by wrk (C, one thread), next to yardsticks measured in the same run by tools we did not write:
// a bare node:http server (HTTP), pgbench running one sign order's reservation + finish statements (database),
// p11speed (HSM, C) and `cfssl serve` (a peer CA). Rounds interleave yardsticks and our cells; each cell keeps its
// best round. The Node client is kept only for what wrk cannot do: the streamed firmware upload and a fixed
// arrival rate (p99 at half the peak rate).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'pg';
import { createDatabase, freePort, socketUrl, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { makeImage, MiB } from '../../apps/keyserver-e2e/src/firmware-support';
import { call, ciToken, operationBody, userToken } from '../../apps/keyserver-e2e/src/operations-support';
import { RESERVE_SQL } from '../../libs/data-access/src/lib/repositories/usage';
import { auditCallSql } from '../../libs/data-access/src/lib/repositories/audit.repository';
import { summarizeProfile, type ProfileSummary } from './profile';
import { machineCeilings, p11speed, pct, pgbench, pgbenchAtRate, postgresCpuMs, postmasterOf, startBareServer, startCfssl, traceFlushes, treeCpuMs, waitFor, wrk, wrkScript, type Cell, type WrkRequest } from './yardsticks';

export type { Cell, MachineCeiling } from './yardsticks';
// For scripts/bench.mjs, which loads only this bundle.
export { boundVerdict } from './yardsticks';

export interface BenchOptions {
  seconds: number;
  rounds: number;
  firmwareMib: number;
  p11speed: string;
  /**
   * Only these cells (keys of the plan: bare, healthz, me, pgHot, ecOne, pgEight, ecEight, ecRaw1, ecRaw, rsaRaw1,
   * rsaRaw, rsa, cfssl, certs, two, half); all when undefined. A partial run is for focused work on a few targets.
   */
  cells?: string[];
  /** scripts/bench/gc-observer.cjs: loaded into every API process to log its GC pauses for the fixed-rate cell. */
  gcObserver?: string;
  /** scripts/bench/fixed-rate-client.cjs: the fixed-rate cell's client (its own process). */
  fixedRateClient: string;
  /** The fixed arrival rate of the `half` cell in orders/s (default: half the best P-256 one-operation rate). */
  halfRate?: number;
  /**
   * PostgreSQL's Unix socket directory: the API processes and pgbench both reach the server through it (a co-located
   * database, docs/scaling.md); TCP on 127.0.0.1 when undefined.
   */
  databaseSocketDir?: string;
  /** Profile mode: only P-256 sign orders (wrk, concurrency 32) against one API started with --cpu-prof. */
  profile?: { seconds: number; /** Where to copy the raw .cpuprofile (optional). */ keep?: string; /** Which cell (default sign orders). */ target?: 'signorders' | 'certificates' | 'healthz' | 'me' };
}

export interface BenchResult {
  /** Every cell's best round, by name. */
  cells: Record<string, Cell>;
  /** Every round of every cell, in run order. */
  rounds: Cell[][];
  halfRate?: Cell & { targetPerSecond: number; warmupSeconds: number };
  firmware?: { mib: number; seconds: number; mbPerSecond: number; sha256sumMbPerSecond: number; rssBeforeMib: number; rssPeakMib: number; rssGrowthMib: number; vmHwmMib: number };
  profile?: ProfileSummary;
  /** Same-run machine ceilings of the targets the 2 cores may bind (yardsticks.ts machineCeilings), when their cells ran. */
  ceilings?: ReturnType<typeof machineCeilings>;
}

interface Answer {
  status: number;
  body: Buffer;
}

/** One request over a keep-alive agent; resolves with the whole (small) answer. */
function send(agent: Agent, base: string, token: string, method: string, path: string, body: Buffer | Readable, type: string, length?: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'content-type': type };
    if (token) headers['authorization'] = `Bearer ${token}`;
    if (Buffer.isBuffer(body)) headers['content-length'] = body.length;
    else if (length !== undefined) headers['content-length'] = length;
    const req = request(new URL(path, base), { method, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

/** Not counted at the start of the fixed-rate cell (fixedRate). */
const HALF_RATE_WARMUP_SECONDS = 2;


/**
 * Open-loop load at a fixed arrival rate (what wrk cannot do): a request is due every 1/rate s whatever the answers;
 * latency counts from the due time, so a stalled server is not hidden by the client waiting (no coordinated omission).
 * The first `warmupSeconds` run at the same rate and are not counted (as wrk2's calibration period): they open the
 * client's connections and compile its code, which is the client's start-up, not the server's steady state. `lag` is
 * how late the client itself sent (due → write): a slow answer with a small lag is the server's.
 */
async function fixedRate(client: string, name: string, rate: number, seconds: number, warmupSeconds: number, base: string, path: string, bodies: Buffer[], token: string): Promise<Cell> {
  const url = new URL(base);
  const child = spawn(process.execPath, [client], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.end(JSON.stringify({ host: url.hostname, port: Number(url.port), path, token, bodies: bodies.map((b) => b.toString('base64')), rate, warmupSeconds, seconds }));
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    out += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`fixed-rate client exited with ${code}`);
  const r = JSON.parse(out) as { warmup: number; startWall: number; endMs: number; latency: (number | null)[]; status: number[]; lag: number[] };
  const interval = 1000 / rate;
  const measuredFromMs = r.warmup * interval;
  const lat: number[] = [];
  const lags: number[] = [];
  const warm: number[] = [];
  const at: { atMs: number; ms: number }[] = [];
  let errors = 0;
  r.latency.forEach((ms, i) => {
    const ok = r.status[i] === 201 && ms !== null;
    if (i < r.warmup) return void (ok && warm.push(ms));
    lags.push(r.lag[i]);
    if (!ok) return void errors++;
    lat.push(ms);
    at.push({ atMs: Math.round(i * interval - measuredFromMs), ms: Math.round(ms * 10) / 10 });
  });
  const elapsed = (r.endMs - measuredFromMs) / 1000;
  lat.sort((a, b) => a - b);
  lags.sort((a, b) => a - b);
  // Where the tail sits in time tells its cause apart: the start, a period (GC, checkpoints) or everywhere (queueing).
  const p99PerSecondMs = Array.from({ length: Math.ceil(seconds) }, (_, s) => {
    const inSecond = at.filter((a) => a.atMs >= s * 1000 && a.atMs < (s + 1) * 1000).map((a) => a.ms).sort((a, b) => a - b);
    return Math.round(pct(inSecond, 0.99) * 10) / 10;
  });
  const slowest = [...at].sort((a, b) => b.ms - a.ms).slice(0, 12);
  warm.sort((a, b) => a - b);
  const tail = { p99PerSecondMs, slowest, clientLagP99Ms: Math.round(pct(lags, 0.99) * 10) / 10, warmupP99Ms: Math.round(pct(warm, 0.99) * 10) / 10, fromWall: Math.round(r.startWall + measuredFromMs), toWall: Math.round(r.startWall + r.endMs) };
  return { name, requests: lat.length, errors, perSecond: lat.length / elapsed, p50ms: pct(lat, 0.5), p99ms: pct(lat, 0.99), tail };
}

/**
 * The API's GC pauses and event-loop stalls (gc-observer.cjs) between two wall-clock times: how many minor (scavenge)
 * and major (mark-compact) pauses, the longest, their sum, and the longest event-loop delay.
 */
function pausesDuring(file: string, from: number, to: number): NonNullable<Cell['tail']>['api'] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const out = { minor: { count: 0, maxMs: 0, totalMs: 0 }, major: { count: 0, maxMs: 0, totalMs: 0 }, loopMaxMs: 0 };
  for (const line of text.split('\n')) {
    if (!line) continue;
    const e = JSON.parse(line) as { at: number; gc?: string; ms?: number; loopMaxMs?: number };
    if (e.at < from || e.at > to) continue;
    if (e.loopMaxMs !== undefined) out.loopMaxMs = Math.max(out.loopMaxMs, e.loopMaxMs);
    const k = e.gc === 'minor' ? out.minor : e.gc === 'major' || e.gc === 'incremental' ? out.major : undefined;
    if (k && e.ms !== undefined) {
      k.count++;
      k.maxMs = Math.max(k.maxMs, e.ms);
      k.totalMs = Math.round((k.totalMs + e.ms) * 10) / 10;
    }
  }
  return out;
}

/** Cumulative bucket counts (le -> count) of one Prometheus histogram, summed over the series whose labels contain `match`. */
async function histogram(metricsUrl: string, name: string, match: string): Promise<Map<number, number>> {
  const text = await (await fetch(metricsUrl)).text();
  const out = new Map<number, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}_bucket{`) || !line.includes(match)) continue;
    const le = /le="([^"]+)"/.exec(line)?.[1];
    if (!le) continue;
    const k = le === '+Inf' ? Infinity : Number(le);
    out.set(k, (out.get(k) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

/** Of the observations between two scrapes: how many, and how many took longer than `overSeconds` (a bucket bound). */
function slowerThan(before: Map<number, number>, after: Map<number, number>, overSeconds: number): { n: number; over: number } {
  const n = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  const under = (after.get(overSeconds) ?? 0) - (before.get(overSeconds) ?? 0);
  return { n, over: n - under };
}

/** The API's own histograms of the fixed-rate cell's signorders: what the server measured, next to what the client saw. */
const SERVER_SIDE = [
  ['request', 'http_request_duration_seconds', 'route="/api/signorders"'],
  ['reservation', 'keyserver_usage_reservation_duration_seconds', ''],
  ['auditAppend', 'keyserver_audit_append_duration_seconds', ''],
  ['hsm', 'keyserver_hsm_operation_duration_seconds', ''],
] as const;

async function serverSide(metricsUrl: string): Promise<Map<number, number>[]> {
  return Promise.all(SERVER_SIDE.map(([, name, match]) => histogram(metricsUrl, name, match)));
}

/**
 * The whole file as a request body, read into a few reused buffers: the client allocates nothing per chunk, so its
 * own GC does not compete with the API for the two cores.
 */
function fileBody(path: string, chunk = MiB, depth = 4): Readable {
  const fd = openSync(path, 'r');
  const pool = Array.from({ length: depth }, () => Buffer.allocUnsafeSlow(chunk));
  let next = 0;
  return new Readable({
    highWaterMark: 0,
    read() {
      const buf = pool[next++ % depth];
      const n = readSync(fd, buf, 0, chunk, null);
      if (n > 0) return void this.push(n === chunk ? buf : buf.subarray(0, n));
      closeSync(fd);
      this.push(null);
    },
  });
}

/** The messageDigest signed attribute of a CMS SignedData (DER), hex. */
function cmsMessageDigest(der: Buffer): string {
  const at = der.indexOf(Buffer.from('06092a864886f70d010904', 'hex'));
  const value = at < 0 ? undefined : der.subarray(at + 11);
  if (!value || value[0] !== 0x31 || value[2] !== 0x04) throw new Error('no messageDigest in the CMS');
  return value.subarray(4, 4 + value[3]).toString('hex');
}

function rssKb(pid: number): { rss: number; hwm: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rss: Number(/VmRSS:\s+(\d+) kB/.exec(s)?.[1] ?? 0), hwm: Number(/VmHWM:\s+(\d+) kB/.exec(s)?.[1] ?? 0) };
}

/** The PostgreSQL server's postmaster (the parent of this connection's backend), if it runs on this machine. */
async function postmasterPid(url: string): Promise<number | undefined> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return postmasterOf((await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid);
  } finally {
    await c.end();
  }
}

async function dbTransactions(url: string): Promise<number> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ n: string }>('SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()');
    return Number(r.rows[0].n);
  } finally {
    await c.end();
  }
}

const DIGEST_INFO_SHA256 = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/** A SQL literal of a parameter value (dollar-quoted text; the bench writes the pgbench scripts itself). */
function sqlLiteral(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'number') return String(v);
  const s = v instanceof Date ? v.toISOString() : String(v);
  if (s.includes('$q$')) throw new Error('literal contains $q$');
  // pgbench reads ":name" as a variable even inside a literal: such colons become chr(58).
  const parts = s.split(/:(?=[A-Za-z0-9_])/);
  return parts.length === 1 ? `$q$${s}$q$` : `(${parts.map((x) => `$q$${x}$q$`).join(' || chr(58) || ')})`;
}

/**
 * The pgbench script of one sign order on operation `op`: the API's reservation statement (RESERVE_SQL, as is) and
 * its finish statement (delete the reservation, insert the order, append the audit event through the real
 * keyserver_append_audit with its canonical-form check, count the usages left): two round trips, two autocommit
 * transactions, like POST /api/signorders. The reservation id and the two row ids are derived from two pgbench
 * random numbers, so both statements name the same reservation.
 */
function pgbenchScript(file: string, o: { op: string; keyid: string; subjectId: string; actor: Record<string, string | null>; digest: string }): string {
  const rid = `md5(:r1::text || ':' || :r2::text)::uuid`;
  const orderId = `md5(:r2::text || ':' || :r1::text)::uuid`;
  const auditId = `md5(:r1::text || '/' || :r2::text)::uuid::text`;
  const reserve = RESERVE_SQL.replace(/\$(\d+)/g, (_, n: string) => {
    const map: Record<string, string> = {
      '1': sqlLiteral(o.op),
      '2': sqlLiteral(o.keyid),
      '3': 'now()',
      '4': sqlLiteral(o.digest),
      '5': `(${rid})`,
      '6': sqlLiteral(o.subjectId),
      '7': `'signorder'`,
      '8': 'NULL',
      '9': `'pgbench'`,
      '10': '60',
    };
    return map[n];
  });
  const call = auditCallSql(
    {
      ...o.actor,
      action: 'signorder.create',
      outcome: 'SUCCESS',
      keyid: o.keyid,
      operationId: o.op,
      digest: o.digest,
      requestId: 'pgbench',
      details: { inputpadding: 'none', signatureformat: 'asn1', signOrderId: '00000000-0000-4000-8000-000000000000' },
    },
    (v, cast) => `${sqlLiteral(v)}${cast ? `::${cast}` : ''}`,
  );
  // Every occurrence of the event's id (the id column and inside the hashed text) becomes the per-run id.
  const audit = call.sql.split(call.fields.id).join(`$q$ || ${auditId} || $q$`);
  const finish = `WITH d AS (DELETE FROM "usage_reservation" WHERE "id" = ${rid} RETURNING "operationId", "keyId"),
  ins AS (INSERT INTO "sign_order" ("id", "operationId", "keyId", "subjectId", "description", "inputdata", "inputformat",
                  "inputpadding", "signatureformat", "result", "idempotencyKey", "requestHash", "requestId")
          SELECT ${orderId}, d."operationId", d."keyId", ${sqlLiteral(o.subjectId)}::uuid, 'pgbench sign order', ${sqlLiteral(o.digest)},
                 'hex', 'none', 'asn1', repeat('ab', 72), NULL, NULL, 'pgbench' FROM d RETURNING "createdAt")
SELECT ins."createdAt", ${audit} AS "audit",
  (SELECT COALESCE(sum(ok."usagesAllowed" - ok."usagesUsed"), 0) FROM "operation_key" ok WHERE ok."operationId" = ${sqlLiteral(o.op)}::uuid)::int AS "left"
FROM ins`;
  const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim();
  writeFileSync(file, `\\set r1 random(1, 9000000000000000000)\n\\set r2 random(1, 9000000000000000000)\n${oneLine(reserve)};\n${oneLine(finish)};\n`);
  return file;
}

export async function runBench(o: BenchOptions, log: (m: string) => void): Promise<BenchResult> {
  const work = mkdtempSync(join(tmpdir(), 'ks-bench-e2e-'));
  let p: RunningPlatform | undefined;
  const children: ChildProcess[] = [];
  const drops: (() => Promise<void>)[] = [];
  const profileDir = join(work, 'profile');
  const gcLog = join(work, 'gc');
  let cleaned: Promise<void> | undefined;
  // Everything this run started goes, also when it is interrupted (the platform, the yardstick servers, databases).
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const c of children) c.kill('SIGTERM');
      await p?.stop();
      for (const d of drops) await d().catch(() => undefined);
      rmSync(work, { recursive: true, force: true });
    })());
  const interrupted = (signal: NodeJS.Signals) => void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    log(`starting the platform (emulator, init, ${o.profile ? 1 : 2} API replica(s))`);
    // Metrics on, as in docker-compose.yml (a production default): their per-request cost is part of every cell, and the
    // fixed-rate cell reads the API's own latency histograms.
    const extraApiEnv: Record<string, string> = { FIRMWARE_MAX_BYTES: String((o.firmwareMib + 1) * MiB), METRICS_PORT: String(await freePort()) };
    const nodeOptions: string[] = [];
    if (o.gcObserver) {
      nodeOptions.push(`--require ${o.gcObserver}`);
      extraApiEnv['KEYSERVER_BENCH_GC_LOG'] = gcLog;
    }
    if (o.profile) {
      mkdirSync(profileDir);
      nodeOptions.push(`--cpu-prof --cpu-prof-dir=${profileDir}`);
    }
    // Experiments with the API's runtime (e.g. --max-semi-space-size=8): BENCH_API_NODE_OPTIONS is added as is.
    if (process.env['BENCH_API_NODE_OPTIONS']) nodeOptions.push(process.env['BENCH_API_NODE_OPTIONS']);
    if (nodeOptions.length) extraApiEnv['NODE_OPTIONS'] = nodeOptions.join(' ');
    p = await startPlatform({ replicas: o.profile ? 1 : 2, extraApiEnv, databaseSocketDir: o.databaseSocketDir });
    const urls = p.apiReplicas.map((r) => r.url);
    const ci = await ciToken(p);
    const otto = await userToken(p, 'otto.orderer@demo.test');

    // A million usages is beyond every key's default limits (docs/api.md): two administrators raise them first.
    const [ada, alan] = [await userToken(p, 'ada.admin@demo.test'), await userToken(p, 'alan.admin@demo.test')];
    const session = await call<{ id: string }>(urls[0], ada, 'POST', '/api/v1/admin-sessions', { description: 'benchmark: raise key limits' });
    const authorized = await call(urls[0], alan, 'POST', `/api/v1/admin-sessions/${session.body.id}/authorizations`);
    if (session.status !== 201 || authorized.status !== 200) throw new Error(`admin session: ${session.status} ${authorized.status}`);
    for (const keyid of ['demo-fw-dev', 'demo-fw-prod', 'demo-ca-dev']) {
      const limits = { maxWindowSeconds: 86_400, maxUsagesPerOperation: 1_000_000, maxBackdateSeconds: 300, maxStartAheadSeconds: 3_600 };
      const r = await call(urls[0], ada, 'PUT', `/api/v1/keys/${keyid}/limits`, limits, { 'x-admin-session': session.body.id });
      if (r.status !== 200) throw new Error(`limits of ${keyid}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    const op = async (token: string, keyid: string) => {
      const r = await call<{ id: string }>(urls[0], token, 'POST', '/api/v1/operations', operationBody(keyid, 1_000_000));
      if (r.status !== 201) throw new Error(`operation on ${keyid}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.id;
    };
    const ecOps = [await op(ci, 'demo-fw-dev'), ...(await Promise.all(Array.from({ length: 7 }, () => op(ci, 'demo-fw-dev'))))];
    const rsaOp = await op(otto, 'demo-fw-prod');
    for (const u of ['ann.approver@demo.test', 'arno.approver@demo.test']) {
      const a = await call(urls[0], await userToken(p, u), 'POST', `/api/v1/operations/${rsaOp}/approvals`);
      if (a.status !== 201) throw new Error(`approval by ${u}: ${a.status} ${JSON.stringify(a.body)}`);
    }
    const caOp = await op(ci, 'demo-ca-dev');

    const auth = { authorization: `Bearer ${ci}`, 'content-type': 'application/json' };
    const signBody = (alg: 'P-256' | 'RSA-3072', i: number, operationid: string) => {
      const d = createHash('sha256').update(`bench ${alg} ${i}`).digest();
      const rsa = alg === 'RSA-3072';
      return JSON.stringify({
        operationid,
        keyid: rsa ? 'demo-fw-prod' : 'demo-fw-dev',
        inputdata: (rsa ? Buffer.concat([DIGEST_INFO_SHA256, d]) : d).toString('hex'),
        inputformat: 'hex',
        inputpadding: rsa ? 'digestinfo' : 'none',
        signatureformat: 'asn1',
        description: 'benchmark sign order',
      });
    };
    const post = (path: string, body: string): WrkRequest => ({ method: 'POST', path, headers: auth, body });
    const scripts = {
      healthz: wrkScript(work, 'healthz', [{ method: 'GET', path: '/healthz', headers: {} }]),
      me: wrkScript(work, 'me', [{ method: 'GET', path: '/api/v1/me', headers: { authorization: `Bearer ${ci}` } }]),
      ecOne: wrkScript(work, 'ec-one', Array.from({ length: 16 }, (_, i) => post('/api/signorders', signBody('P-256', i, ecOps[0])))),
      ecEight: wrkScript(work, 'ec-eight', Array.from({ length: 16 }, (_, i) => post('/api/signorders', signBody('P-256', i, ecOps[i % 8])))),
      rsa: wrkScript(work, 'rsa', Array.from({ length: 16 }, (_, i) => post('/api/signorders', signBody('RSA-3072', i, rsaOp)))),
    };
    // Device certificates and the peer CA sign the same pre-made openssl CSRs (P-256 device keys).
    const csrs = Array.from({ length: 16 }, (_, i) =>
      execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, `d${i}.key`), '-subj', `/CN=bench-device-${i}/O=Bench`], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    const certScript = wrkScript(work, 'certs', csrs.map((csr) => post('/api/v1/certificates', JSON.stringify({ operationid: caOp, keyid: 'demo-ca-dev', csr }))));

    const pids = p.apiReplicas.map((r) => r.service.child.pid as number);
    const dbUrl = p.databaseUrl;
    // PostgreSQL's CPU per cell: the whole server (the pgbench clone is on the same one).
    const postmaster = await postmasterPid(dbUrl);
    if (postmaster === undefined) log('PostgreSQL runs elsewhere (no postmaster among this machine\'s processes): no DB CPU per request');
    const dbCpu = () => (postmaster === undefined ? NaN : postgresCpuMs(postmaster));
    /** A wrk cell against our API: adds API CPU (the replicas used), DB transactions and DB CPU per successful request. */
    const ours = async (name: string, run: () => Promise<Omit<Cell, 'name'>>, pidsUsed = [pids[0]]): Promise<Cell> => {
      // pg_stat_database is updated when backends report (at most every 0.5-1 s): settle before and after.
      await new Promise((r) => setTimeout(r, 1100));
      const tx0 = await dbTransactions(dbUrl);
      const db0 = dbCpu();
      const cpu0 = pidsUsed.reduce((a, pid) => a + treeCpuMs(pid), 0);
      const cell = await run();
      const cpu1 = pidsUsed.reduce((a, pid) => a + treeCpuMs(pid), 0);
      const db1 = dbCpu();
      await new Promise((r) => setTimeout(r, 1100));
      const tx1 = await dbTransactions(dbUrl);
      // The first stats query is a transaction too.
      return { name, ...cell, cpuMsPerRequest: (cpu1 - cpu0) / cell.requests, dbTransactionsPerRequest: (tx1 - tx0 - 1) / cell.requests, dbCpuMsPerRequest: (db1 - db0) / cell.requests };
    };

    // Warm-up: JIT, the key caches and the DB pools of every replica.
    for (const u of urls) {
      await wrk(u, scripts.ecOne, 8, 1);
      await wrk(u, scripts.rsa, 4, 1);
    }

    if (o.profile) {
      const cellStart = Date.now();
      const cell =
        o.profile.target === 'certificates'
          ? await ours('device certificates, P-256 CSR, c=8 (profiled)', () => wrk(urls[0], certScript, 8, o.profile?.seconds ?? 10))
          : o.profile.target === 'healthz'
            ? await ours('GET /healthz, c=8 (profiled)', () => wrk(urls[0], scripts.healthz, 8, o.profile?.seconds ?? 10))
            : o.profile.target === 'me'
              ? await ours('GET /api/v1/me, c=8 (profiled)', () => wrk(urls[0], scripts.me, 8, o.profile?.seconds ?? 10))
              : await ours('P-256 sign orders, 1 operation, c=32 (profiled)', () => wrk(urls[0], scripts.ecOne, 32, o.profile?.seconds ?? 10));
      log(`profiled: ${JSON.stringify(cell)}`);
      const cellEnd = Date.now() - 1100; // ours() settles 1.1 s after the load before it reads the statistics
      const pid = pids[0];
      await p.stop();
      p = undefined;
      const stopped = Date.now();
      const file = readdirSync(profileDir).find((f) => f.includes(`.${pid}.`) && f.endsWith('.cpuprofile'));
      if (!file) throw new Error(`no CPU profile of pid ${pid} in ${readdirSync(profileDir).join(', ')}`);
      const rawProfile = readFileSync(join(profileDir, file), 'utf8');
      if (o.profile.keep) writeFileSync(o.profile.keep, rawProfile);
      // Only the load: from the cell's start to its end, counted back from the process's exit.
      const profile = summarizeProfile(JSON.parse(rawProfile), 25, { fromEndUs: (stopped - cellStart) * 1000, toEndUs: (stopped - cellEnd) * 1000 });
      return { cells: { [cell.name]: cell }, rounds: [[cell]], profile };
    }

    // Yardsticks: a bare node:http server, the peer CA, pgbench on a copy of this database, p11speed on this token.
    const barePort = await freePort();
    const bare = startBareServer(barePort);
    children.push(bare);
    const cfPort = await freePort();
    const cf = startCfssl(work, cfPort);
    children.push(cf);
    await waitFor(`http://127.0.0.1:${barePort}/`);
    await waitFor(`http://127.0.0.1:${cfPort}/api/v1/cfssl/info`, { method: 'POST', body: '{}' });
    const cfScript = wrkScript(work, 'cfssl', csrs.map((csr) => ({ method: 'POST', path: '/api/v1/cfssl/sign', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ certificate_request: csr }) })));

    const clone = await createDatabase('ks_bench_pgbench');
    drops.push(clone.drop);
    const dump = execFileSync('/usr/lib/postgresql/15/bin/pg_dump', ['--no-owner', '--no-privileges', dbUrl], { maxBuffer: 512 << 20 });
    execFileSync('psql', ['-q', '-v', 'ON_ERROR_STOP=1', clone.url], { input: dump, stdio: ['pipe', 'ignore', 'pipe'] });
    // pgbench reaches the server the way the API does (same transport), so the ratio compares the same SQL only.
    const pgbenchUrl = o.databaseSocketDir ? socketUrl(clone.url, o.databaseSocketDir) : clone.url;
    const pg = new Client({ connectionString: dbUrl });
    await pg.connect();
    const actorRow = (
      await pg.query<Record<string, string | null>>(
        `SELECT "actorTid", "actorOid", "actorName", "actorClient", "actorSubjectId" FROM "audit_event" WHERE "action" = 'signorder.create' AND "outcome" = 'SUCCESS' ORDER BY "seq" DESC LIMIT 1`,
      )
    ).rows[0];
    const hsmKeyIds = new Map<string, string>();
    for (const row of (await pg.query<{ keyid: string; hsmKeyId: string }>(`SELECT keyid, "hsmKeyId" FROM key WHERE keyid IN ('demo-fw-dev','demo-fw-prod')`)).rows) hsmKeyIds.set(row.keyid, row.hsmKeyId);
    await pg.end();
    const digest = createHash('sha256').update('pgbench').digest('hex');
    const pgScript = (i: number) =>
      pgbenchScript(join(work, `pgbench-${i}.sql`), { op: ecOps[i], keyid: 'demo-fw-dev', subjectId: actorRow['actorSubjectId'] as string, actor: actorRow, digest });
    const pgHot = [pgScript(0)];
    const pgEight = Array.from({ length: 8 }, (_, i) => pgScript(i));

    const hsmEnv = { ...process.env, SOFTHSM2_CONF: p.env.api['SOFTHSM2_CONF'] };
    const pin = readFileSync(p.env.api['PKCS11_PIN_FILE'], 'utf8').trim();
    const threads = Math.max(2, cpus().length);
    const raw = (keyid: string, mech: 'ecdsa' | 'rsa', inputLen: number, t: number) =>
      p11speed(o.p11speed, hsmEnv, {
        module: p?.env.api['PKCS11_MODULE'] ?? '',
        token: p?.env.api['PKCS11_TOKEN_LABEL'] ?? '',
        pin,
        keyIdHex: hsmKeyIds.get(keyid) ?? '',
        mech,
        inputLen,
        seconds: Math.min(o.seconds, 3),
        threads: t,
      });
    const rawCell = (name: string, rate: number): Cell => ({ name, requests: NaN, errors: 0, perSecond: rate, p50ms: NaN, p99ms: NaN });

    const barePid = bare.pid as number;
    /** A yardstick cell: CPU of its server `pid` per request, and with `db` (pgbench) PostgreSQL's CPU per transaction. */
    const yard = async (name: string, pid: number | undefined, run: () => Promise<Omit<Cell, 'name'>> | Omit<Cell, 'name'>, db = false): Promise<Cell> => {
      const c0 = pid ? treeCpuMs(pid) : 0;
      const db0 = db ? dbCpu() : 0;
      const cell = await run();
      const db1 = db ? dbCpu() : 0;
      const c1 = pid ? treeCpuMs(pid) : 0;
      return { ...cell, name, ...(pid ? { cpuMsPerRequest: (c1 - c0) / cell.requests } : {}), ...(db ? { dbCpuMsPerRequest: (db1 - db0) / cell.requests } : {}) };
    };
    const S = o.seconds;
    const wanted = (key: string) => !o.cells || o.cells.includes(key);
    const plan: [string, () => Promise<Cell>][] = (
      [
        ['bare', () => yard('bare node:http GET, c=8', barePid, () => wrk(`http://127.0.0.1:${barePort}`, scripts.healthz, 8, S))],
        ['healthz', () => ours('GET /healthz, c=8', () => wrk(urls[0], scripts.healthz, 8, S))],
        ['me', () => ours('GET /api/v1/me, c=8', () => wrk(urls[0], scripts.me, 8, S))],
        ['pgHot', () => yard('pgbench sign-order SQL, 1 hot operation row, 8 clients', undefined, () => pgbench(pgbenchUrl, pgHot, 8, S), true)],
        ['ecOne', () => ours('P-256 sign orders, 1 operation, c=32', () => wrk(urls[0], scripts.ecOne, 32, S))],
        ['pgEight', () => yard('pgbench sign-order SQL, 8 operation rows, 8 clients', undefined, () => pgbench(pgbenchUrl, pgEight, 8, S), true)],
        ['ecEight', () => ours('P-256 sign orders, 8 operations, c=32', () => wrk(urls[0], scripts.ecEight, 32, S))],
        ['ecRaw1', () => yard('p11speed P-256, 1 thread', undefined, () => rawCell('', raw('demo-fw-dev', 'ecdsa', 32, 1)))],
        ['ecRaw', () => yard(`p11speed P-256, ${threads} threads`, undefined, () => rawCell('', raw('demo-fw-dev', 'ecdsa', 32, threads)))],
        ['rsaRaw1', () => yard('p11speed RSA-3072, 1 thread', undefined, () => rawCell('', raw('demo-fw-prod', 'rsa', 51, 1)))],
        ['rsaRaw', () => yard(`p11speed RSA-3072, ${threads} threads`, undefined, () => rawCell('', raw('demo-fw-prod', 'rsa', 51, threads)))],
        ['rsa', () => ours('RSA-3072 sign orders, c=32', () => wrk(urls[0], scripts.rsa, 32, S))],
        ['cfssl', () => yard('cfssl serve sign, P-256 CSR, c=8', cf.pid, () => wrk(`http://127.0.0.1:${cfPort}`, cfScript, 8, S))],
        ['certs', () => ours('device certificates, P-256 CSR, c=8', () => wrk(urls[0], certScript, 8, S))],
        ['two', () =>
          ours(
            'P-256 sign orders, 1 operation, c=32 over 2 replicas',
            async () => {
              const [a, b] = await Promise.all(urls.map((u) => wrk(u, scripts.ecOne, 16, S)));
              return { requests: a.requests + b.requests, errors: a.errors + b.errors, perSecond: a.perSecond + b.perSecond, p50ms: Math.max(a.p50ms, b.p50ms), p99ms: Math.max(a.p99ms, b.p99ms), note: 'p50/p99: the worse replica' };
            },
            pids,
          )],
      ] as [string, () => Promise<Cell>][]
    )
      .filter(([key]) => wanted(key));
    const rounds: Cell[][] = [];
    /** Every cell's best round by plan key, for the machine ceilings. */
    const byKey: Record<string, Cell> = {};
    for (let r = 0; r < o.rounds; r++) {
      // The order flips every round so neither side always runs first after a pause.
      const order = r % 2 === 0 ? plan : [...plan].reverse();
      const cells: Cell[] = [];
      for (const [key, step] of order) {
        const c = await step();
        log(`round ${r + 1}: ${c.name}: ${c.perSecond.toFixed(1)}/s p50 ${c.p50ms.toFixed(1)} p99 ${c.p99ms.toFixed(1)} errors ${c.errors}${c.cpuMsPerRequest !== undefined ? ` CPU ${c.cpuMsPerRequest.toFixed(3)} ms/req` : ''}${c.dbTransactionsPerRequest !== undefined ? ` DB ${c.dbTransactionsPerRequest.toFixed(2)} tx/req` : ''}${c.dbCpuMsPerRequest !== undefined ? ` DB CPU ${c.dbCpuMsPerRequest.toFixed(3)} ms/req` : ''}`);
        cells.push(c);
        if (!byKey[key] || c.perSecond > byKey[key].perSecond) byKey[key] = c;
      }
      rounds.push(cells);
    }
    const cells: Record<string, Cell> = {};
    for (const c of rounds.flat()) if (!cells[c.name] || c.perSecond > cells[c.name].perSecond) cells[c.name] = c;
    const ceilings = machineCeilings(byKey, cpus().length);

    // p99 at half the peak P-256 rate (one operation), at a fixed arrival rate.
    let halfRate: BenchResult['halfRate'];
    const peakCell = cells['P-256 sign orders, 1 operation, c=32'];
    if (wanted('half') && (peakCell || o.halfRate)) {
      const peak = o.halfRate ? 2 * o.halfRate : (peakCell?.perSecond ?? 0);
      const bodies = Array.from({ length: 16 }, (_, i) => Buffer.from(signBody('P-256', i, ecOps[0])));
      const metricsUrl = p.apiEnv['METRICS_PORT'] ? `http://127.0.0.1:${p.apiEnv['METRICS_PORT']}/metrics` : undefined;
      // Scraped before the warm-up, not when counting starts: a scrape's gauges cost the API a few milliseconds, which
      // landed on the first counted answers. The API's counts thus include the warm-up's requests.
      const before = metricsUrl ? await serverSide(metricsUrl) : undefined;
      // The disk's part of the tail: every commit of a finish waits for a WAL flush (perf, where it may record).
      const flushes = traceFlushes(work);
      const half = await fixedRate(o.fixedRateClient, 'P-256 sign orders at half the peak rate (fixed arrivals, Node client)', peak / 2, Math.max(2 * S, 8), HALF_RATE_WARMUP_SECONDS, urls[0], '/api/signorders', bodies, ci);
      const flushed = await flushes.stop(half.tail?.fromWall ?? 0, half.tail?.toWall ?? 0);
      if (half.tail && flushed) half.tail.flushes = flushed;
      if (half.tail && metricsUrl && before) {
        const after = await serverSide(metricsUrl);
        half.tail.server = Object.fromEntries(SERVER_SIDE.map(([key], i) => [key, slowerThan(before[i], after[i], 0.025)]));
      }
      // The database's own tail at the same rate: pgbench -R running one order's two statements on the hot row.
      if (half.tail) {
        const db = pgbenchAtRate(pgbenchUrl, pgHot, 8, Math.max(2 * S, 8), Math.round(peak / 2));
        half.tail.pgbench = { perSecond: db.perSecond, p50ms: db.p50ms, p99ms: db.p99ms, over25: db.over25, n: db.requests };
      }
      if (half.tail && o.gcObserver) half.tail.api = pausesDuring(`${gcLog}.${p.apiReplicas[0].service.child.pid}`, half.tail.fromWall, half.tail.toWall);
      log(`half rate ${(peak / 2).toFixed(1)}/s: ${JSON.stringify(half)}`);
      halfRate = { ...half, targetPerSecond: peak / 2, warmupSeconds: HALF_RATE_WARMUP_SECONDS };
    }

    // Firmware: one streamed image, its CMS, the API's memory meanwhile; sha256sum of the same file as the yardstick.
    let firmware: BenchResult['firmware'];
    if (o.firmwareMib > 0) {
      const image = join(work, 'fw.bin');
      const size = o.firmwareMib * MiB;
      await makeImage(image, size);
      let t = performance.now();
      const imageSha256 = execFileSync('sha256sum', [image]).toString().split(' ')[0];
      const shaSeconds = (performance.now() - t) / 1000;
      const fwOp = await op(ci, 'demo-fw-dev');
      const pid = pids[0];
      const before = rssKb(pid);
      let peakRss = before.rss;
      const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssKb(pid).rss)), 20);
      t = performance.now();
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const fw = await send(
        agent,
        urls[0],
        ci,
        'POST',
        `/api/v1/firmware/signatures?${new URLSearchParams({ operationid: fwOp, keyid: 'demo-fw-dev', description: 'benchmark firmware image' })}`,
        fileBody(image),
        'application/octet-stream',
        statSync(image).size,
      );
      agent.destroy();
      const fwSeconds = (performance.now() - t) / 1000;
      clearInterval(sampler);
      const after = rssKb(pid);
      peakRss = Math.max(peakRss, after.rss);
      if (fw.status !== 201) throw new Error(`firmware upload: ${fw.status} ${fw.body.toString().slice(0, 300)}`);
      // The signature must cover exactly the bytes sha256sum read: the whole image went over HTTP.
      if (cmsMessageDigest(fw.body) !== imageSha256) throw new Error(`the CMS signs ${cmsMessageDigest(fw.body)}, the image is ${imageSha256}`);
      firmware = {
        mib: o.firmwareMib,
        seconds: fwSeconds,
        mbPerSecond: size / 1e6 / fwSeconds,
        sha256sumMbPerSecond: size / 1e6 / shaSeconds,
        rssBeforeMib: before.rss / 1024,
        rssPeakMib: peakRss / 1024,
        rssGrowthMib: (peakRss - before.rss) / 1024,
        vmHwmMib: after.hwm / 1024,
      };
      log(`firmware ${o.firmwareMib} MiB: ${JSON.stringify(firmware)}`);
    }
    return { cells, rounds, halfRate, firmware, ceilings };
  } finally {
    process.removeListener('SIGINT', interrupted);
    process.removeListener('SIGTERM', interrupted);
    await cleanup();
  }
}
