import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GCProfiler, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { KEEP_ALIVE_IDLE_MS } from '@keyserver/config';
import { ApiHttpAdapter } from './http-server';

describe(ApiHttpAdapter.name, () => {
  let server: FastifyInstance;

  beforeAll(async () => {
    server = new ApiHttpAdapter({ logger: pino({ level: 'silent' }) }).getInstance() as unknown as FastifyInstance;
    server.get('/api/v1/crl/:keyid', async (req) => ({ keyid: (req.params as { keyid: string }).keyid, id: req.id }));
    server.post('/api/v1/echo', async (req) => ({ n: (req.body as { data: string }).data.length }));
    await server.ready();
  });
  afterAll(() => server.close());

  it('keeps the timeouts the API had on Express: Node\'s request timeout, our keep-alive, no socket timeout', () => {
    const node = createServer();
    expect([server.server.requestTimeout, server.server.keepAliveTimeout, server.server.timeout]).toEqual([node.requestTimeout, KEEP_ALIVE_IDLE_MS, node.timeout]);
  });

  it.each([
    ['ok the route as declared', '/api/v1/crl/Key-1', 200],
    ['ok upper case, as Express routed it', '/API/V1/CRL/Key-1', 200],
    ['ok a trailing slash, as Express routed it', '/api/v1/crl/Key-1/', 200],
    ['ok a parameter of 4,000 characters (no limit on Express either)', `/api/v1/crl/${'k'.repeat(4000)}`, 200],
    ['fail another path', '/api/v1/crls/Key-1', 404],
  ])('%s', async (_name, url, status) => {
    const r = await server.inject({ method: 'GET', url });
    expect(r.statusCode).toBe(status);
    if (status === 200) expect(r.json<{ keyid: string }>().keyid).toBe(decodeURIComponent(url.split('/')[4]));
  });

  it('lets a request with a body die young: the median scavenge under load promotes < 1 MB (issue 20)', async () => {
    // Fastify before 5.12.8 wrapped every body parser's callback with AsyncResource.prototype.bind, and V8 then kept
    // each request's objects through young-generation GCs and promoted them: ~12 MB per scavenge and 10-38 ms
    // pauses in a server of 1,600 requests/s, against nothing with runInAsyncScope (docs/benchmarks.md). The load
    // comes from another process over real sockets: the client's garbage (and light-my-request's) is not counted.
    await server.listen({ port: 0, host: '127.0.0.1' });
    const { port } = server.server.address() as AddressInfo;
    const client = `
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
    const load = (n: number) =>
      new Promise<number | null>((resolve) => spawn(process.execPath, ['-e', client, String(n)], { stdio: 'ignore' }).on('exit', resolve));
    expect(await load(200)).toBe(0);
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
    const profiler = new GCProfiler();
    profiler.start();
    expect(await load(6_000)).toBe(0);
    const old = (s: { heapSpaceStatistics: { spaceName: string; spaceUsedSize: number }[] }) => s.heapSpaceStatistics.find((x) => x.spaceName === 'old_space')?.spaceUsedSize ?? 0;
    const promoted = (profiler.stop()?.statistics ?? [])
      .filter((s) => s.gcType === 'Scavenge')
      .map((s) => Math.max(0, old(s.afterGC) - old(s.beforeGC)))
      .sort((a, b) => a - b);
    if (process.env['XX']) console.log(JSON.stringify(promoted));
    expect(promoted.length).toBeGreaterThanOrEqual(2);
    expect(promoted[Math.floor(promoted.length / 2)]).toBeLessThan(1 << 20);
  }, 60_000);

  it.each([
    ['ok a well-formed x-request-id is the request id', 'ci-run-7', 'ci-run-7'],
    ['fail a malformed one is replaced', 'a b c', undefined],
  ])('%s', async (_name, incoming, kept) => {
    const r = await server.inject({ method: 'GET', url: '/api/v1/crl/k', headers: { 'x-request-id': incoming } });
    const id = r.json<{ id: string }>().id;
    if (kept) expect(id).toBe(kept);
    else expect(id).toMatch(/^[0-9a-f-]{36}$/);
  });
});
