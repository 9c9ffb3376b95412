#!/usr/bin/env node
// End-to-end throughput of the Keyserver, every HTTP cell driven by wrk, each next to a yardstick measured in the
// same run with a tool we did not write: a bare node:http server, pgbench running the sign order's SQL, p11speed (C)
// on the same SoftHSM token, `cfssl serve` as a peer CA, sha256sum.
// Usage: npm run bench  (or: node scripts/bench.mjs [--seconds 4] [--rounds 2] [--firmware-mib 256] [--out docs/benchmarks.json])
//        node scripts/bench.mjs --cells rsaRaw,rsa,ecOne,half [--firmware-mib 0] --out FILE: only those cells (keys in
//        scripts/bench/run.ts); writes FILE and prints the cells and ratios, leaves docs/benchmarks.md alone;
//        --half-rate N offers the fixed-arrival cell N orders/s instead of half the measured peak
//        --db-tcp: the API and pgbench reach PostgreSQL over TCP 127.0.0.1 instead of its Unix socket
//        node scripts/bench.mjs --profile [--seconds 10] [--profile-cell signorders|certificates|healthz|me] [--cpuprofile FILE]:
//        CPU profile of one API under wrk (P-256 sign orders at c=32, or device certificates at c=8)
// Needs the built apps (npm run build) and PostgreSQL on 127.0.0.1:5432. Offline: esbuild bundles
// scripts/bench/run.ts (TypeScript, tsconfig paths) into a temp CommonJS file; gcc builds the C baseline.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTsBench } from './bench/load-ts.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const PROFILE = process.argv.includes('--profile');
const CELLS = arg('cells', undefined)?.split(',').map((x) => x.trim()).filter(Boolean);
const SECONDS = Number(arg('seconds', PROFILE ? 10 : 4));
const ROUNDS = Number(arg('rounds', 2));
const FIRMWARE_MIB = Number(arg('firmware-mib', 256));
const OUT_JSON = resolve(root, arg('out', PROFILE ? 'docs/benchmarks-profile.json' : 'docs/benchmarks.json'));
const OUT_MD = resolve(root, arg("md", "docs/benchmarks.md"));

// A co-located PostgreSQL is reached through its Unix socket, by the API and pgbench alike (docs/scaling.md);
// --db-tcp measures over TCP on 127.0.0.1 instead.
const SOCKET_DIR = '/var/run/postgresql';
const DB_SOCKET = !process.argv.includes('--db-tcp') && existsSync(join(SOCKET_DIR, '.s.PGSQL.5432')) ? SOCKET_DIR : undefined;

const machine = {
  date: new Date().toISOString(),
  command: `node scripts/bench.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  memoryGiB: Number((totalmem() / 1024 ** 3).toFixed(1)),
  loadAverageAtStart: loadavg().map((l) => Number(l.toFixed(2))),
  node: process.version,
  database: DB_SOCKET ? `PostgreSQL 15 on this machine, through its Unix socket (${DB_SOCKET})` : 'PostgreSQL 15 on this machine, TCP 127.0.0.1:5432',
};
console.log(`machine: ${JSON.stringify(machine)}`);

const work = mkdtempSync(join(tmpdir(), 'ks-bench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

const p11speed = join(work, 'p11speed');
execFileSync('gcc', ['-O2', '-o', p11speed, join(root, 'scripts/bench/p11speed.c'), '-I', join(root, 'node_modules/pkcs11js/includes'), '-ldl', '-lpthread'], { stdio: 'pipe' });

const { runBench, boundVerdict } = await loadTsBench(root, 'scripts/bench/run.ts', work);

const started = performance.now();
const loadSamples = [];
const loadTimer = setInterval(() => loadSamples.push(loadavg()[0]), 5000);
const r = await runBench({ gcObserver: join(root, 'scripts/bench/gc-observer.cjs'), fixedRateClient: join(root, 'scripts/bench/fixed-rate-client.cjs'), databaseSocketDir: DB_SOCKET, seconds: SECONDS, rounds: ROUNDS, firmwareMib: PROFILE ? 0 : FIRMWARE_MIB, p11speed, cells: CELLS, halfRate: arg('half-rate', undefined) ? Number(arg('half-rate', undefined)) : undefined, profile: PROFILE ? { seconds: SECONDS, keep: resolve(arg('cpuprofile', join(tmpdir(), 'keyserver-api.cpuprofile'))), target: arg('profile-cell', 'signorders') } : undefined }, (m) => console.log(m));
clearInterval(loadTimer);
const totalSeconds = (performance.now() - started) / 1000;
machine.loadAverageAtEnd = loadavg().map((l) => Number(l.toFixed(2)));
machine.loadAverage1mMeanDuringRun = loadSamples.length ? Number((loadSamples.reduce((a, b) => a + b, 0) / loadSamples.length).toFixed(2)) : null;

const f1 = (n) => (Number.isFinite(n) ? n.toFixed(1) : 'n/a');
const f2 = (n) => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');
const f3 = (n) => (Number.isFinite(n) ? n.toFixed(3) : 'n/a');

if (PROFILE) {
  const pr = r.profile;
  const table = (title, rows) => [`| ${title} | ms | % of busy |`, '| --- | ---: | ---: |', ...rows.map((x) => `| \`${x.frame.replace(/\|/g, '\\|')}\` | ${x.ms} | ${x.percent} |`)].join('\n');
  const cell = Object.values(r.cells)[0];
  const md = [
    `CPU profile: \`${machine.command}\` (${machine.date}, load average ${machine.loadAverageAtStart.join(' / ')})`,
    `${cell.name}: ${f1(cell.perSecond)}/s, p50 ${f1(cell.p50ms)} ms, p99 ${f1(cell.p99ms)} ms, API CPU ${f3(cell.cpuMsPerRequest)} ms/order, ${f2(cell.dbTransactionsPerRequest)} DB transactions/order, DB CPU ${f3(cell.dbCpuMsPerRequest)} ms/order; profile: ${pr.busyMs} ms busy of ${pr.totalMs} ms sampled`,
    '',
    table('self time by package', pr.byPackage.slice(0, 15)),
    '',
    table('top self-time frames', pr.self.slice(0, 20)),
    '',
    table('top inclusive frames', pr.inclusive.slice(0, 25)),
  ].join('\n');
  writeFileSync(OUT_JSON, JSON.stringify({ machine, cell, profile: pr }, null, 2) + '\n');
  console.log(`\n${md}\n\nwrote ${OUT_JSON}; raw profile: ${resolve(arg('cpuprofile', join(tmpdir(), 'keyserver-api.cpuprofile')))}`);
  process.exit(0);
}

/** The fixed-rate cell's tail: p99 per second, the client's own lateness, the slowest answers and when they were due. */
const gcPart = (a) => (a ? `; the API meanwhile: ${a.minor.count} scavenges >= 1 ms (longest ${a.minor.maxMs} ms, ${a.minor.totalMs} ms in all), ${a.major.count} mark-compact pauses >= 1 ms (longest ${a.major.maxMs} ms), event loop delayed up to ${a.loopMaxMs} ms` : '');
const pgPart = (d) => (d ? `; pgbench -R ${f1(d.perSecond)}/s, same SQL: p50 ${f1(d.p50ms)} p99 ${f1(d.p99ms)} ms, ${d.over25} of ${d.n} over 25 ms` : '');
const serverPart = (s) =>
  s ? `; over 25 ms as the API measured them: ${Object.entries(s).map(([k, v]) => `${k} ${v.over} of ${v.n}`).join(', ')}` : '';
const flushPart = (f) =>
  f ? `; PostgreSQL's WAL flushes meanwhile (fdatasync, perf): ${f.n}, p50 ${f1(f.p50ms)} p99 ${f1(f.p99ms)} ms, ${f.over25} over 25 ms, longest ${f.longest.map((x) => `${f1(x.ms)} ms at ${x.atMs} ms`).join(', ') || 'none'}` : '';
const tailLine = (x) => (x.tail ? `p99 of the uncounted warm-up ${x.tail.warmupP99Ms} ms; p99 per counted second ${x.tail.p99PerSecondMs.join(' / ')} ms; client lag p99 ${x.tail.clientLagP99Ms} ms; slowest ${x.tail.slowest.slice(0, 5).map((s) => `${s.ms} ms at ${s.atMs} ms`).join(', ')}${gcPart(x.tail.api)}${serverPart(x.tail.server)}${flushPart(x.tail.flushes)}${pgPart(x.tail.pgbench)}` : '');

/** A same-run machine ceiling (yardsticks.ts machineCeilings) in words: its parts, its rate, its ratio. */
const PART_NAMES = {
  hsmPerSignature: 'HSM CPU per RSA-3072 signature (1000 / p11speed 1-thread rate)',
  apiPerP256Order: 'API CPU per P-256 order (c=32, one operation)',
  apiPerRsaOrder: 'API CPU per RSA-3072 order',
  dbPerRsaOrder: 'PostgreSQL CPU per RSA-3072 order',
  apiPerMeRequest: 'API CPU per GET /api/v1/me',
  apiPerCertificate: 'API CPU per certificate',
  dbPerCertificate: 'PostgreSQL CPU per certificate',
  loadPerRsaOrder: 'wrk CPU per RSA-3072 order',
  loadPerCertificate: 'wrk CPU per certificate',
};
const partsText = (parts) => Object.entries(parts).map(([k, v]) => `${PART_NAMES[k] ?? k} ${f3(v)}`).join(' + ');
const ceilingText = (x) =>
  x ? `${partsText(x.parts)} = ${f3(Object.values(x.parts).reduce((a, b) => a + b, 0))} ms -> ${f1(x.perSecond)}/s, ${f2(x.ratio)} of the yardstick's ${f1(x.yardstickPerSecond)}/s; with the API's measured CPU: ${partsText(x.measured.parts)} -> ${f1(x.measured.perSecond)}/s, ${f2(x.measured.ratio)}` : 'n/a (a cell it needs did not run)';

if (CELLS) {
  // A partial run: the cells, the ratios that can be formed from them, and the JSON; the generated doc stays as is.
  const c = r.cells;
  const line = (x) => `${x.name}: ${f1(x.perSecond)}/s p50 ${f1(x.p50ms)} p99 ${f1(x.p99ms)} errors ${x.errors}${x.cpuMsPerRequest !== undefined ? ` CPU ${f3(x.cpuMsPerRequest)} ms/req` : ''}${x.dbTransactionsPerRequest !== undefined ? ` DB ${f2(x.dbTransactionsPerRequest)} tx/req` : ''}${x.dbCpuMsPerRequest !== undefined ? ` DB CPU ${f3(x.dbCpuMsPerRequest)} ms/req` : ''}${x.loadCpuMsPerRequest !== undefined ? ` wrk CPU ${f3(x.loadCpuMsPerRequest)} ms/req` : ''}`;
  console.log(`\nload average ${machine.loadAverageAtStart[0]} at start, ${machine.loadAverage1mMeanDuringRun} mean, ${machine.loadAverageAtEnd[0]} at end`);
  for (const x of Object.values(c)) console.log(line(x));
  for (const [i, round] of r.rounds.entries()) console.log(`round ${i + 1}: ${round.map((x) => `${x.name.split(',')[0]} ${f1(x.perSecond)}/s ${f3(x.cpuMsPerRequest)} ms`).join('; ')}`);
  const rsaRaw = Object.values(c).find((x) => /^p11speed RSA-3072, \d+ threads$/.test(x.name));
  if (rsaRaw && c['RSA-3072 sign orders, c=32']) {
    const v = c['RSA-3072 sign orders, c=32'].perSecond / rsaRaw.perSecond;
    console.log(`RSA-3072 orders / raw ${rsaRaw.name}: ${f2(v)} (target >= 0.8): ${boundVerdict(v, 0.8, r.ceilings?.rsa?.upperRatio)}`);
  }
  if (c['cfssl serve sign, P-256 CSR, c=8'] && c['device certificates, P-256 CSR, c=8']) {
    const v = c['device certificates, P-256 CSR, c=8'].perSecond / c['cfssl serve sign, P-256 CSR, c=8'].perSecond;
    console.log(`device certificates / cfssl serve: ${f2(v)} (target >= 0.25): ${boundVerdict(v, 0.25, r.ceilings?.certs?.upperRatio)}`);
  }
  console.log(`machine ceiling (${machine.cpus} cores = ${machine.cpus * 1000} ms CPU/s), RSA-3072 orders: ${ceilingText(r.ceilings?.rsa)}`);
  console.log(`machine ceiling, device certificates: ${ceilingText(r.ceilings?.certs)}`);
  if (r.halfRate) console.log(`half rate: ${line(r.halfRate)} (offered ${f1(r.halfRate.targetPerSecond)}/s; target p99 < 25)\n  ${tailLine(r.halfRate)}`);
  if (r.firmware) console.log(`firmware: ${JSON.stringify(r.firmware)} speed ratio ${f2(r.firmware.mbPerSecond / r.firmware.sha256sumMbPerSecond)} (target >= 0.8, RSS growth < 64 MiB)`);
  writeFileSync(OUT_JSON, JSON.stringify({ machine, totalSeconds, ...r }, null, 2) + '\n');
  console.log(`wrote ${OUT_JSON}`);
  process.exit(0);
}

const c = r.cells;
const y = {
  bare: c['bare node:http GET, c=8'],
  pgHot: c['pgbench sign-order SQL, 1 hot operation row, 8 clients'],
  pgEight: c['pgbench sign-order SQL, 8 operation rows, 8 clients'],
  ecRaw1: c['p11speed P-256, 1 thread'],
  ecRaw: Object.values(c).find((x) => /^p11speed P-256, \d+ threads$/.test(x.name)),
  rsaRaw1: c['p11speed RSA-3072, 1 thread'],
  rsaRaw: Object.values(c).find((x) => /^p11speed RSA-3072, \d+ threads$/.test(x.name)),
  cfssl: c['cfssl serve sign, P-256 CSR, c=8'],
};
const o = {
  healthz: c['GET /healthz, c=8'],
  me: c['GET /api/v1/me, c=8'],
  ecOne: c['P-256 sign orders, 1 operation, c=32'],
  ecEight: c['P-256 sign orders, 8 operations, c=32'],
  rsa: c['RSA-3072 sign orders, c=32'],
  certs: c['device certificates, P-256 CSR, c=8'],
  two: c['P-256 sign orders, 1 operation, c=32 over 2 replicas'],
};
// Each of our cells against the yardstick its target names (issue 20).
const against = new Map([
  [o.healthz.name, [y.bare, 0.5]],
  [o.me.name, [y.bare, 0.25]],
  [o.ecOne.name, [y.pgHot, 0.5]],
  [o.ecEight.name, [y.pgEight, 0.5]],
  [o.rsa.name, [y.rsaRaw, 0.8]],
  [o.certs.name, [y.cfssl, 0.25]],
  [o.two.name, [y.pgHot, undefined]],
]);
const ratio = (a, b) => a.perSecond / b.perSecond;
const verdict = (ok) => (ok ? 'met' : '**not met**');
const order = [y.bare, o.healthz, o.me, y.pgHot, o.ecOne, o.two, y.pgEight, o.ecEight, y.ecRaw1, y.ecRaw, y.rsaRaw1, y.rsaRaw, o.rsa, y.cfssl, o.certs];
const rows = order.map((x) => {
  const a = against.get(x.name);
  const ours = Boolean(a);
  const name = ours ? `**${x.name}**` : x.name;
  const rat = a ? `${f2(ratio(x, a[0]))} of ${a[0].name.split(',')[0]}` : 'yardstick';
  return `| ${name} | ${f1(x.perSecond)} | ${f1(x.p50ms)} | ${f1(x.p99ms)} | ${x.errors} | ${f3(x.cpuMsPerRequest)} | ${f2(x.dbTransactionsPerRequest)} | ${f3(x.dbCpuMsPerRequest)} | ${f3(x.loadCpuMsPerRequest)} | ${rat} |`;
});
// The two targets the machine may bind carry the same run's machine ceiling of their ratio (and the one with the API's measured CPU).
const ceilingCell = (x) => (x ? `${f2(x.ratio)} (${f2(x.measured.ratio)} with the API's measured CPU)` : 'n/a');
const targets = [
  ['P-256 sign orders, one operation, c=32 / pgbench hot row', ratio(o.ecOne, y.pgHot), '>= 0.5'],
  ['P-256 sign orders, 8 operations, c=32 / pgbench 8 rows', ratio(o.ecEight, y.pgEight), '>= 0.5'],
  [`RSA-3072 sign orders / raw ${y.rsaRaw.name.replace('p11speed RSA-3072, ', '')} HSM rate`, ratio(o.rsa, y.rsaRaw), '>= 0.8', 'rsa'],
  ['device certificates / P-256 sign orders (one operation)', ratio(o.certs, o.ecOne), '>= 0.5'],
  ['device certificates / cfssl serve', ratio(o.certs, y.cfssl), '>= 0.25', 'certs'],
  ['GET /healthz / bare node:http', ratio(o.healthz, y.bare), '>= 0.5'],
  ['GET /api/v1/me / bare node:http', ratio(o.me, y.bare), '>= 0.25'],
].map(([m, v, t, bound]) => {
  const target = Number(t.slice(3));
  const ceiling = bound ? r.ceilings?.[bound] : undefined;
  return bound ? `| ${m} | ${f2(v)} | ${t} | ${ceilingCell(ceiling)} | ${boundVerdict(v, target, ceiling?.upperRatio)} |` : `| ${m} | ${f2(v)} | ${t} | | ${verdict(v >= target)} |`;
});
const cpuEc = Math.min(o.ecOne.cpuMsPerRequest, o.ecEight.cpuMsPerRequest);
targets.push(`| API CPU per P-256 sign order (ms, best of the c=32 cells) | ${f3(cpuEc)} | <= 1.0 | | ${verdict(cpuEc <= 1.0)} |`);
const h = r.halfRate;
targets.push(`| p99 of P-256 sign orders at half the peak rate (${f1(h.targetPerSecond)}/s offered, ${f1(h.perSecond)}/s answered, ${h.errors} errors, after ${h.warmupSeconds} s of warm-up; ms) | ${f1(h.p99ms)} | < 25 | | ${verdict(h.p99ms < 25 && h.errors === 0)} |`);
const fw = r.firmware;
if (fw) {
  const fr = fw.mbPerSecond / fw.sha256sumMbPerSecond;
  targets.push(`| firmware ${fw.mib} MiB streamed to CMS: ${f1(fw.mbPerSecond)} MB/s / sha256sum ${f1(fw.sha256sumMbPerSecond)} MB/s | ${f2(fr)} | >= 0.8 | | ${verdict(fr >= 0.8)} |`);
  targets.push(`| API RSS growth during the upload (VmRSS ${f1(fw.rssBeforeMib)} -> peak ${f1(fw.rssPeakMib)} MiB; MiB) | ${f1(fw.rssGrowthMib)} | < 64 | | ${verdict(fw.rssGrowthMib < 64)} |`);
}
const roundsTable = r.rounds[0].map((cell) => {
  const all = r.rounds.map((round) => round.find((x) => x.name === cell.name));
  return `| ${cell.name} | ${all.map((x) => f1(x?.perSecond)).join(' / ')} | ${all.map((x) => f3(x?.cpuMsPerRequest)).join(' / ')} |`;
});
const result = { machine, totalSeconds, ...r };
writeFileSync(OUT_JSON, JSON.stringify(result, null, 2) + '\n');

const md = `# Benchmarks

End-to-end throughput of the Keyserver, each number next to a yardstick measured **in the same run** on the same
machine with a tool we did not write. Produced by \`npm run bench\` (\`node scripts/bench.mjs\`); options:
\`--seconds N\` per cell (default 4), \`--rounds N\` (default 2), \`--firmware-mib N\` (default 256; 0 skips it),
\`--out FILE\` for the JSON (default \`docs/benchmarks.json\`), \`--cells a,b\` for a partial run (keys in
\`scripts/bench/run.ts\`; prints, writes only the JSON), \`--half-rate N\` (the fixed arrival rate instead of half the peak); \`--db-tcp\` (the API and pgbench reach PostgreSQL over TCP instead of its Unix socket); \`--profile [--seconds 10]\` instead writes a CPU
profile summary of the API under wrk load (\`docs/benchmarks-profile.json\`). The script rewrites this file down to
the marker line (the findings below it are kept) and the JSON on every run. It needs \`npm run build\`, PostgreSQL
15 on 127.0.0.1:5432 and the Debian packages \`wrk\`, \`golang-cfssl\`, \`postgresql-15\` (pgbench, pg_dump), gcc;
\`linux-perf\` and root for the WAL flushes of the half-rate cell (n/a without them).

How it runs: \`scripts/bench.mjs\` bundles \`scripts/bench/run.ts\` with esbuild and builds the C baseline
\`scripts/bench/p11speed.c\` with gcc, then starts the real platform with \`startPlatform({ replicas: 2 })\` (built
apps from \`dist/\`, the docker-compose commands, a fresh database, a fresh SoftHSM token, the Entra emulator).
Every HTTP cell is **wrk** (C, \`-t1\`, keep-alive), authenticated with the demo CI client's token; yardsticks in the
same run: a **bare node:http** server answering a constant (the HTTP limit of Node here), **pgbench** (\`-M prepared\`,
8 clients) running one sign order's two statements - the API's own reservation statement and its finish statement
with the real \`keyserver_append_audit\` - on a pg_dump copy of the platform's database, on one hot operation row and
spread over 8, **p11speed** (C_SignInit+C_Sign from C, same token and keys), and **\`cfssl serve\`** (software P-256 CA,
no authentication, database or HSM) signing the same CSRs. Rounds interleave yardsticks and our cells (the order
flips every round); each cell keeps its best round. The Node client is used only for the streamed firmware upload
and for a fixed arrival rate (p99 at half the peak rate), which wrk cannot do; the latter runs in its own small
process on raw keep-alive sockets (\`scripts/bench/fixed-rate-client.cjs\`), next to the API's own latency histograms
(metrics are on in every cell, as in docker-compose.yml), PostgreSQL's own WAL flushes in the same window (every
\`fdatasync\` as the kernel saw it, \`perf record\` of the syscall tracepoints) and **pgbench -R** running the same SQL
at the same rate.
PostgreSQL's CPU is measured per cell like the API's: utime+stime from /proc of the whole server (the postmaster's
process tree - the postmaster is the parent of the bench's own backend - plus the postmaster's cutime+cstime, the
backends it reaped during the cell) over the cell, per request (pgbench: per transaction). The two targets the cores
may bind (RSA-3072 orders against p11speed, certificates against cfssl) get a same-run **machine ceiling** from these
measurements: the rate at which all cores (cores x 1000 ms of CPU per second) would be busy with the CPU a request
needs at least, over the yardstick's rate, computed from floor parts and from the API's measured CPU. Both count the
load generator's own CPU per request of our cell (wrk's user+system time, the bench's cutime+cstime once wrk is
reaped: p11speed needs no load generator, cfssl's rate was reached with wrk on the machine too); they leave out
everything else the machine runs, so each is an upper bound: a target above both cannot be met on this machine.

**Shared machine**: ${machine.cpus} cores that also run PostgreSQL, SoftHSM, both APIs, the emulator and the load
generator, and other engineers' builds and tests (1-minute load average ${machine.loadAverageAtStart[0]} at start,
${machine.loadAverage1mMeanDuringRun ?? 'n/a'} on average during the run, ${machine.loadAverageAtEnd[0]} at the end).
Absolute rates are noisy; the ratios of one run and the **API CPU ms per request** (CPU time of the API process tree
over the cell / answered requests) and the **DB CPU ms per request** (the same of the PostgreSQL server) are the
robust signals.

## Last run

- Date: ${machine.date}
- Command: \`${machine.command}\`, ${ROUNDS} round(s) of ${SECONDS} s per cell, ${Math.round(totalSeconds)} s in all
- Machine: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB memory, Node ${machine.node}; one API process per replica; ${machine.database}

### Cells (best round; ours in bold)

| cell | requests/s | p50 ms | p99 ms | errors | server CPU ms/request | DB transactions/request | DB CPU ms/request | wrk CPU ms/request | ratio |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
${rows.join('\n')}

Server CPU: the API process tree for our cells, the bare server and cfssl for theirs. DB transactions: change of
xact_commit + xact_rollback of the platform's database over the cell (every API statement is autocommit, so this is
statements per request); pgbench's own cells run exactly 2 statements per transaction by construction. DB CPU:
utime+stime of the whole PostgreSQL server (postmaster tree + the backends it reaped) over the cell / requests
(pgbench: transactions); it includes the server's background processes and anything else the server did meanwhile.
wrk CPU: the load generator's user+system time over the cell / requests (every wrk cell, yardsticks included).

### Targets (issue 20)

| measure | value | target | machine ceiling | |
| --- | ---: | ---: | ---: | --- |
${targets.join('\n')}

Machine ceiling: the rate at which the ${machine.cpus} cores (${machine.cpus * 1000} ms of CPU per second) would be fully busy
with this run's measured CPU per request (the load generator's included), over the yardstick's rate; it ignores
everything else the machine runs, so it is an upper bound. Each is computed twice, from floor parts and from the API's measured CPU; a target counts as bound
by this machine only when both are below it. RSA-3072 orders: ${ceilingText(r.ceilings?.rsa)}. Device certificates: ${ceilingText(r.ceilings?.certs)}.

Half-rate tail (the fixed-rate cell, counted after its warm-up): ${tailLine(h)}.

### Every round (requests/s; server CPU ms/request)

| cell | requests/s per round | CPU ms/request per round |
| --- | --- | --- |
${roundsTable.join('\n')}
`;
const MARKER = '<!-- end of generated part: text below this line is kept by npm run bench -->';
let kept = `${MARKER}\n`;
try {
  const old = readFileSync(OUT_MD, 'utf8');
  if (old.includes(MARKER)) kept = old.slice(old.indexOf(MARKER));
} catch {
  // first run: no file yet
}
writeFileSync(OUT_MD, `${md}\n${kept}`);
console.log(`wrote ${OUT_MD} and ${OUT_JSON} (${totalSeconds.toFixed(0)} s)`);
