import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@keyserver/testing';

// scripts/ is no Nx project: its modules are loaded by path (jest transforms them like any test source).
const root = join(__dirname, '../../..');
const { boundVerdict, flushStalls, machineCeilings, postgresCpuMs, postmasterOf, startBareServer, treeCpuMs, waitFor, wrk, wrkScript } = require(join(root, 'scripts/bench/yardsticks')) as typeof import('../../../scripts/bench/yardsticks');
const { summarizeProfile } = require(join(root, 'scripts/bench/profile')) as typeof import('../../../scripts/bench/profile');

// A smoke test of `npm run bench`'s own tools (the full bench is not part of npm test): the Lua scripts it writes
// for wrk, the summary it reads back from wrk, the CPU it reads from /proc, the profile summary, and the machine
// ceilings and verdicts of the targets the cores may bind.
describe('bench tools', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ks-bench-smoke-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('drives a bare node:http server with wrk and reads its summary back, rotating several requests', async () => {
    const port = await freePort();
    const server = startBareServer(port);
    try {
      await waitFor(`http://127.0.0.1:${port}/`);
      const bodies = ['{"a":"]]"}', '{"b":"[==[ :name ]==]"}'];
      const script = wrkScript(
        dir,
        'smoke',
        bodies.map((body) => ({ method: 'POST', path: '/x', headers: { 'content-type': 'application/json', authorization: 'Bearer a.b.c' }, body })),
      );
      const cpu0 = treeCpuMs(server.pid as number);
      const cell = await wrk(`http://127.0.0.1:${port}`, script, 2, 1);
      expect(cell.requests).toBeGreaterThan(10);
      expect(cell.errors).toBe(0);
      expect(cell.perSecond).toBeGreaterThan(0);
      expect(cell.p50ms).toBeGreaterThan(0);
      expect(cell.p99ms).toBeGreaterThanOrEqual(cell.p50ms);
      expect(treeCpuMs(server.pid as number)).toBeGreaterThan(cpu0);
      // wrk's own CPU, read from this process's reaped children once it exited.
      expect(cell.loadCpuMsPerRequest).toBeGreaterThan(0);
    } finally {
      server.kill('SIGTERM');
    }
  });

  it('summarizes a CPU profile by self and inclusive time, only inside the window', () => {
    // root -> a (node_modules/pg) -> b (dist bundle); samples: b, b, a, idle; then one b outside the window.
    const profile = {
      nodes: [
        { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: 0 }, children: [2, 4] },
        { id: 2, callFrame: { functionName: 'query', url: 'file:///r/node_modules/pg/lib/client.js', lineNumber: 9 }, children: [3] },
        { id: 3, callFrame: { functionName: 'finish', url: 'file:///r/dist/apps/keyserver-api/main.js', lineNumber: 99 } },
        { id: 4, callFrame: { functionName: '(idle)', url: '', lineNumber: 0 } },
      ],
      samples: [3, 3, 2, 4, 3],
      timeDeltas: [1000, 1000, 1000, 1000, 1000],
      startTime: 0,
      endTime: 6000,
    };
    const s = summarizeProfile(profile, 10, { fromEndUs: 5500, toEndUs: 1500 });
    expect(s.busyMs).toBe(3);
    expect(s.self.map((r) => [r.frame, r.ms])).toEqual([
      ['finish dist/apps/keyserver-api/main.js:100', 2],
      ['query pg/lib/client.js:10', 1],
    ]);
    expect(s.inclusive.find((r) => r.frame.startsWith('query'))?.ms).toBe(3);
    expect(s.byPackage.map((r) => r.frame).sort()).toEqual(['keyserver (dist bundle)', 'pg']);
  });

  it('counts the CPU of children a server has reaped (postgresCpuMs: tree + cutime/cstime), not only the live tree', async () => {
    // A parent that runs a child burning 300 ms of CPU to its end (spawnSync reaps it), then waits: like pgbench's
    // backends. Counted in CPU time, not wall time: on a loaded machine 300 ms of wall time got ~190 ms of CPU.
    const burn = `while ((({ user, system }) => user + system)(process.cpuUsage()) < 300_000);`;
    const parent = spawn(process.execPath, ['-e', `require('node:child_process').spawnSync(process.execPath, ['-e', ${JSON.stringify(burn)}]); console.log('reaped'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve) => parent.stdout?.once('data', () => resolve()));
      const pid = parent.pid as number;
      expect(postgresCpuMs(pid) - treeCpuMs(pid)).toBeGreaterThanOrEqual(200);
      // Not a postgres process: no postmaster (the bench then reports no DB CPU).
      expect(postmasterOf(pid)).toBeUndefined();
    } finally {
      parent.kill('SIGTERM');
    }
  });

  const cell = (perSecond: number, cpuMsPerRequest?: number, dbCpuMsPerRequest?: number, loadCpuMsPerRequest?: number) => ({ name: 'x', requests: 1, errors: 0, perSecond, p50ms: NaN, p99ms: NaN, cpuMsPerRequest, dbCpuMsPerRequest, loadCpuMsPerRequest });

  it('computes the machine ceilings from the cells of the run, or none when a cell is missing', () => {
    const cells = {
      rsaRaw1: cell(500), // 2 ms of HSM CPU per signature
      rsaRaw: cell(800),
      ecOne: cell(800, 0.6),
      rsa: cell(400, 2.7, 0.3, 0.1),
      me: cell(15000, 0.1),
      certs: cell(500, 1.3, 0.3, 0.1),
      cfssl: cell(6000, 0.25),
    };
    const c = machineCeilings(cells, 2);
    expect(c.rsa?.parts).toEqual({ hsmPerSignature: 2, apiPerP256Order: 0.6, dbPerRsaOrder: 0.3, loadPerRsaOrder: 0.1 });
    expect(c.rsa?.perSecond).toBeCloseTo(2000 / 3);
    expect(c.rsa?.ratio).toBeCloseTo(2000 / 3 / 800);
    expect(c.rsa?.measured.perSecond).toBeCloseTo(2000 / 3.1);
    expect(c.certs?.parts).toEqual({ apiPerMeRequest: 0.1, dbPerCertificate: 0.3, loadPerCertificate: 0.1 });
    expect(c.certs?.perSecond).toBeCloseTo(4000);
    expect(c.certs?.ratio).toBeCloseTo(4000 / 6000);
    expect(c.certs?.measured.ratio).toBeCloseTo(2000 / 1.7 / 6000);
    // The verdict's ceiling is the higher of the two: floor parts can cost more than the API measured.
    expect(c.rsa?.upperRatio).toBeCloseTo(2000 / 3 / 800);
    expect(machineCeilings({ ...cells, rsa: cell(400, 2.2, 0.3, 0.1) }, 2).rsa?.upperRatio).toBeCloseTo(2000 / 2.6 / 800);
    // A partial run without p11speed's 1-thread cell, a DB CPU that could not be measured (NaN), a cell without wrk's
    // CPU: no ceiling.
    expect(machineCeilings({ ...cells, rsaRaw1: undefined }, 2).rsa).toBeUndefined();
    expect(machineCeilings({ ...cells, certs: cell(500, 1.3, NaN, 0.1) }, 2).certs).toBeUndefined();
    expect(machineCeilings({ ...cells, rsa: cell(400, 2.7, 0.3) }, 2).rsa).toBeUndefined();
  });

  it.each([
    ['ok met at the target, whatever the ceiling', 0.8, 0.8, 0.5, 'met'],
    ['ok met without a ceiling', 0.3, 0.25, undefined, 'met'],
    ['fail bound by this machine', 0.56, 0.8, 0.714, '**not met**; bound by this machine (ceiling 0.71 < 0.8)'],
    ['fail bound, rounded as in the table', 0.09, 0.25, 0.2255, '**not met**; bound by this machine (ceiling 0.23 < 0.25)'],
    ['fail bound, a ceiling just below the target is not rounded up to it', 0.56, 0.8, 0.7996, '**not met**; bound by this machine (ceiling 0.799 < 0.8)'],
    ['fail the ceiling is above the target: not the machine', 0.1, 0.25, 0.57, '**not met**'],
    ['fail the ceiling equals the target', 0.1, 0.25, 0.25, '**not met**'],
    ['fail no ceiling (its cells did not run)', 0.1, 0.25, undefined, '**not met**'],
    ['fail no ceiling (DB CPU not measured)', 0.1, 0.25, NaN, '**not met**'],
  ])('%s', (_name, value, target, ceiling, expected) => {
    expect(boundVerdict(value, target, ceiling)).toBe(expected);
  });

  it('times PostgreSQL\'s fdatasync calls from perf\'s syscall records, per thread, only those begun in the window', () => {
    // perf script -F comm,tid,time,event of a recording with -k mono; wall = mono + 1000 ms here.
    const script = [
      '        postgres  4242  9.000000: syscalls:sys_exit_fdatasync: 0x0', // entry before the recording: dropped
      '        postgres  4242  10.000000: syscalls:sys_enter_fdatasync: fd: 0x00000003',
      '        postgres  4343  10.001000: syscalls:sys_enter_fdatasync: fd: 0x00000004',
      '        postgres  4343  10.001500: syscalls:sys_exit_fdatasync: 0x0',
      '              dd  5000  10.002000: syscalls:sys_enter_fdatasync: fd: 0x00000001', // not PostgreSQL
      '              dd  5000  10.900000: syscalls:sys_exit_fdatasync: 0x0',
      '        postgres  4242  10.040000: syscalls:sys_exit_fdatasync: 0x0',
      '        postgres  4242  12.500000: syscalls:sys_enter_fdatasync: fd: 0x00000003', // begun after the window
      '        postgres  4242  12.600000: syscalls:sys_exit_fdatasync: 0x0',
    ].join('\n');
    const f = flushStalls(script, 1000, 11_000, 12_000);
    expect(f).toEqual({ n: 2, p50ms: 40, p99ms: 40, maxMs: 40, over25: 1, longest: [{ atMs: 0, ms: 40 }, { atMs: 1, ms: 0.5 }] });
    expect(flushStalls('', 0, 0, 1).n).toBe(0);
  });
});
