// Load generators and yardsticks we did not write, driven by scripts/bench/run.ts: wrk (C, one thread) for every
// HTTP cell, pgbench for the database, p11speed (C) for the HSM, `cfssl serve` as a peer CA, a bare node:http server.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One measured cell: what every table row of docs/benchmarks.md shows. */
export interface Cell {
  name: string;
  requests: number;
  errors: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
  /** CPU time (user+system, the whole process tree) of the measured server per successful request. */
  cpuMsPerRequest?: number;
  /** PostgreSQL transactions of the platform's database per successful request (autocommit: one per statement). */
  dbTransactionsPerRequest?: number;
  /**
   * CPU time of the whole PostgreSQL server ({@link postgresCpuMs}) over the cell per successful request (pgbench
   * cells: per transaction). The whole server: also what it did meanwhile for other databases on it.
   */
  dbCpuMsPerRequest?: number;
  /** wrk's own CPU time (user+system) per successful request: load the machine carries for our HTTP cells. */
  loadCpuMsPerRequest?: number;
  note?: string;
  /** Fixed-rate cells: p99 per second of the run, and the slowest answers with when they were due (ms into the run). */
  tail?: { p99PerSecondMs: number[]; slowest: { atMs: number; ms: number }[]; clientLagP99Ms: number; /** p99 of the warm-up, which the cell does not count. */ warmupP99Ms: number;
    /** Wall-clock bounds of the counted part (ms since the epoch). */
    fromWall: number;
    toWall: number;
    /** The API's GC pauses (>= 1 ms) and its longest event-loop delay in that window (scripts/bench/gc-observer.cjs). */
    api?: { minor: GcPauses; major: GcPauses; loopMaxMs: number };
    /** What the API's own histograms counted over the counted part: observations, and those over 25 ms (the target). */
    server?: Record<string, { n: number; over: number }>;
    /** pgbench -R at the same rate, same SQL (one order's two statements, hot row): the database's own tail. */
    pgbench?: { perSecond: number; p50ms: number; p99ms: number; over25: number; n: number };
    /** PostgreSQL's WAL flushes (fdatasync) that began in the counted part, as perf recorded them. */
    flushes?: FlushStalls;
  };
}

export interface GcPauses {
  count: number;
  maxMs: number;
  totalMs: number;
}

export interface WrkRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

const luaString = (s: string) => {
  let eq = '=';
  while (s.includes(`]${eq}]`)) eq += '=';
  return `[${eq}[${s}]${eq}]`;
};

const DONE = `
done = function(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests":%d,"us":%d,"status":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50":%d,"p99":%d}\\n',
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99)))
end
`;

/** A wrk Lua script sending `requests` in turn (one pre-formatted request each) and printing its summary as JSON. */
export function wrkScript(dir: string, name: string, requests: WrkRequest[]): string {
  const file = join(dir, `${name}.lua`);
  const lines = requests.map((r) => {
    const h = Object.entries(r.headers)
      .map(([k, v]) => `[ ${luaString(k)} ] = ${luaString(v)}`)
      .join(', ');
    return `  reqs[#reqs + 1] = wrk.format(${luaString(r.method)}, ${luaString(r.path)}, { ${h} }${r.body !== undefined ? `, ${luaString(r.body)}` : ''})`;
  });
  const single = requests.length === 1;
  // One request: wrk's static request (no Lua per request). Several: rotate over the pre-formatted requests.
  const body = single
    ? `wrk.method = ${luaString(requests[0].method)}\nwrk.path = ${luaString(requests[0].path)}\n${Object.entries(requests[0].headers)
        .map(([k, v]) => `wrk.headers[ ${luaString(k)} ] = ${luaString(v)}`)
        .join('\n')}\n${requests[0].body !== undefined ? `wrk.body = ${luaString(requests[0].body)}\n` : ''}`
    : `local reqs = {}\nlocal i = 0\ninit = function(args)\n${lines.join('\n')}\nend\nrequest = function()\n  i = i + 1\n  return reqs[(i % #reqs) + 1]\nend\n`;
  writeFileSync(file, body + DONE);
  return file;
}

/** Runs wrk (1 thread, `connections`, `seconds`) against `url` with a script from {@link wrkScript}. */
export function wrk(url: string, script: string, connections: number, seconds: number): Promise<Omit<Cell, 'name'>> {
  return new Promise((resolve, reject) => {
    const cpu0 = reapedChildrenCpuMs();
    execFile(
      'wrk',
      ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', script, url],
      { encoding: 'utf8', maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const line = stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
        if (!line) return reject(new Error(`wrk gave no summary: ${err?.message ?? ''} ${stderr} ${stdout}`));
        const s = JSON.parse(line.slice(8)) as Record<string, number>;
        const errors = s['status'] + s['connect'] + s['read'] + s['write'] + s['timeout'];
        const ok = s['requests'] - s['status'];
        // wrk is reaped by now: its CPU is in this process's cutime+cstime (nothing else of ours exits during a cell).
        const load = reapedChildrenCpuMs() - cpu0;
        resolve({ requests: ok, errors, perSecond: ok / (s['us'] / 1e6), p50ms: s['p50'] / 1000, p99ms: s['p99'] / 1000, ...(ok > 0 ? { loadCpuMsPerRequest: load / ok } : {}) });
      },
    );
  });
}

/** 1/USER_HZ: the unit of the times in /proc/<pid>/stat (100 Hz on Linux). */
const TICK_MS = 10;

/** /proc/<pid>/stat: the command name, and the fields after it (field n of proc(5) at index n - 3). */
function procStat(pid: number): { comm: string; fields: string[] } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return { comm: f.slice(f.indexOf('(') + 1, f.lastIndexOf(')')), fields: f.slice(f.lastIndexOf(')') + 2).split(' ') };
}

/** cutime+cstime of a process (default this one) in ms: the CPU of the children it has reaped (proc(5) fields 16 and 17). */
export function reapedChildrenCpuMs(pid = process.pid): number {
  const { fields } = procStat(pid);
  return (Number(fields[13]) + Number(fields[14])) * TICK_MS;
}

/** utime+stime in ms of a process and all its descendants (worker threads are in the process's own counters). */
export function treeCpuMs(pid: number): number {
  let total = 0;
  try {
    const { fields } = procStat(pid);
    total += (Number(fields[11]) + Number(fields[12])) * TICK_MS;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      for (const c of children ? children.split(' ') : []) total += treeCpuMs(Number(c));
    }
  } catch {
    // the process (or a child) is gone
  }
  return total;
}

/**
 * CPU ms of a whole PostgreSQL server so far: the postmaster's process tree ({@link treeCpuMs}: backends, checkpointer,
 * walwriter, ...) plus the postmaster's cutime+cstime (fields 16 and 17), the CPU of the children it has reaped, so a
 * backend that exits between two readings (pgbench's connections) still counts. The difference of two readings is
 * what the server used in between, for whichever database. Read while no child was reaped (cutime unchanged around
 * the tree walk), so an exiting backend is neither missed nor counted twice.
 */
export function postgresCpuMs(postmaster: number): number {
  for (let attempt = 0; ; attempt++) {
    const before = reapedChildrenCpuMs(postmaster);
    const tree = treeCpuMs(postmaster);
    const after = reapedChildrenCpuMs(postmaster);
    if (before === after || attempt === 4) return tree + after;
  }
}

/**
 * The postmaster of a PostgreSQL backend (`SELECT pg_backend_pid()`): its parent. Undefined when the pid is not a
 * postgres process here (e.g. a server in a container, another pid namespace), so the DB CPU is then not measured.
 */
export function postmasterOf(backendPid: number): number | undefined {
  try {
    const backend = procStat(backendPid);
    const ppid = Number(backend.fields[1]);
    return backend.comm === 'postgres' && procStat(ppid).comm === 'postgres' ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/** What this machine could reach at most for one ratio target, from CPU per request measured in the same run. */
export interface MachineCeiling {
  /** The yardstick's rate (requests/s) the target is a fraction of. */
  yardstickPerSecond: number;
  /** CPU ms per request the ceiling counts, by part. */
  parts: Record<string, number>;
  /** The rate at which all cores would be busy with `parts`: cores x 1000 / their sum (requests/s). */
  perSecond: number;
  /** perSecond / yardstickPerSecond: the highest ratio this machine allows. */
  ratio: number;
  /** The same with the API's own measured CPU per request of the cell instead of its floor parts (for reference). */
  measured: { parts: Record<string, number>; perSecond: number; ratio: number };
  /**
   * The higher of the two ratios: the ceiling a verdict may use. The floor parts are estimates (p11speed's rate can
   * overstate the HSM's CPU per signature), so "bound by this machine" needs both below the target.
   */
  upperRatio: number;
}

const ceilingOf = (cores: number, yardstickPerSecond: number | undefined, parts: Record<string, number | undefined>, measuredParts: Record<string, number | undefined>): MachineCeiling | undefined => {
  const all = [...Object.values(parts), ...Object.values(measuredParts)];
  if (!(cores > 0) || !(yardstickPerSecond !== undefined && yardstickPerSecond > 0) || all.some((v) => v === undefined || !Number.isFinite(v) || v < 0)) return undefined;
  const rate = (p: Record<string, number | undefined>) => (cores * 1000) / Object.values(p).reduce<number>((a, b) => a + (b as number), 0);
  const perSecond = rate(parts);
  const measuredPerSecond = rate(measuredParts);
  return {
    yardstickPerSecond,
    parts: parts as Record<string, number>,
    perSecond,
    ratio: perSecond / yardstickPerSecond,
    measured: { parts: measuredParts as Record<string, number>, perSecond: measuredPerSecond, ratio: measuredPerSecond / yardstickPerSecond },
    upperRatio: Math.max(perSecond, measuredPerSecond) / yardstickPerSecond,
  };
};

/**
 * The same-run ceilings of the two targets the machine may bind (issue 20), from the best round of each cell by plan
 * key (scripts/bench/run.ts); a ceiling is missing when one of its cells was not run.
 * - RSA-3072 sign orders / p11speed RSA-3072 with all threads: an order costs at least one signature (HSM CPU: 1000 /
 *   the p11speed 1-thread rate, one thread keeping one core busy), what a P-256 order costs the API besides its
 *   signature (the one-operation c=32 cell), and the PostgreSQL CPU per RSA order.
 * - Device certificates / cfssl serve: a certificate costs at least the API's authenticated floor (GET /api/v1/me:
 *   token and subject, no work) and the PostgreSQL CPU per certificate.
 * Both also count the load generator's CPU per request of our cell (wrk on the same cores): p11speed needs none, and
 * cfssl's rate was reached with wrk on the machine too.
 */
export function machineCeilings(cells: Partial<Record<string, Cell>>, cores: number): { rsa?: MachineCeiling; certs?: MachineCeiling } {
  const { rsaRaw1, rsaRaw, ecOne, rsa, me, certs, cfssl } = cells;
  return {
    rsa: ceilingOf(
      cores,
      rsaRaw?.perSecond,
      { hsmPerSignature: rsaRaw1 ? 1000 / rsaRaw1.perSecond : undefined, apiPerP256Order: ecOne?.cpuMsPerRequest, dbPerRsaOrder: rsa?.dbCpuMsPerRequest, loadPerRsaOrder: rsa?.loadCpuMsPerRequest },
      { apiPerRsaOrder: rsa?.cpuMsPerRequest, dbPerRsaOrder: rsa?.dbCpuMsPerRequest, loadPerRsaOrder: rsa?.loadCpuMsPerRequest },
    ),
    certs: ceilingOf(
      cores,
      cfssl?.perSecond,
      { apiPerMeRequest: me?.cpuMsPerRequest, dbPerCertificate: certs?.dbCpuMsPerRequest, loadPerCertificate: certs?.loadCpuMsPerRequest },
      { apiPerCertificate: certs?.cpuMsPerRequest, dbPerCertificate: certs?.dbCpuMsPerRequest, loadPerCertificate: certs?.loadCpuMsPerRequest },
    ),
  };
}

/**
 * The verdict of a ratio target (value >= target) that the machine may bind: met; not met; or not met and bound by
 * this machine, when the same run's machine ceiling of that ratio ({@link MachineCeiling.ratio}) is below the target.
 */
export function boundVerdict(value: number, target: number, ceilingRatio?: number): string {
  if (value >= target) return 'met';
  if (ceilingRatio !== undefined && Number.isFinite(ceilingRatio) && ceilingRatio < target) {
    // Two decimals as in the table; three, rounded down, when two would round up to the target itself.
    const shown = Number(ceilingRatio.toFixed(2)) < target ? ceilingRatio.toFixed(2) : (Math.floor(ceilingRatio * 1000) / 1000).toFixed(3);
    return `**not met**; bound by this machine (ceiling ${shown} < ${target})`;
  }
  return '**not met**';
}

/** A bare node:http server answering a constant: the HTTP limit of Node on this machine. */
export function startBareServer(port: number): ChildProcess {
  const src = `const s = require('node:http').createServer((q, r) => { r.setHeader('content-type', 'application/json'); r.end('{"status":"ok"}'); }); s.keepAliveTimeout = 65000; s.listen(${port}, '127.0.0.1');`;
  return spawn(process.execPath, ['-e', src], { stdio: 'ignore' });
}

/** `cfssl serve` with a software P-256 CA made by openssl: a peer CA with no authentication, database or HSM. */
export function startCfssl(dir: string, port: number): ChildProcess {
  const key = join(dir, 'cfssl-ca-key.pem');
  const cert = join(dir, 'cfssl-ca.pem');
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key], { stdio: 'pipe' });
  execFileSync('openssl', ['req', '-new', '-x509', '-key', key, '-out', cert, '-days', '30', '-subj', '/CN=Bench peer CA'], { stdio: 'pipe' });
  return spawn('cfssl', ['serve', '-address', '127.0.0.1', '-port', String(port), '-ca', cert, '-ca-key', key, '-loglevel', '3'], { stdio: 'ignore' });
}

export async function waitFor(url: string, init?: RequestInit, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url, init);
      if (r.status < 500) return;
    } catch {
      // not up yet
    }
    if (Date.now() > end) throw new Error(`${url} did not come up`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const PGBENCH = process.env['PGBENCH'] ?? '/usr/lib/postgresql/15/bin/pgbench';

/**
 * pgbench with a custom script, `clients` connections, prepared statements, `seconds`. One script run = one
 * pgbench "transaction" (here: the reservation statement and the finish statement of one sign order).
 */
export function pgbench(url: string, scripts: string[], clients: number, seconds: number): Omit<Cell, 'name'> {
  const args = ['-n', '-M', 'prepared', '-c', String(clients), '-j', '1', '-T', String(seconds), '-r', ...scripts.flatMap((s) => ['-f', s]), url];
  const out = execFileSync(PGBENCH, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20 });
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
  const n = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
  const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
  const lat = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
  if (!Number.isFinite(tps) || !n) throw new Error(`pgbench: no rate in its output:\n${out}`);
  return { requests: n, errors: failed, perSecond: tps, p50ms: NaN, p99ms: NaN, note: `latency average ${lat} ms` };
}

/** The q-quantile of ascending `sorted` (NaN when empty). */
export const pct = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);

/**
 * pgbench at a fixed arrival rate (`-R`, Poisson arrivals as pgbench schedules them), one per-transaction log: the
 * database's own latency distribution for the same SQL at the rate of the fixed-rate cell. Latency counts from each
 * transaction's scheduled start (pgbench includes its schedule lag), like the cell's from the due time.
 */
export function pgbenchAtRate(url: string, scripts: string[], clients: number, seconds: number, rate: number): Omit<Cell, 'name'> & { over25: number } {
  const dir = mkdtempSync(join(tmpdir(), 'ks-pgbench-'));
  try {
    const args = ['-n', '-M', 'prepared', '-c', String(clients), '-j', '1', '-T', String(seconds), '-R', String(rate), '--log', `--log-prefix=${join(dir, 'tx')}`, ...scripts.flatMap((s) => ['-f', s]), url];
    execFileSync(PGBENCH, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20 });
    // One line per transaction: client, transaction number, latency in µs, script, epoch s, µs, schedule lag in µs.
    const lat = readdirSync(dir)
      .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n'))
      .filter(Boolean)
      .map((l) => Number(l.split(' ')[2]) / 1000)
      .sort((a, b) => a - b);
    if (!lat.length) throw new Error('pgbench -R: no transaction logged');
    return { requests: lat.length, errors: 0, perSecond: lat.length / seconds, p50ms: pct(lat, 0.5), p99ms: pct(lat, 0.99), over25: lat.filter((ms) => ms > 25).length };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** p11speed (scripts/bench/p11speed.c): raw C_SignInit+C_Sign per second of one token key from C. */
export function p11speed(bin: string, env: NodeJS.ProcessEnv, args: { module: string; token: string; pin: string; keyIdHex: string; mech: 'ecdsa' | 'rsa'; inputLen: number; seconds: number; threads: number }): number {
  const out = execFileSync(bin, [args.module, args.token, args.pin, args.keyIdHex, args.mech, String(args.inputLen), String(args.seconds), String(args.threads)], { env });
  return Number(out.toString().trim().split('\n')[0]);
}

/** PostgreSQL's WAL flushes (fdatasync) in a window, as the kernel saw them: every durable commit waits for one. */
export interface FlushStalls {
  n: number;
  p50ms: number;
  p99ms: number;
  maxMs: number;
  over25: number;
  /** The longest, with when they began (ms into the window). */
  longest: { atMs: number; ms: number }[];
}

/**
 * The durations of PostgreSQL's fdatasync calls from `perf script -F comm,tid,time,event` of the syscall tracepoints
 * recorded with `-k mono`, those that began in [fromWall, toWall]; `wallMinusMonoMs` converts perf's monotonic
 * seconds to the wall clock. Calls are paired per thread: an exit without its entry (the recording began inside
 * the call) is dropped.
 */
export function flushStalls(perfScript: string, wallMinusMonoMs: number, fromWall: number, toWall: number): FlushStalls {
  const began = new Map<string, number>();
  const calls: { atMs: number; ms: number }[] = [];
  for (const line of perfScript.split('\n')) {
    const m = /^\s*(\S+)\s+(\d+)\s+([\d.]+):\s+syscalls:sys_(enter|exit)_fdatasync\b/.exec(line);
    if (!m || m[1] !== 'postgres') continue;
    const ms = Number(m[3]) * 1000;
    if (m[4] === 'enter') began.set(m[2], ms);
    else {
      const from = began.get(m[2]);
      began.delete(m[2]);
      const wall = from === undefined ? NaN : from + wallMinusMonoMs;
      if (from !== undefined && wall >= fromWall && wall <= toWall) calls.push({ atMs: Math.round(wall - fromWall), ms: Math.round((ms - from) * 100) / 100 });
    }
  }
  const sorted = calls.map((c) => c.ms).sort((a, b) => a - b);
  return {
    n: calls.length,
    p50ms: pct(sorted, 0.5),
    p99ms: pct(sorted, 0.99),
    maxMs: sorted.length ? sorted[sorted.length - 1] : NaN,
    over25: sorted.filter((x) => x >= 25).length,
    longest: [...calls].sort((a, b) => b.ms - a.ms).slice(0, 3),
  };
}

/**
 * Records every fdatasync of the machine with `perf record` (syscall tracepoints; root and tracefs needed) until
 * `stop()`, which returns PostgreSQL's in [fromWall, toWall], or undefined where perf cannot record them.
 */
export function traceFlushes(dir: string): { stop: (fromWall: number, toWall: number) => Promise<FlushStalls | undefined> } {
  const file = join(dir, 'flushes.data');
  const wallMinusMonoMs = Date.now() - Number(process.hrtime.bigint()) / 1e6;
  let perf: ChildProcess | undefined;
  try {
    perf = spawn('perf', ['record', '-q', '-k', 'mono', '-a', '-o', file, '-e', 'syscalls:sys_enter_fdatasync', '-e', 'syscalls:sys_exit_fdatasync'], { stdio: 'ignore' });
    perf.on('error', () => (perf = undefined));
  } catch {
    perf = undefined;
  }
  return {
    stop: async (fromWall, toWall) => {
      const p = perf;
      if (!p || p.exitCode !== null) return undefined;
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGINT');
      await exited;
      try {
        const out = execFileSync('perf', ['script', '-i', file, '-F', 'comm,tid,time,event'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 << 20 });
        return flushStalls(out, wallMinusMonoMs, fromWall, toWall);
      } catch {
        return undefined;
      }
    },
  };
}
