// Run by edge/http-server.spec.ts in a process of its own (bundled with esbuild): the API's Fastify instance with a
// JSON body route under load from a second process over real sockets, while v8.GCProfiler watches what the
// young-generation GCs (scavenges) move to the old generation. Alone in its process, nothing else (the test runner,
// coverage, the client's own garbage) is counted (ADR 0035).
// argv: requests per lane (4 lanes). stdout: JSON { requests, promoted, scavenges }.
import { spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { GCProfiler } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { ApiHttpAdapter } from '../edge/http-server';

type Space = { spaceName: string; spaceUsedSize: number };
const oldSpace = (s: { heapSpaceStatistics: Space[] }) => s.heapSpaceStatistics.find((x) => x.spaceName === 'old_space')?.spaceUsedSize ?? 0;

const client = (port: number) => `
  const http = require('node:http');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const body = JSON.stringify({ data: 'ab'.repeat(64), keyid: 'demo-fw-dev' });
  const one = () => new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: ${port}, path: '/api/v1/echo', method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => res.resume().on('end', resolve));
    req.on('error', reject);
    req.end(body);
  });
  const lane = async (n) => { for (let i = 0; i < n; i++) await one(); };
  Promise.all([1, 2, 3, 4].map(() => lane(Number(process.argv[1])))).then(() => process.exit(0), () => process.exit(1));`;

async function main(): Promise<void> {
  const perLane = Number(process.argv[2]);
  const server = new ApiHttpAdapter({ logger: pino({ level: 'silent' }) }).getInstance() as unknown as FastifyInstance;
  server.post('/api/v1/echo', async (req) => ({ n: (req.body as { data: string }).data.length }));
  await server.listen({ port: 0, host: '127.0.0.1' });
  const { port } = server.server.address() as AddressInfo;
  const load = async (n: number) => {
    const code = await new Promise<number | null>((resolve) => spawn(process.execPath, ['-e', client(port), String(n)], { stdio: 'ignore' }).on('exit', resolve));
    if (code !== 0) throw new Error(`the load client exited with ${code}`);
  };
  await load(200);
  // What the warm-up left (modules, compiled code) goes to the old generation before counting.
  (runInNewContext('gc') as () => void)();
  const profiler = new GCProfiler();
  profiler.start();
  await load(perLane);
  const scavenges = (profiler.stop()?.statistics ?? []).filter((s) => s.gcType === 'Scavenge');
  // The first scavenge after a full GC promotes nothing (a survivor is promoted at its second scavenge).
  const promoted = scavenges.slice(1).reduce((n, s) => n + Math.max(0, oldSpace(s.afterGC) - oldSpace(s.beforeGC)), 0);
  await server.close();
  process.stdout.write(JSON.stringify({ requests: 4 * perLane, promoted, scavenges: scavenges.length }));
}

void main().catch((err: unknown) => {
  process.stderr.write(String(err instanceof Error ? err.stack : err));
  process.exit(1);
});
