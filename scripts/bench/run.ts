// The end-to-end benchmark (bundled and run by scripts/bench.mjs): one real platform with two API replicas,
// measured over HTTP keep-alive from this process, next to the raw PKCS#11 rate of the same SoftHSM token.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'pg';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { makeImage, MiB } from '../../apps/keyserver-e2e/src/firmware-support';
import { call, ciToken, operationBody, userToken } from '../../apps/keyserver-e2e/src/operations-support';


export interface BenchOptions {
  seconds: number;
  firmwareMib: number;
  p11speed: string;
}

export interface Cell {
  /** The key of a signing cell; 'none' for the HTTP floor cells. */
  alg: 'P-256' | 'RSA-3072' | 'none';
  concurrency: number;
  replicas: number;
  requests: number;
  errors: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
  /** CPU time (user+system) of the API process(es) per successful request. */
  apiCpuMsPerRequest?: number;
  /** PostgreSQL transactions (xact_commit + xact_rollback of the database) per successful request. */
  dbTransactionsPerRequest?: number;
}

export interface BenchResult {
  signOrders: Cell[];
  raw: Record<'P-256' | 'RSA-3072', { threads1: number; threadsAll: number; threads: number }>;
  certificates: Cell;
  firmware: { mib: number; seconds: number; mbPerSecond: number; sha256sumMbPerSecond: number; rssBeforeMib: number; rssPeakMib: number; rssGrowthMib: number; vmHwmMib: number };
  replicas: { one: Cell; two: Cell };
  /** P-256 at concurrency 32 with the orders spread over 8 operations (diagnoses the per-operation row lock). */
  spread: Cell;
  /** The most one API process answers with (almost) no work: GET /healthz, and GET /api/v1/me (token + subject). */
  floor: { healthz: Cell; me: Cell };
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

const pct = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);

/** Closed-loop load: `concurrency` workers each send `next()` back to back for `seconds`. */
async function load(
  label: Pick<Cell, 'alg' | 'concurrency' | 'replicas'>,
  seconds: number,
  next: (i: number) => { base: string; path: string; body: Buffer; method?: string },
  token: string,
  agents: Agent[],
  expected = 201,
): Promise<Cell> {
  const lat: number[] = [];
  let errors = 0;
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: label.concurrency }, async (_, w) => {
      while (performance.now() < end) {
        const i = n++;
        const { base, path, body, method } = next(i);
        const t = performance.now();
        const r = await send(agents[i % agents.length], base, token, method ?? 'POST', path, body, 'application/json');
        if (r.status === expected) lat.push(performance.now() - t);
        else if (errors++ < 3) console.error(`worker ${w}: HTTP ${r.status} ${r.body.toString().slice(0, 200)}`);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  return { ...label, requests: lat.length, errors, perSecond: lat.length / elapsed, p50ms: pct(lat, 0.5), p99ms: pct(lat, 0.99) };
}

/**
 * The whole file as a request body, read into a few reused buffers: the client allocates nothing per chunk, so its
 * own GC does not compete with the API for the two cores (a plain read stream cost it ~2.3 s CPU per GiB, pooled
 * ~0.7 s). A buffer is refilled only after the socket took it: a paused pipe resumes on 'drain', and `depth` > 1.
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

/** utime+stime of a process in ms (from /proc/<pid>/stat, clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) * 10;
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

export async function runBench(o: BenchOptions, log: (m: string) => void): Promise<BenchResult> {
  const work = mkdtempSync(join(tmpdir(), 'ks-bench-e2e-'));
  let p: RunningPlatform | undefined;
  const agents: Agent[] = [];
  try {
    log('starting the platform (emulator, init, 2 API replicas)');
    p = await startPlatform({ replicas: 2, extraApiEnv: { FIRMWARE_MAX_BYTES: String((o.firmwareMib + 1) * MiB) } });
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

    // Operations with enough usages for every cell; the RSA key needs its two approvers.
    const op = async (token: string, keyid: string) => {
      const r = await call<{ id: string }>(urls[0], token, 'POST', '/api/v1/operations', operationBody(keyid, 1_000_000));
      if (r.status !== 201) throw new Error(`operation on ${keyid}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body.id;
    };
    const ecOp = await op(ci, 'demo-fw-dev');
    const rsaOp = await op(otto, 'demo-fw-prod');
    for (const u of ['ann.approver@demo.test', 'arno.approver@demo.test']) {
      const a = await call(urls[0], await userToken(p, u), 'POST', `/api/v1/operations/${rsaOp}/approvals`);
      if (a.status !== 201) throw new Error(`approval by ${u}: ${a.status} ${JSON.stringify(a.body)}`);
    }
    const caOp = await op(ci, 'demo-ca-dev');

    // Pre-built request bodies so the client spends its CPU on HTTP, not on hashing.
    const bodies = (alg: 'P-256' | 'RSA-3072') =>
      Array.from({ length: 256 }, (_, i) => {
        const d = createHash('sha256').update(`bench ${alg} ${i}`).digest();
        const rsa = alg === 'RSA-3072';
        return Buffer.from(
          JSON.stringify({
            operationid: rsa ? rsaOp : ecOp,
            keyid: rsa ? 'demo-fw-prod' : 'demo-fw-dev',
            inputdata: (rsa ? Buffer.concat([DIGEST_INFO_SHA256, d]) : d).toString('hex'),
            inputformat: 'hex',
            inputpadding: rsa ? 'digestinfo' : 'none',
            signatureformat: 'asn1',
            description: 'benchmark sign order',
          }),
        );
      });
    const pre = { 'P-256': bodies('P-256'), 'RSA-3072': bodies('RSA-3072') };
    const pids = p.apiReplicas.map((r) => r.service.child.pid as number);
    const dbUrl = p.databaseUrl;
    /** Runs a cell and adds the API CPU and the database transactions per successful request. */
    const measured = async (run: () => Promise<Cell>): Promise<Cell> => {
      const cpu0 = pids.reduce((a, pid) => a + cpuMs(pid), 0);
      // pg_stat_database is updated when backends report (at most every 0.5-1 s): settle before and after.
      await new Promise((r) => setTimeout(r, 1100));
      const tx0 = await dbTransactions(dbUrl);
      const cell = await run();
      const cpu1 = pids.reduce((a, pid) => a + cpuMs(pid), 0);
      await new Promise((r) => setTimeout(r, 1100));
      const tx1 = await dbTransactions(dbUrl);
      // The two stats queries themselves are transactions too.
      return { ...cell, apiCpuMsPerRequest: (cpu1 - cpu0) / cell.requests, dbTransactionsPerRequest: (tx1 - tx0 - 1) / cell.requests };
    };
    const agentFor = (c: number) => {
      const a = new Agent({ keepAlive: true, maxSockets: c });
      agents.push(a);
      return a;
    };

    // Warm-up: JIT, the key caches and the DB pools of both replicas.
    for (const alg of ['P-256', 'RSA-3072'] as const)
      await load({ alg, concurrency: 4, replicas: 2 }, 1, (i) => ({ base: urls[i % 2], path: '/api/signorders', body: pre[alg][i % 256] }), ci, [agentFor(4)]);

    // The HTTP floor of one API process, for scale: a public route doing nothing, and the authentication alone.
    const empty = Buffer.alloc(0);
    const floorCell = (path: string, token: string) =>
      measured(() => load({ alg: 'none', concurrency: 8, replicas: 1 }, o.seconds, () => ({ base: urls[0], path, body: empty, method: 'GET' }), token, [agentFor(8)], 200));
    const floor = { healthz: await floorCell('/healthz', ''), me: await floorCell('/api/v1/me', ci) };
    log(`HTTP floor: GET /healthz ${floor.healthz.perSecond.toFixed(1)}/s (${floor.healthz.apiCpuMsPerRequest?.toFixed(2)} ms CPU), GET /api/v1/me ${floor.me.perSecond.toFixed(1)}/s (${floor.me.apiCpuMsPerRequest?.toFixed(2)} ms CPU)`);

    const signOrders: Cell[] = [];
    for (const alg of ['P-256', 'RSA-3072'] as const) {
      for (const c of [1, 8, 32]) {
        const cell = await measured(() => load({ alg, concurrency: c, replicas: 1 }, o.seconds, (i) => ({ base: urls[0], path: '/api/signorders', body: pre[alg][i % 256] }), ci, [agentFor(c)]));
        log(
          `sign orders ${alg} c=${c}: ${cell.perSecond.toFixed(1)}/s p50 ${cell.p50ms.toFixed(1)} ms p99 ${cell.p99ms.toFixed(1)} ms errors ${cell.errors}; API CPU ${cell.apiCpuMsPerRequest?.toFixed(2)} ms/order, ${cell.dbTransactionsPerRequest?.toFixed(2)} DB transactions/order`,
        );
        signOrders.push(cell);
      }
    }

    // Two replicas on the same database: P-256 at concurrency 32, round robin over both.
    const one = signOrders.find((c) => c.alg === 'P-256' && c.concurrency === 32) as Cell;
    const twoAgents = [agentFor(16), agentFor(16)];
    const two = await load({ alg: 'P-256', concurrency: 32, replicas: 2 }, o.seconds, (i) => ({ base: urls[i % 2], path: '/api/signorders', body: pre['P-256'][i % 256] }), ci, twoAgents);
    log(`sign orders P-256 c=32 on 2 replicas: ${two.perSecond.toFixed(1)}/s p50 ${two.p50ms.toFixed(1)} ms p99 ${two.p99ms.toFixed(1)} ms`);

    // The same load spread over 8 operations: if the per-operation row lock is the limit, this is faster.
    const ecOps = [ecOp, ...(await Promise.all(Array.from({ length: 7 }, () => op(ci, 'demo-fw-dev'))))];
    const spreadBodies = pre['P-256'].map((b, i) => Buffer.from(JSON.stringify({ ...JSON.parse(b.toString()), operationid: ecOps[i % 8] })));
    const spread = await load({ alg: 'P-256', concurrency: 32, replicas: 1 }, o.seconds, (i) => ({ base: urls[0], path: '/api/signorders', body: spreadBodies[i % 256] }), ci, [agentFor(32)]);
    log(`sign orders P-256 c=32 over 8 operations: ${spread.perSecond.toFixed(1)}/s p50 ${spread.p50ms.toFixed(1)} ms p99 ${spread.p99ms.toFixed(1)} ms`);

    // The raw rate of the same token and keys, from C, while the API is idle.
    const hsmKeyIds = new Map<string, string>();
    const pg = new Client({ connectionString: p.databaseUrl });
    await pg.connect();
    for (const row of (await pg.query<{ keyid: string; hsmKeyId: string }>(`SELECT keyid, "hsmKeyId" FROM key WHERE keyid IN ('demo-fw-dev','demo-fw-prod')`)).rows)
      hsmKeyIds.set(row.keyid, row.hsmKeyId);
    await pg.end();
    const env = { ...process.env, SOFTHSM2_CONF: p.env.api['SOFTHSM2_CONF'] };
    const pin = readFileSync(p.env.api['PKCS11_PIN_FILE'], 'utf8').trim();
    const threads = Math.max(2, (await import('node:os')).cpus().length);
    const rawRate = (keyid: string, mech: 'ecdsa' | 'rsa', len: number, t: number) =>
      Number(
        execFileSync(o.p11speed, [p?.env.api['PKCS11_MODULE'] ?? '', p?.env.api['PKCS11_TOKEN_LABEL'] ?? '', pin, hsmKeyIds.get(keyid) ?? '', mech, String(len), String(Math.min(o.seconds, 3)), String(t)], { env })
          .toString()
          .trim(),
      );
    const raw = {
      'P-256': { threads1: rawRate('demo-fw-dev', 'ecdsa', 32, 1), threadsAll: rawRate('demo-fw-dev', 'ecdsa', 32, threads), threads },
      'RSA-3072': { threads1: rawRate('demo-fw-prod', 'rsa', 51, 1), threadsAll: rawRate('demo-fw-prod', 'rsa', 51, threads), threads },
    };
    log(`raw PKCS#11: ${JSON.stringify(raw)}`);

    // Device certificates from pre-made openssl CSRs (P-256 device keys; the CA key is P-256).
    const csrs = Array.from({ length: 16 }, (_, i) => {
      const key = join(work, `d${i}.key`);
      const pem = execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', `/CN=bench-device-${i}/O=Bench`], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      return Buffer.from(JSON.stringify({ operationid: caOp, keyid: 'demo-ca-dev', csr: pem }));
    });
    const certificates = await measured(() =>
      load({ alg: 'P-256', concurrency: 8, replicas: 1 }, o.seconds, (i) => ({ base: urls[0], path: '/api/v1/certificates', body: csrs[i % csrs.length] }), ci, [agentFor(8)]),
    );
    log(`certificates c=8: ${certificates.perSecond.toFixed(1)}/s errors ${certificates.errors}; API CPU ${certificates.apiCpuMsPerRequest?.toFixed(2)} ms/certificate`);

    // Firmware: one streamed image, its CMS, the API's memory meanwhile; sha256sum of the same file as the yardstick.
    const image = join(work, 'fw.bin');
    const size = o.firmwareMib * MiB;
    await makeImage(image, size);
    let t = performance.now();
    const imageSha256 = execFileSync('sha256sum', [image]).toString().split(' ')[0];
    const shaSeconds = (performance.now() - t) / 1000;
    const fwOp = await op(ci, 'demo-fw-dev');
    const pid = p.api.child.pid as number;
    const before = rssKb(pid);
    let peak = before.rss;
    const sampler = setInterval(() => (peak = Math.max(peak, rssKb(pid).rss)), 20);
    t = performance.now();
    const fw = await send(
      agentFor(1),
      urls[0],
      ci,
      'POST',
      `/api/v1/firmware/signatures?${new URLSearchParams({ operationid: fwOp, keyid: 'demo-fw-dev', description: 'benchmark firmware image' })}`,
      fileBody(image),
      'application/octet-stream',
      statSync(image).size,
    );
    const fwSeconds = (performance.now() - t) / 1000;
    clearInterval(sampler);
    const after = rssKb(pid);
    peak = Math.max(peak, after.rss);
    if (fw.status !== 201) throw new Error(`firmware upload: ${fw.status} ${fw.body.toString().slice(0, 300)}`);
    // The signature must cover exactly the bytes sha256sum read: the whole image went over HTTP.
    if (cmsMessageDigest(fw.body) !== imageSha256) throw new Error(`the CMS signs ${cmsMessageDigest(fw.body)}, the image is ${imageSha256}`);
    const MB = 1e6;
    const firmware = {
      mib: o.firmwareMib,
      seconds: fwSeconds,
      mbPerSecond: size / MB / fwSeconds,
      sha256sumMbPerSecond: size / MB / shaSeconds,
      rssBeforeMib: before.rss / 1024,
      rssPeakMib: peak / 1024,
      rssGrowthMib: (peak - before.rss) / 1024,
      vmHwmMib: after.hwm / 1024,
    };
    log(`firmware ${o.firmwareMib} MiB: ${JSON.stringify(firmware)}`);
    return { signOrders, raw, certificates, firmware, replicas: { one, two }, spread, floor };
  } finally {
    for (const a of agents) a.destroy();
    await p?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
