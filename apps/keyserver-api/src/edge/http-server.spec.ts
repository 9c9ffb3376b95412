import { createServer } from 'node:http';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { KEEP_ALIVE_IDLE_MS } from '@keyserver/config';
import { runProbe } from '@keyserver/data-access/testing';
import { clientErrorResponse } from './client-error';
import { ApiHttpAdapter } from './http-server';

describe(ApiHttpAdapter.name, () => {
  let server: FastifyInstance;

  beforeAll(async () => {
    server = new ApiHttpAdapter({ logger: pino({ level: 'silent' }) }).getInstance() as unknown as FastifyInstance;
    server.get('/api/v1/crl/:keyid', async (req) => ({ keyid: (req.params as { keyid: string }).keyid, id: req.id }));
    await server.ready();
  });
  afterAll(() => server.close());

  it('keeps the timeouts the API had on Express: Node\'s request timeout, our keep-alive and headers timeout, no socket timeout', () => {
    const node = createServer();
    expect([server.server.requestTimeout, server.server.headersTimeout, server.server.keepAliveTimeout, server.server.timeout]).toEqual([node.requestTimeout, KEEP_ALIVE_IDLE_MS + 1_000, KEEP_ALIVE_IDLE_MS, node.timeout]);
  });

  it('takes the configured headers and request timeouts (HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS)', async () => {
    const other = new ApiHttpAdapter({ logger: pino({ level: 'silent' }) }, { headersTimeoutMs: 3_000, requestTimeoutMs: 6_000 }).getInstance() as unknown as FastifyInstance;
    expect([other.server.headersTimeout, other.server.requestTimeout]).toEqual([3_000, 6_000]);
    await other.close();
  });

  it.each([
    ['fail a header section over the limit', 'HPE_HEADER_OVERFLOW', 431, 'header_too_large'],
    ['fail a sender slower than its timeout', 'ERR_HTTP_REQUEST_TIMEOUT', 408, 'request_timeout'],
    ['fail a bad chunk size', 'HPE_INVALID_CHUNK_SIZE', 400, 'malformed_request'],
    ['fail CONNECT', 'HPE_CONNECT', 400, 'malformed_request'],
    ['fail no code at all', undefined, 400, 'malformed_request'],
  ])('%s: %i %s problem+json on the raw socket', (_n, parserCode, status, code) => {
    const r = clientErrorResponse(parserCode);
    expect([r.status, r.code]).toEqual([status, code]);
    expect(r.raw.startsWith(`HTTP/1.1 ${status} `)).toBe(true);
    expect(JSON.parse(r.raw.slice(r.raw.indexOf('\r\n\r\n') + 4))).toMatchObject({ status, code });
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

  it('lets a request with a body die young: < 100 bytes promoted per request, in a process of its own (issue 20)', async () => {
    // Fastify before 5.12.8 wrapped every body parser's callback with AsyncResource.prototype.bind, and V8 then kept
    // each request's objects through young-generation GCs and promoted them: ~12 MB per scavenge and 10-38 ms
    // pauses in a server of 1,600 requests/s, against nothing with runInAsyncScope (ADR 0035). testing/http-gc-probe.ts
    // runs the API's Fastify alone in its process, with the load from another one.
    const probe = await runProbe<{ requests: number; promoted: number; scavenges: number }>(join(__dirname, '../testing/http-gc-probe.ts'), ['6000']);
    // ~8 bytes per request here; with Fastify 5.11's parser ~3,250.
    expect(probe.scavenges).toBeGreaterThanOrEqual(2);
    expect(probe.promoted / probe.requests).toBeLessThan(100);
  }, 150_000);

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
