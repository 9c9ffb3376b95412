import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import fc from 'fast-check';
import { composeCommand, freePort, startPlatform, startService, waitForOk, type RunningPlatform } from '@keyserver/testing';
import { sql } from './admin-helpers';
import { parseExposition, scrape, valueOf } from './metrics-support';
import { call, ciToken, operationBody } from './operations-support';
import { parseResponses, rawExchange, type RawExchange, type RawResponse } from './raw-http';

// An attacker who controls the bytes on the socket (security.md sections 4 and 7, ADR 0011 addendum "the
// transport"): every refusal the server can still answer is a 4xx problem+json with a stable code, otherwise a
// clean close; never a hang, never a 5xx; an aborted firmware upload leaves nothing half-written, its usage is
// consumed at most once, the attempt is audited, and the server answers the next request.

const PROBLEM = 'application/problem+json';
const MiB = 1024 * 1024;
/** Tables are built before the token exists: `@CI@` in what a test writes stands for it. */
let CI = '';
const withToken = (part: Buffer | string): Buffer | string => (typeof part === 'string' ? part.replace('@CI@', CI) : part);

type Response = RawResponse;

/** {@link rawExchange} with the token put in for `@CI@`. */
const exchange = (port: number, parts: (Buffer | string)[], o: { gapMs?: number; waitMs?: number; half?: boolean } = {}): Promise<RawExchange> =>
  rawExchange(port, parts.map(withToken), o);

/** Opens a socket and writes `head` plus `body` (the upload stays open: the caller decides how it ends). */
function openUpload(port: number, head: string, body: Buffer): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(withToken(head));
      if (body.length === 0) return resolve(s);
      s.write(body, () => resolve(s));
    });
    s.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async <T>(f: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (ok(v) || Date.now() > end) return v;
    await sleep(100);
  }
};

describe('the HTTP transport under a hostile client', () => {
  let p: RunningPlatform;
  let port: number;
  let ci: string;

  const reqLine = (method: string, target: string, headers: string[], body = ''): string =>
    `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`;
  const auth = () => 'Authorization: Bearer @CI@';
  /** Never a 5xx; every answer a refusal is problem+json with a code. */
  const expectClean = (x: RawExchange) => {
    for (const r of x.responses) {
      expect(r.status).toBeLessThan(500);
      if (r.status >= 400) expect([r.headers['content-type']?.split(';')[0], typeof r.code]).toEqual([PROBLEM, 'string']);
    }
  };
  const healthy = async () => {
    const r = await exchange(port, [reqLine('GET', '/healthz', ['Connection: close'])]);
    expect(r.responses.map((x) => x.status)).toEqual([200]);
  };

  beforeAll(async () => {
    p = await startPlatform({
      extraApiEnv: {
        FIRMWARE_MAX_BYTES: String(64 * MiB),
        // Short so the timeouts can be watched: a slow sender's headers, a slow body (ADR 0011 addendum).
        HTTP_HEADERS_TIMEOUT_MS: '3000',
        HTTP_REQUEST_TIMEOUT_MS: '6000',
      },
    });
    port = Number(new URL(p.env.urls.api).port);
    ci = await ciToken(p);
    CI = ci;
  });

  afterAll(async () => {
    await p?.stop();
  });

  describe('framing', () => {
    it.each([
      ['fail Content-Length plus Transfer-Encoding', reqLine('POST', '/api/v1/operations', [auth(), 'Content-Type: application/json', 'Content-Length: 4', 'Transfer-Encoding: chunked'], '0\r\n\r\n'), [400], 'malformed_request'],
      ['fail two different Content-Lengths', reqLine('POST', '/api/v1/operations', [auth(), 'Content-Type: application/json', 'Content-Length: 2', 'Content-Length: 3'], '{}'), [400], 'malformed_request'],
      ['fail a chunk size that is not hex', reqLine('POST', '/api/v1/operations', [auth(), 'Content-Type: application/json', 'Transfer-Encoding: chunked'], 'zz\r\n{}\r\n0\r\n\r\n'), [400], 'malformed_request'],
      ['fail a negative Content-Length', reqLine('POST', '/api/v1/operations', [auth(), 'Content-Type: application/json', 'Content-Length: -1'], '{}'), [400], 'malformed_request'],
      ['fail a Transfer-Encoding other than chunked', reqLine('POST', '/api/v1/operations', [auth(), 'Content-Type: application/json', 'Transfer-Encoding: gzip, chunked'], '0\r\n\r\n'), [415], 'unsupported_content_encoding'],
      ['fail a repeated chunked Transfer-Encoding', reqLine('POST', '/api/v1/operations', [auth(), 'Content-Type: application/json', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'], '0\r\n\r\n'), [400, 415], undefined],
      ['fail a chunk extension of 20 KiB', reqLine('POST', '/api/v1/operations', [auth(), 'Content-Type: application/json', 'Transfer-Encoding: chunked'], `2;x=${'a'.repeat(20_000)}\r\n{}\r\n0\r\n\r\n`), [400, 413], undefined],
      ['fail a header line without a colon', reqLine('GET', '/api/v1/me', [auth(), 'Bogus header']), [400], 'malformed_request'],
      ['fail a space before the colon', reqLine('GET', '/api/v1/me', [auth(), 'X-A : b']), [400], 'malformed_request'],
      ['fail an obs-fold continuation line', reqLine('GET', '/api/v1/me', [auth(), 'X-A: b', ' folded']), [400], 'malformed_request'],
      ['fail HTTP/1.1 without Host', `GET /api/v1/me HTTP/1.1\r\n${auth()}\r\n\r\n`, [400], 'malformed_request'],
      ['fail an unknown HTTP version', 'GET /healthz HTTP/3.7\r\nHost: x\r\n\r\n', [400, 505], undefined],
      ['fail 3000 headers', reqLine('GET', '/api/v1/me', Array.from({ length: 3000 }, (_, i) => `X-${i}: ${i}`)), [431], 'header_too_large'],
      ['fail one 40 KiB header', reqLine('GET', '/api/v1/me', [`X-Big: ${'b'.repeat(40_000)}`]), [431], 'header_too_large'],
    ] as const)('%s, then a clean close', async (_n, bytes, statuses, code) => {
      const x = await exchange(port, [bytes]);
      expect(x.closed).toBe(true);
      expect(x.responses).toHaveLength(1);
      expect(statuses as readonly number[]).toContain(x.responses[0].status);
      if (code) expect(x.responses[0].code).toBe(code);
      expectClean(x);
    });

    it.each([
      ['ok chunk extensions and trailers on a JSON body', reqLine('POST', '/api/v1/operations', [auth(), 'Content-Type: application/json', 'Transfer-Encoding: chunked'], '2;ext=1\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n'), 400, 'validation_failed'],
      ['ok HTTP/1.0 without Host to the liveness probe', 'GET /healthz HTTP/1.0\r\n\r\n', 200, undefined],
      ['ok HTTP/1.0 without Host and without a token', 'GET /api/v1/me HTTP/1.0\r\n\r\n', 401, 'invalid_token'],
      // Node parses the rest as the next request and refuses it before the first is answered: one 400, then closed.
      ['fail a body longer than its Content-Length: the rest is a second request', reqLine('POST', '/api/v1/operations', [auth(), 'Content-Type: application/json', 'Content-Length: 2'], '{}garbage garbage\r\n\r\n'), 400, 'malformed_request'],
    ] as const)('%s', async (_n, bytes, status, code) => {
      const x = await exchange(port, [bytes], { half: false, waitMs: 3_000 });
      expect(x.responses.length).toBeGreaterThanOrEqual(1);
      expect([x.responses[0].status, x.responses[0].code]).toEqual([status, code]);
      expectClean(x);
    });

    it('fail a body shorter than its Content-Length from a client that then half-closes: no answer hangs', async () => {
      const x = await exchange(port, [reqLine('POST', '/api/v1/operations', [auth(), 'Content-Type: application/json', 'Content-Length: 100'], '{"a":')], { half: true, waitMs: 5_000 });
      expect(x.closed).toBe(true);
      expectClean(x);
      await healthy();
    });

    it('keeps generated hostile request lines and headers to a 4xx problem+json or a clean close (property)', async () => {
      const token = fc.constantFrom('GET', 'POST', 'OPTIONS', 'G\u0000T', 'get', 'CONNECT', 'PRI', 'TRACE', '');
      const target = fc.constantFrom('/healthz', '*', 'http://127.0.0.1/api/v1/me', '//api/v1/me', '/api/v1/keys/%2e%2e', '/api/v1/keys/..%2fme', '/api/v1//keys', '/%2e%2e/%2e%2e/etc/passwd', '/api/v1/crl/%', 'example.com:443', '/api/v1/keys/\u00ff', '');
      const header = fc.oneof(
        fc.constantFrom('Content-Type: application/json', 'Content-Type: text/plain', 'Content-Length: 2', 'Content-Length: 1e3', 'Transfer-Encoding: chunked', 'Transfer-Encoding: identity', auth(), 'Authorization: Bearer x', 'Authorization: Basic Zm9vOmJhcg==', 'Idempotency-Key: a', 'Expect: 100-continue', 'Connection: close', 'Connection: keep-alive, upgrade', 'Upgrade: h2c', 'Host: other'),
        fc.tuple(fc.stringMatching(/^[A-Za-z-]{1,12}$/), fc.string({ maxLength: 40 })).map(([n, v]) => `${n}: ${v.replace(/[\r\n]/g, '')}`),
      );
      const body = fc.constantFrom('', '{}', '0\r\n\r\n', '2\r\n{}\r\n0\r\n\r\n', 'zz\r\n', '{"a":');
      await fc.assert(
        fc.asyncProperty(token, target, fc.array(header, { maxLength: 6 }), body, async (m, t, hs, b) => {
          const x = await exchange(port, [`${m} ${t} HTTP/1.1\r\nHost: 127.0.0.1\r\n${hs.map((h) => `${h}\r\n`).join('')}\r\n${b}`], { waitMs: 4_000, half: true });
          expectClean(x);
          // Answered or closed well before the request timeout: nothing waits for bytes the client said it would not send.
          expect(x.closed).toBe(true);
        }),
        { numRuns: 60, seed: 20261207 },
      );
      await healthy();
    });
  });

  describe('request targets', () => {
    it.each([
      // RFC 9112 §3.2.2: a server must accept absolute-form; the router and every check see the same target.
      ['ok absolute-form is routed by its path', 'GET', 'http://127.0.0.1:PORT/api/v1/me', true, 200, undefined],
      ['ok absolute-form naming another host is this server\'s path, no proxying', 'GET', 'http://evil.example/api/v1/me', true, 200, undefined],
      ['fail absolute-form without a token', 'GET', 'http://127.0.0.1:PORT/api/v1/me', false, 401, 'invalid_token'],
      ['fail asterisk-form', 'OPTIONS', '*', true, 404, 'not_found'],
      ['fail authority-form (CONNECT)', 'CONNECT', '127.0.0.1:443', true, 400, 'malformed_request'],
      ['fail a double slash', 'GET', '//api/v1/me', true, 404, 'not_found'],
      ['fail an encoded dot-dot segment', 'GET', '/api/v1/keys/%2e%2e/%2e%2e/me', true, 404, 'not_found'],
      ['fail a raw dot-dot segment', 'GET', '/api/v1/keys/../../healthz', true, 404, 'not_found'],
      ['fail an encoded slash in a key id', 'GET', '/api/v1/keys/demo-fw-dev%2f..%2f..%2fme', true, 404, 'key_not_found'],
    ] as const)('%s', async (_n, method, target, token, status, code) => {
      const x = await exchange(port, [reqLine(method, target.replace('PORT', String(port)), [...(token ? [auth()] : []), 'Connection: close'])]);
      expect(x.responses.map((r) => [r.status, r.code])).toEqual([[status, code]]);
      expectClean(x);
    });

    it.each([
      ['fail an empty segment, with a token', true, (t: string) => `/api/v1/keys//${t}`],
      ['fail a raw dot-dot segment, anonymous', false, (t: string) => `/api/v1/keys/../../${t}`],
    ])('%s: 404 not_found, audited request.refused not_found by address, no actor (ADR 0011 addendum "routes that do not exist")', async (_n, token, target) => {
      const path = target(`probe-${randomUUID()}`);
      const x = await exchange(port, [reqLine('GET', path, [...(token ? [auth()] : []), 'Connection: close'])]);
      expect(x.responses.map((r) => [r.status, r.code])).toEqual([[404, 'not_found']]);
      // Refusals are audited after the answer is sent (RefusalAudit): wait for the row.
      let rows: { errorCode: string; actorOid: string | null; ip: string }[] = [];
      for (let i = 0; i < 50 && rows.length === 0; i++) {
        if (i) await new Promise((done) => setTimeout(done, 100));
        rows = await sql(p, `SELECT "errorCode", "actorOid", details->>'ip' AS ip FROM audit_event WHERE action = 'request.refused' AND details->>'path' = $1`, [path]);
      }
      expect(rows).toEqual([{ errorCode: 'not_found', actorOid: null, ip: '127.0.0.1' }]);
    });
  });

  describe('duplicate headers', () => {
    it.each([
      ['fail two Authorization headers', ['Authorization: Bearer x', auth()]],
      ['fail two Authorization headers, the valid one first', [auth(), 'Authorization: Bearer x']],
      ['fail two Content-Type headers', [auth(), 'Content-Type: application/json', 'Content-Type: text/plain']],
      ['fail two Host headers', [auth(), 'Host: other.example']],
    ])('%s: 400 malformed_request', async (_n, headers) => {
      const x = await exchange(port, [reqLine('POST', '/api/v1/operations', [...headers, 'Content-Length: 2', 'Connection: close'], '{}')]);
      expect(x.responses.map((r) => [r.status, r.code])).toEqual([[400, 'malformed_request']]);
      expectClean(x);
    });

    it('fail two Idempotency-Key headers: 400 idempotency_key_invalid, no usage spent', async () => {
      const op = await call<{ id: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1));
      const body = JSON.stringify({ operationid: op.body.id, keyid: 'demo-fw-dev', inputdata: 'ab'.repeat(32), inputformat: 'hex', inputpadding: 'none', signatureformat: 'asn1', description: 'dup idem' });
      const x = await exchange(port, [reqLine('POST', '/api/signorders', [auth(), 'Content-Type: application/json', 'Idempotency-Key: a', 'Idempotency-Key: b', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'], body)]);
      expect(x.responses.map((r) => r.status)).toEqual([400]);
      expect(['idempotency_key_invalid', 'malformed_request']).toContain(x.responses[0].code);
      const used = await sql<{ n: number }>(p, 'SELECT "usagesUsed" AS n FROM operation_key WHERE "operationId" = $1', [op.body.id]);
      expect(used.map((r) => r.n)).toEqual([0]);
    });
  });

  describe('pipelining', () => {
    it('fail then ok: a refused request with a body closes the connection; what follows is never read as a request', async () => {
      const first = reqLine('POST', '/api/v1/operations', [auth(), 'Content-Type: text/plain', 'Content-Length: 47'], 'GET /api/v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      const x = await exchange(port, [first + reqLine('GET', '/healthz', [])]);
      expect(x.responses.map((r) => [r.status, r.code])).toEqual([[415, 'unsupported_media_type']]);
      expect(x.closed).toBe(true);
    });

    it('fail then ok: a refusal without a body keeps the connection and answers the next request', async () => {
      const x = await exchange(port, [reqLine('GET', '/api/v1/crl/a%00b', []) + reqLine('GET', '/healthz', ['Connection: close'])]);
      expect(x.responses.map((r) => [r.status, r.code])).toEqual([
        [400, 'invalid_input_encoding'],
        [200, undefined],
      ]);
    });
  });

  describe('slow clients', () => {
    it('fail headers sent one byte at a time (slowloris): 408 request_timeout problem+json, then closed', async () => {
      const head = reqLine('GET', '/api/v1/me', [auth(), ...Array.from({ length: 20 }, (_, i) => `X-Slow-${i}: ${i}`)]);
      const x = await exchange(port, String(withToken(head)).split(''), { gapMs: 100, waitMs: 15_000 });
      expect(x.closed).toBe(true);
      expect(x.responses.map((r) => [r.status, r.code])).toEqual([[408, 'request_timeout']]);
      expect(x.ms).toBeLessThan(12_000);
      await healthy();
    });

    it('fail a connection that never sends a byte: closed (with a 408) once the headers timeout passes', async () => {
      const x = await exchange(port, [], { waitMs: 15_000 });
      expect(x.closed).toBe(true);
      expect(x.responses.map((r) => [r.status, r.code])).toEqual([[408, 'request_timeout']]);
      expect(x.ms).toBeLessThan(12_000);
    });

    it('fail a JSON body that never completes: 408 request_timeout problem+json, then closed', async () => {
      const x = await exchange(port, [reqLine('POST', '/api/v1/operations', [auth(), 'Content-Type: application/json', 'Content-Length: 100'], '{"a":')], { waitMs: 20_000 });
      expect(x.closed).toBe(true);
      expect(x.responses.map((r) => [r.status, r.code])).toEqual([[408, 'request_timeout']]);
      await healthy();
    });
  });

  const auditOfRequest = (requestId: string) => sql<{ action: string; outcome: string; errorCode: string | null }>(p, 'SELECT action, outcome, "errorCode" FROM audit_event WHERE "requestId" = $1 ORDER BY seq', [requestId]);

  describe('time-stamp queries that end early', () => {
    const head = (requestId: string) => reqLine('POST', '/api/v1/tsa', ['Content-Type: application/timestamp-query', 'Content-Length: 200', `X-Request-Id: ${requestId}`]);

    it('fail a query the client aborts mid-body: audited request_aborted (as on every other route), the next request answered', async () => {
      const rid = randomUUID();
      const s = await openUpload(port, head(rid), Buffer.alloc(20, 0x30));
      await new Promise((r) => setTimeout(r, 300));
      s.destroy();
      const audit = await until(() => auditOfRequest(rid), (a) => a.length > 0);
      await new Promise((r) => setTimeout(r, 300));
      expect((await auditOfRequest(rid)).map((a) => [a.action, a.outcome, a.errorCode])).toEqual([['timestamp.rejected', 'DENIED', 'request_aborted']]);
      expect(audit).toHaveLength(1);
      await healthy();
    });

    it('fail a query that trickles past the request timeout: 408 request_timeout problem+json, audited request_timeout', async () => {
      const rid = randomUUID();
      const x = await exchange(port, [head(rid), Buffer.alloc(20, 0x30)], { waitMs: 15_000 });
      expect(x.closed).toBe(true);
      expect(x.responses.map((r) => [r.status, r.code])).toEqual([[408, 'request_timeout']]);
      const audit = await until(() => auditOfRequest(rid), (a) => a.length > 0);
      expect(audit.map((a) => [a.action, a.outcome, a.errorCode])).toEqual([['timestamp.rejected', 'DENIED', 'request_timeout']]);
    });
  });

  describe('firmware uploads that end early', () => {
    const newOp = async (usages: number) => {
      const r = await call<{ id: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', usages));
      expect(r.status).toBe(201);
      return r.body.id;
    };
    const head = (operationid: string, requestId: string, length: number) =>
      reqLine('POST', `/api/v1/firmware/signatures?operationid=${operationid}&keyid=demo-fw-dev&description=hostile%20upload`, [auth(), 'Content-Type: application/octet-stream', `Content-Length: ${length}`, `X-Request-Id: ${requestId}`]);
    /** What the database holds for an operation: spent usages, sign orders, open reservations. */
    const stateOf = async (operationid: string) => {
      const [r] = await sql<{ used: number; orders: number; reservations: number }>(
        p,
        `SELECT (SELECT "usagesUsed" FROM operation_key WHERE "operationId" = $1) AS used,
                (SELECT count(*)::int FROM sign_order WHERE "operationId" = $1) AS orders,
                (SELECT count(*)::int FROM usage_reservation WHERE "operationId" = $1) AS reservations`,
        [operationid],
      );
      return r;
    };
    const rssKb = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.api.child.pid}/status`, 'utf8'))?.[1] ?? 0);

    it('fail a client that aborts after the headers: nothing written, the attempt audited, the next request answered', async () => {
      const op = await newOp(2);
      const rid = randomUUID();
      const s = await openUpload(port, head(op, rid, 4 * MiB), Buffer.alloc(0));
      await new Promise((r) => setTimeout(r, 300));
      s.destroy();
      const audit = await until(() => auditOfRequest(rid), (a) => a.length > 0);
      expect(audit.map((a) => [a.action, a.outcome, a.errorCode])).toEqual([['firmware.sign', 'DENIED', 'request_aborted']]);
      expect(await stateOf(op)).toEqual({ used: 0, orders: 0, reservations: 0 });
      await healthy();
    });

    it('fail a client that aborts mid-body: nothing written, the attempt audited once, the next request answered', async () => {
      const op = await newOp(2);
      const rid = randomUUID();
      const s = await openUpload(port, head(op, rid, 8 * MiB), Buffer.alloc(3 * MiB, 1));
      await new Promise((r) => setTimeout(r, 300));
      s.destroy();
      const audit = await until(() => auditOfRequest(rid), (a) => a.length > 0);
      await new Promise((r) => setTimeout(r, 300));
      expect(audit).toHaveLength(1);
      expect((await auditOfRequest(rid)).map((a) => [a.action, a.outcome, a.errorCode])).toEqual([['firmware.sign', 'DENIED', 'request_aborted']]);
      expect(await stateOf(op)).toEqual({ used: 0, orders: 0, reservations: 0 });
      await healthy();
    });

    it('ok a client that aborts after the last byte, before the answer: the usage is spent exactly once, with its order and its audit', async () => {
      const op = await newOp(2);
      const rid = randomUUID();
      const s = await openUpload(port, head(op, rid, 2 * MiB), Buffer.alloc(2 * MiB, 2));
      s.destroy();
      const audit = await until(() => auditOfRequest(rid), (a) => a.length > 0);
      await new Promise((r) => setTimeout(r, 500));
      const state = await stateOf(op);
      // The body was complete: the server may have signed (the order and its usage, committed together) or not
      // (nothing); never a usage without its order, nor a reservation left open.
      expect(state.reservations).toBe(0);
      expect(state.used).toBe(state.orders);
      expect((await auditOfRequest(rid)).map((a) => a.action)).toEqual(['firmware.sign']);
      expect(audit[0].outcome).toBe(state.orders === 1 ? 'SUCCESS' : 'DENIED');
      await healthy();
    });

    it('fail a slow body: holds no reservation and no database session while it trickles; timed out with 408 and audited', async () => {
      const op = await newOp(2);
      const rid = randomUUID();
      const s = await openUpload(port, head(op, rid, 4 * MiB), Buffer.alloc(MiB, 3));
      const got: Buffer[] = [];
      s.on('data', (c: Buffer) => got.push(c));
      const closed = new Promise<void>((r) => s.on('close', () => r()));
      s.on('error', () => undefined);
      await new Promise((r) => setTimeout(r, 1_000));
      expect(await stateOf(op)).toEqual({ used: 0, orders: 0, reservations: 0 });
      const busy = await sql<{ n: number }>(p, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`);
      expect(busy[0].n).toBe(0);
      // Another upload on the same operation goes through meanwhile.
      const other = await newOp(1);
      const ok = await exchange(port, [head(other, randomUUID(), 16) + 'sixteen bytes!!!'], { waitMs: 10_000 });
      expect(ok.responses.map((r) => r.status)).toEqual([201]);
      await Promise.race([closed, new Promise((r) => setTimeout(r, 15_000))]);
      s.destroy();
      const answers = parseResponses(Buffer.concat(got));
      expect(answers.map((r) => [r.status, r.code])).toEqual([[408, 'request_timeout']]);
      const audit = await until(() => auditOfRequest(rid), (a) => a.length > 0);
      expect(audit.map((a) => [a.action, a.outcome, a.errorCode])).toEqual([['firmware.sign', 'DENIED', 'request_timeout']]);
      expect(await stateOf(op)).toEqual({ used: 0, orders: 0, reservations: 0 });
    });

    it('fail 24 concurrent uploads aborted at random points: no reservation left, RSS back near its baseline, the server answers', async () => {
      const op = await newOp(24);
      await healthy();
      const before = rssKb();
      await Promise.all(
        Array.from({ length: 24 }, async (_, i) => {
          const s = await openUpload(port, head(op, randomUUID(), 16 * MiB), Buffer.alloc(((i % 6) + 1) * MiB, i));
          s.on('error', () => undefined);
          await new Promise((r) => setTimeout(r, 50 * (i % 4)));
          s.destroy();
        }),
      );
      const state = await until(() => stateOf(op), (v) => v.reservations === 0);
      expect(state).toEqual({ used: 0, orders: 0, reservations: 0 });
      await healthy();
      await new Promise((r) => setTimeout(r, 500));
      expect((rssKb() - before) / 1024).toBeLessThan(64);
    });
  });
});

/** One raw connection from a chosen loopback address (127.0.0.0/8 is all loopback on Linux): what it got, whether it closed. */
interface Conn {
  socket: Socket;
  responses(): Response[];
  closed(): boolean;
  /** Sends `bytes` and waits for the next whole response (or the close). */
  request(bytes: string, ms?: number): Promise<Response | undefined>;
}

function openConn(port: number, localAddress: string): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let closed = false;
    const s = connect({ port, host: '127.0.0.1', localAddress });
    const responses = () => parseResponses(Buffer.concat(chunks));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('close', () => (closed = true));
    s.once('error', reject);
    s.once('connect', () => {
      s.removeListener('error', reject);
      s.on('error', () => undefined);
      resolve({
        socket: s,
        responses,
        closed: () => closed,
        async request(bytes, ms = 5_000) {
          const before = responses().length;
          s.write(withToken(bytes));
          const end = Date.now() + ms;
          while (responses().length === before && !closed && Date.now() < end) await sleep(10);
          return responses()[before];
        },
      });
    });
  });
}

/** Opens a connection and waits long enough to see whether the server refused it (answered and closed) or kept it. */
async function admitted(port: number, localAddress: string): Promise<{ conn: Conn; refusal?: Response }> {
  const conn = await openConn(port, localAddress);
  const end = Date.now() + 400;
  while (!conn.closed() && Date.now() < end) await sleep(10);
  return { conn, refusal: conn.closed() ? (conn.responses()[0] ?? { status: 0, headers: {}, body: '' }) : undefined };
}

// Connection limits and a bounded shutdown (ADR 0011 addendum "connections"): a client opening idle or half-sent
// connections exhausts neither the file descriptors nor the memory of a replica, and SIGTERM does not wait for it.
describe('the HTTP transport: connection limits and shutdown', () => {
  let p: RunningPlatform;
  let port: number;
  let metricsUrl: string;
  const open: Conn[] = [];
  const hold = (c: Conn) => (open.push(c), c);
  const get = (extra: string[] = []) => `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra.map((h) => `${h}\r\n`).join('')}\r\n`;
  const samples = async () => parseExposition(await scrape(metricsUrl));

  beforeAll(async () => {
    const metricsPort = await freePort();
    p = await startPlatform({
      extraApiEnv: {
        HTTP_MAX_CONNECTIONS: '10',
        HTTP_MAX_CONNECTIONS_PER_IP: '4',
        METRICS_PORT: String(metricsPort),
        // Refusals of one caller: two audited one by one per window, the rest counted (ADR 0011 item 5).
        REFUSAL_AUDIT_PER_KEY: '2',
        REFUSAL_AUDIT_WINDOW_SECONDS: '2',
      },
    });
    port = Number(new URL(p.env.urls.api).port);
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  });

  afterEach(async () => {
    for (const c of open.splice(0)) c.socket.destroy();
    // The server sees the closes before the next test counts.
    await until(async () => valueOf(await samples(), 'http_connections_open'), (n) => n <= 1, 3_000);
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('fail the connection over HTTP_MAX_CONNECTIONS while the others sit idle: 503 connection_limit_reached, closed; requests on open connections unaffected; a freed slot is usable again', async () => {
    // Whatever the harness left open (a pooled keep-alive connection from 127.0.0.1) counts too.
    const already = valueOf(await samples(), 'http_connections_open');
    const first = hold((await admitted(port, '127.0.0.2')).conn);
    expect((await first.request(get()))?.status).toBe(200);
    const fillers: Conn[] = [];
    for (let i = 1; i < 10 - already; i++) {
      const r = await admitted(port, `127.0.0.${3 + (i % 3)}`);
      expect(r.refusal).toBeUndefined();
      fillers.push(hold(r.conn));
    }
    const over = await admitted(port, '127.0.0.9');
    expect([over.refusal?.status, over.refusal?.code, over.refusal?.headers['connection'], over.refusal?.headers['content-type']?.split(';')[0]]).toEqual([503, 'connection_limit_reached', 'close', PROBLEM]);
    expect(Number(over.refusal?.headers['retry-after'])).toBeGreaterThan(0);
    // The connections already open are served as before.
    expect((await first.request(get()))?.status).toBe(200);
    fillers[0].socket.destroy();
    await sleep(200);
    const again = await admitted(port, '127.0.0.9');
    expect(again.refusal).toBeUndefined();
    expect((await hold(again.conn).request(get()))?.status).toBe(200);
    expect((await admitted(port, '127.0.0.10')).refusal?.code).toBe('connection_limit_reached');
    expect(valueOf(await samples(), 'http_connections_refused_total', { reason: 'total' })).toBeGreaterThanOrEqual(2);
  });

  it('fail the connection over HTTP_MAX_CONNECTIONS_PER_IP from one address, independent of the total: another address still gets in', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await admitted(port, '127.0.0.20');
      expect(r.refusal).toBeUndefined();
      hold(r.conn);
    }
    const over = await admitted(port, '127.0.0.20');
    expect([over.refusal?.status, over.refusal?.code, over.refusal?.headers['connection']]).toEqual([503, 'client_connection_limit_reached', 'close']);
    const other = await admitted(port, '127.0.0.21');
    expect(other.refusal).toBeUndefined();
    expect((await hold(other.conn).request(get()))?.status).toBe(200);
    // A freed slot of that address is usable again.
    open[0].socket.destroy();
    await sleep(200);
    const again = await admitted(port, '127.0.0.20');
    expect(again.refusal).toBeUndefined();
    expect((await hold(again.conn).request(get(['Connection: close'])))?.status).toBe(200);
    expect(valueOf(await samples(), 'http_connections_refused_total', { reason: 'per_ip' })).toBeGreaterThanOrEqual(1);
  });

  it('fail a flood of refused connections: audited as request.refused, two one by one, the rest in one aggregated event', async () => {
    for (let i = 0; i < 4; i++) hold((await admitted(port, '127.0.0.30')).conn);
    const refused = await Promise.all(Array.from({ length: 8 }, () => admitted(port, '127.0.0.30')));
    expect(refused.map((r) => r.refusal?.code)).toEqual(Array(8).fill('client_connection_limit_reached'));
    const one = () => sql<{ n: number }>(p, `SELECT count(*)::int AS n FROM audit_event WHERE action = 'request.refused' AND "errorCode" = 'client_connection_limit_reached' AND details->>'ip' = '127.0.0.30'`);
    const counted = () =>
      sql<{ n: number }>(p, `SELECT coalesce(sum((details->>'count')::int), 0)::int AS n FROM audit_event WHERE action = 'audit.refusals_aggregated' AND "errorCode" = 'client_connection_limit_reached' AND details->'first'->>'ip' = '127.0.0.30'`);
    const total = await until(async () => (await one())[0].n + (await counted())[0].n, (n) => n >= 8, 8_000);
    expect(total).toBe(8);
    expect((await one())[0].n).toBeLessThanOrEqual(4);
    expect((await counted())[0].n).toBeGreaterThanOrEqual(4);
  });

  it('ok SIGTERM closes idle connections at once, answers a request whose header section was still arriving 503 shutting_down (never routed), lets an in-flight request finish, and cuts a slow sender off after HTTP_SHUTDOWN_GRACE_MS, not HTTP_REQUEST_TIMEOUT_MS', async () => {
    const replicaPort = await freePort();
    const replica = startService('keyserver-api-shutdown', composeCommand('keyserver-api'), {
      ...p.apiEnv,
      KEYSERVER_API_PORT: String(replicaPort),
      METRICS_PORT: String(await freePort()),
      HTTP_HEADERS_TIMEOUT_MS: '60000',
      HTTP_REQUEST_TIMEOUT_MS: '60000',
      HTTP_SHUTDOWN_GRACE_MS: '3000',
    });
    try {
      await waitForOk(`http://127.0.0.1:${replicaPort}/readyz`);
      const ci = await ciToken(p);
      const post = (length: number) => `POST /api/v1/operations HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ci}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
      const idle = await openConn(replicaPort, '127.0.0.40');
      expect((await idle.request(get()))?.status).toBe(200);
      // Connected, not a byte sent (a client's pre-opened connection): nothing started, closed like an idle one.
      const silent = await openConn(replicaPort, '127.0.0.44');
      // A header section still arriving at SIGTERM, on a new connection and on a kept-alive one after its first answer.
      const slowHeaders = await openConn(replicaPort, '127.0.0.41');
      slowHeaders.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      const reused = await openConn(replicaPort, '127.0.0.45');
      expect((await reused.request(get()))?.status).toBe(200);
      reused.socket.write(`GET /api/v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ci}\r\n`);
      // One that never completes its header section.
      const stalled = await openConn(replicaPort, '127.0.0.46');
      stalled.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      const finishing = await openConn(replicaPort, '127.0.0.42');
      finishing.socket.write(post(2) + '{');
      // A firmware upload whose body trickles: access decided, nothing reserved until its last byte (addendum above).
      const op = await call<{ id: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1));
      const rid = randomUUID();
      const trickler = await openConn(replicaPort, '127.0.0.43');
      trickler.socket.write(
        `POST /api/v1/firmware/signatures?operationid=${op.body.id}&keyid=demo-fw-dev&description=shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ci}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\nX-Request-Id: ${rid}\r\n\r\nab`,
      );
      const heading = new Set([slowHeaders, reused, stalled]);
      const trickle = setInterval(() => {
        for (const c of heading) if (!c.closed()) c.socket.write('X-Slow: 1\r\n');
        if (!trickler.closed()) trickler.socket.write('a');
      }, 200);
      await sleep(500);
      const t0 = Date.now();
      const exited = replica.stop('SIGTERM');
      try {
        // Idle, or connected without a byte: closed at once, nothing to answer.
        await until(async () => idle.closed() && silent.closed(), (ok) => ok, 2_000);
        expect([idle.closed(), silent.closed(), Date.now() - t0 < 2_000]).toEqual([true, true, true]);
        expect([idle.responses().length, silent.responses()]).toEqual([1, []]);
        // A request already started is not dropped: while its header section arrives the connection stays open; once
        // it is complete the request is answered 503 shutting_down, Connection: close, without running (no new work
        // after SIGTERM; nothing was done, so any client may retry it elsewhere), with its request id.
        expect([slowHeaders.closed(), reused.closed(), stalled.closed()]).toEqual([false, false, false]);
        await sleep(300);
        for (const c of [slowHeaders, reused]) {
          heading.delete(c);
          c.socket.write('\r\n');
        }
        await until(async () => slowHeaders.closed() && reused.closed(), (ok) => ok, 2_000);
        const shuttingDown = (c: Conn) => c.responses().map((r) => [r.status, r.code, r.headers['connection'], r.headers['content-type']?.split(';')[0], typeof r.headers['x-request-id'], Number(r.headers['retry-after']) > 0]);
        expect(shuttingDown(slowHeaders)).toEqual([[503, 'shutting_down', 'close', PROBLEM, 'string', true]]);
        expect(shuttingDown(reused).slice(1)).toEqual([[503, 'shutting_down', 'close', PROBLEM, 'string', true]]);
        // In flight: its body completes during the grace and it gets its real answer, then the connection closes.
        await sleep(200);
        finishing.socket.write('}');
        await until(async () => finishing.closed(), (ok) => ok, 3_000);
        expect(finishing.responses().map((r) => [r.status, r.code, r.headers['connection']])).toEqual([[400, 'validation_failed', 'close']]);
        // Still sending after the grace: answered 503 and closed, and the process exits, long before the request timeout.
        const code = await Promise.race([exited, sleep(15_000).then(() => 'still running')]);
        const ms = Date.now() - t0;
        expect(code).toBe(0);
        expect(ms).toBeGreaterThanOrEqual(2_500);
        expect(ms).toBeLessThan(10_000);
        expect(trickler.closed()).toBe(true);
        expect(trickler.responses().map((r) => [r.status, r.code])).toEqual([[503, 'service_unavailable']]);
        // A header section still arriving after the grace: answered 503 shutting_down at the socket (never routed), closed.
        expect(stalled.closed()).toBe(true);
        expect(stalled.responses().map((r) => [r.status, r.code, r.headers['connection']])).toEqual([[503, 'shutting_down', 'close']]);
        // Its handler saw why the body ended (the server's doing: FAILED), audited before the database closed; nothing reserved.
        const audit = await sql<{ action: string; outcome: string; errorCode: string | null }>(p, 'SELECT action, outcome, "errorCode" FROM audit_event WHERE "requestId" = $1', [rid]);
        expect(audit.map((a) => [a.action, a.outcome, a.errorCode])).toEqual([['firmware.sign', 'FAILED', 'service_unavailable']]);
        const [state] = await sql<{ used: number; reservations: number }>(p, 'SELECT (SELECT "usagesUsed" FROM operation_key WHERE "operationId" = $1) AS used, (SELECT count(*)::int FROM usage_reservation WHERE "operationId" = $1) AS reservations', [op.body.id]);
        expect(state).toEqual({ used: 0, reservations: 0 });
      } finally {
        clearInterval(trickle);
        for (const c of [idle, silent, slowHeaders, reused, stalled, finishing, trickler]) c.socket.destroy();
      }
    } finally {
      await replica.stop('SIGKILL');
    }
  }, 60_000);
});
