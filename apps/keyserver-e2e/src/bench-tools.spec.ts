import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@keyserver/testing';

// scripts/ is no Nx project: its modules are loaded by path (jest transforms them like any test source).
const root = join(__dirname, '../../..');
const { startBareServer, treeCpuMs, waitFor, wrk, wrkScript } = require(join(root, 'scripts/bench/yardsticks')) as typeof import('../../../scripts/bench/yardsticks');
const { summarizeProfile } = require(join(root, 'scripts/bench/profile')) as typeof import('../../../scripts/bench/profile');

// A smoke test of `npm run bench`'s own tools (the full bench is not part of npm test): the Lua scripts it writes
// for wrk, the summary it reads back from wrk, the CPU it reads from /proc, and the profile summary.
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
});
