import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import fc from 'fast-check';
import { ProxyService } from '../src/proxy/proxy.service';
import { PROXY_ROUTES } from '../src/proxy/proxy-routes';
import type { Browser } from './browser';
import { Harness } from './harness';

/*
 * An attacker's review of the keyclient's proxy (ADR 0043 addendum): request targets, headers, cross-site requests and
 * the API's answers, against the real keyclient over HTTP, the emulator, and a recording stand-in for the API.
 */

jest.setTimeout(120_000);

const h = new Harness();
let browser: Browser;
let sessionCookie = '';
/** A second server: where a request would land if the keyclient let the request choose its destination. */
let other: http.Server;
let otherHits: string[] = [];

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Writes bytes to the keyclient as they are (no client-side normalisation) and reads the answer until close. */
function raw(bytes: string | Buffer): Promise<RawAnswer> {
  const port = Number(new URL(h.kc).port);
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      let text = Buffer.concat(chunks).toString('latin1');
      // Interim answers (100 Continue) come before the final one.
      while (/^HTTP\/1\.1 1\d\d /.test(text)) text = text.slice(text.indexOf('\r\n\r\n') + 4);
      const split = text.indexOf('\r\n\r\n');
      const [statusLine, ...lines] = text.slice(0, split).split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      let body = text.slice(split + 4);
      if (headers['transfer-encoding'] === 'chunked') {
        let out = '';
        for (let rest = body; ; ) {
          const eol = rest.indexOf('\r\n');
          const size = parseInt(rest.slice(0, eol), 16);
          if (!size) break;
          out += rest.slice(eol + 2, eol + 2 + size);
          rest = rest.slice(eol + 4 + size);
        }
        body = out;
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
    });
  });
}

/** One request in bytes: a signed-in browser's cookie, and for unsafe methods the SPA's same-origin proof. */
function request(method: string, target: string, extra: string[] = [], body?: string): string {
  const unsafe = !['GET', 'HEAD', 'OPTIONS', 'TRACE'].includes(method);
  const lines = [`${method} ${target} HTTP/1.1`, `Host: ${new URL(h.kc).host}`, `Cookie: ${sessionCookie}`, 'Connection: close'];
  if (unsafe) lines.push('X-Keyserver-CSRF: 1', `Origin: ${h.kc}`, 'Content-Type: application/json');
  const payload = body ?? (unsafe ? '{}' : undefined);
  if (payload !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(payload)}`);
  return `${[...lines, ...extra].join('\r\n')}\r\n\r\n${payload ?? ''}`;
}

function codeOf(a: { headers: Record<string, string | string[] | undefined>; body: string }): string | undefined {
  return String(a.headers['content-type']).startsWith('application/problem+json') ? (JSON.parse(a.body) as { code: string }).code : undefined;
}

beforeAll(async () => {
  await h.start({ env: { PROXY_TIMEOUT_MS: '1500' } });
  browser = h.browser();
  await h.login(browser);
  sessionCookie = `${h.sessionCookieName}=${browser.cookie(h.kcHost, h.sessionCookieName)?.value ?? ''}`;
  other = http.createServer((req, res) => {
    otherHits.push(`${req.method} ${req.url}`);
    res.end('{}');
  });
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
});

afterEach(() => {
  h.upstream.respond = null;
});

afterAll(async () => {
  other.closeAllConnections();
  await new Promise((r) => other.close(r));
  await h.stop();
});

describe('keyclient proxy request targets', () => {
  const otherHost = () => `127.0.0.1:${(other.address() as AddressInfo).port}`;
  const upstreamHost = () => new URL(h.upstream.url).host;

  it.each<[string, string, () => string, string[], number, string | null]>([
    ['fail absolute-form naming the API and a route off the list', 'POST', () => `http://${upstreamHost()}/api/signorders`, [], 400, 'path_rejected'],
    ['fail absolute-form naming another server', 'GET', () => `http://${otherHost()}/api/v1/keys`, [], 400, 'path_rejected'],
    ['fail scheme-relative target', 'GET', () => `//${otherHost()}/api/v1/keys`, [], 400, 'path_rejected'],
    ['fail upper-case prefix to a route off the list', 'POST', () => '/API/signorders', [], 403, 'proxy_route_forbidden'],
    ['fail case variant of an allowed route', 'GET', () => '/api/V1/keys', [], 403, 'proxy_route_forbidden'],
    ['fail overlong UTF-8 dots', 'GET', () => '/api/v1/keys/%c0%ae%c0%ae/signorders', [], 400, 'path_rejected'],
    ['fail overlong UTF-8 slash', 'GET', () => '/api/v1/keys/..%c0%afsignorders', [], 400, 'path_rejected'],
    ['fail encoded question mark in an id', 'GET', () => '/api/v1/keys/a%3fb', [], 403, 'proxy_route_forbidden'],
    ['fail encoded hash in an id', 'GET', () => '/api/v1/keys/a%23b', [], 403, 'proxy_route_forbidden'],
    ['fail raw hash in the path', 'GET', () => '/api/v1/keys/a#/../../signorders', [], 400, 'path_rejected'],
    ['fail raw hash in the query (the API would get another target)', 'GET', () => '/api/v1/audit?x=1#/../../signorders', [], 400, 'path_rejected'],
    ['fail trailing slash', 'GET', () => '/api/v1/keys/', [], 403, 'proxy_route_forbidden'],
    ['fail trailing dot segment', 'GET', () => '/api/v1/keys/.', [], 400, 'path_rejected'],
    ['fail NUL', 'GET', () => '/api/v1/keys/a%00', [], 400, 'path_rejected'],
    ['fail path parameter', 'POST', () => '/api/v1/keys;x=1/revocation', [], 400, 'path_rejected'],
    ['fail method off the list for the route', 'PUT', () => '/api/v1/keys/k1/limits', [], 403, 'proxy_route_forbidden'],
    ['fail TRACE', 'TRACE', () => '/api/v1/keys', [], 405, 'method_not_allowed'],
    ['ok Host and X-Forwarded-* naming another server change nothing', 'GET', () => '/api/v1/keys', [], 200, null],
    ['ok query characters pass byte for byte', 'GET', () => `/api/v1/audit?q="<>'\`{}|^&p=%2f..%2f`, [], 200, null],
  ])('%s', async (_name, method, target, extra, status, code) => {
    const before = h.upstream.received.length;
    otherHits = [];
    const bytes = request(method, target(), [...extra, `X-Forwarded-Host: ${otherHost()}`, 'X-Forwarded-Proto: http', `Forwarded: host=${otherHost()}`]).replace(
      `Host: ${new URL(h.kc).host}`,
      `Host: ${otherHost()}`,
    );
    const a = await raw(bytes);
    const got = h.upstream.received.slice(before);
    expect({ status: a.status, code: codeOf(a) ?? null, otherHits }).toEqual({ status, code, otherHits: [] });
    if (status === 200) {
      // Forwarded exactly as it was compared, to the API's own origin.
      expect(got.map((r) => [r.method, r.url, r.headers.host])).toEqual([[method, target(), upstreamHost()]]);
      expect(Object.keys(got[0].headers).filter((k) => /forwarded/.test(k))).toEqual([]);
    } else {
      expect(got).toEqual([]);
    }
  });

  it('ok every request target is refused, or forwarded byte for byte and on the list (property)', async () => {
    const piece = fc.constantFrom(
      'api', 'v1', 'keys', 'operations', 'audit', 'export', 'signorders', 'firmware', 'signatures', 'certificates', 'revocation',
      'approvals', 'root-ceremony', 'limits', 'k1', 'API', 'Keys', '', '.', '..', '%2e', '%2e%2e', '%2E%2e', '%2f', '%2F', '%252f',
      '%252e%252e', '%5c', '\\', ';x', 'a;b', '%3b', '%00', '%c0%ae', '%c0%af', '%3f', '%23', '#', '%25', 'a.', '~', '%41pi', 'caf%C3%A9',
      '%ff', '@', ':', 'k1.', 'k1..',
    );
    const path = fc.array(piece, { minLength: 1, maxLength: 6 }).map((s) => `/${s.join('/')}`);
    const prefix = fc.constantFrom('/api', '/api', '/api/v1', '/api/v1/keys', '/API', 'http://evil.example/api', '//evil.example/api', 'http://127.0.0.1:1/api');
    const query = fc.constantFrom('', '', '?x=1', '?a=%2f..%2f', '?q=/../signorders', '?x#y', `?x="<>'`, '?%', '??', '?a=b&c');
    const method = fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE');
    // Independent of the proxy's matcher: a route of the list, `:id` one segment of unreserved characters.
    const onList = (m: string, p: string) =>
      PROXY_ROUTES.some(([rm, rp]) => (rm === m || (m === 'HEAD' && rm === 'GET')) && new RegExp(`^${rp.replace(/:id/g, '[A-Za-z0-9._~-]+')}$`).test(p));
    await fc.assert(
      fc.asyncProperty(method, prefix, path, query, async (m, pre, p, q) => {
        const target = `${pre}${p}${q}`;
        const before = h.upstream.received.length;
        const a = await raw(request(m, target));
        const got = h.upstream.received.slice(before);
        if (got.length === 0) {
          expect([400, 401, 403, 404, 405]).toContain(a.status);
          expect(String(a.headers['content-type'])).toMatch(/^application\/problem\+json/);
          return;
        }
        const forwardedPath = got[0].url.split('?')[0];
        expect({ n: got.length, method: got[0].method, url: got[0].url }).toEqual({ n: 1, method: m, url: target });
        expect(onList(m, forwardedPath) && !forwardedPath.split('/').some((s) => /^\.+$/.test(s))).toBe(true);
      }),
      { numRuns: 400 },
    );
  });
});

describe('keyclient proxy headers', () => {
  it('fail a bearer token without a session is not relayed (401, nothing forwarded)', async () => {
    const before = h.upstream.received.length;
    const a = await raw(request('GET', '/api/v1/keys').replace(`Cookie: ${sessionCookie}`, 'Authorization: Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'));
    expect({ status: a.status, code: codeOf(a), forwarded: h.upstream.received.length - before }).toEqual({ status: 401, code: 'unauthenticated', forwarded: 0 });
  });

  it('fail Connection: upgrade is neither forwarded nor switched', async () => {
    const before = h.upstream.received.length;
    const a = await raw(request('GET', '/api/v1/keys', ['Upgrade: websocket', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13']).replace('Connection: close', 'Connection: Upgrade, close'));
    const got = h.upstream.received.slice(before);
    expect([a.status, got.length]).toEqual([200, 1]);
    for (const r of got) expect([r.headers.upgrade, r.headers['sec-websocket-key'], String(r.headers.connection ?? '')]).toEqual([undefined, undefined, expect.not.stringMatching(/upgrade/i)]);
  });

  it('fail Transfer-Encoding with Content-Length (request smuggling) is refused before the proxy: 400 problem+json', async () => {
    const before = h.upstream.received.length;
    const smuggled = `GET /api/v1/keys HTTP/1.1\r\nHost: x\r\nCookie: ${sessionCookie}\r\n\r\n`;
    const body = `0\r\n\r\n${smuggled}`;
    const bytes = request('POST', '/api/v1/operations', ['Transfer-Encoding: chunked'], body);
    const a = await raw(bytes);
    expect({ status: a.status, code: codeOf(a), forwarded: h.upstream.received.length - before }).toEqual({ status: 400, code: 'malformed_request', forwarded: 0 });
  });

  it.each([
    ['ok Expect: 100-continue is answered here, the body forwarded, the header not', '100-continue', 201, null],
    ['fail an Expect the keyclient cannot meet is 417 problem+json', 'x-something', 417, 'expectation_failed'],
  ])('%s', async (_name, expectValue, status, code) => {
    const before = h.upstream.received.length;
    const a = await raw(request('POST', '/api/v1/operations', [`Expect: ${expectValue}`], '{"a":1}'));
    const got = h.upstream.received.slice(before);
    expect({ status: a.status, code: codeOf(a) ?? null }).toEqual({ status, code });
    if (status === 201) expect(got.map((r) => [r.body.toString(), r.headers.expect])).toEqual([['{"a":1}', undefined]]);
    else expect(got).toEqual([]);
  });

  // The API refuses a repeated Idempotency-Key or Content-Type (ADR 0011: which one counted would depend on who
  // reads); through the keyclient Node kept the first Content-Type and joined the keys into one "a, b", so the API
  // saw a single header it accepted. The keyclient refuses them itself, as the API would.
  it.each([
    ['fail a repeated Idempotency-Key', ['Idempotency-Key: key-one-0001', 'Idempotency-Key: key-two-0002']],
    ['fail Idempotency-Key in two spellings', ['Idempotency-Key: key-one-0001', 'idempotency-key: key-two-0002']],
    ['fail a repeated X-Admin-Session', ['X-Admin-Session: 00000000-0000-4000-8000-000000000001', 'X-Admin-Session: 00000000-0000-4000-8000-000000000002']],
    ['fail a second Content-Type', ['Content-Type: text/plain']],
  ])('%s is 400 malformed_request and never forwarded', async (_name, extra) => {
    const before = h.upstream.received.length;
    const a = await raw(request('POST', '/api/v1/operations', extra));
    expect({ status: a.status, code: codeOf(a), forwarded: h.upstream.received.length - before }).toEqual({ status: 400, code: 'malformed_request', forwarded: 0 });
  });

  // Node undoes only `chunked`, and neither coding header is forwarded: the API, which refuses both (415, ADR 0011),
  // would have judged the still-coded bytes as a plain body.
  it.each<[string, string[], boolean, number, string | null]>([
    ['fail Content-Encoding gzip', ['Content-Encoding: gzip'], false, 415, 'unsupported_content_encoding'],
    ['fail Content-Encoding in upper case', ['Content-Encoding: GZIP'], false, 415, 'unsupported_content_encoding'],
    ['fail Transfer-Encoding gzip, chunked', ['Transfer-Encoding: gzip, chunked'], true, 415, 'unsupported_content_encoding'],
    ['fail Transfer-Encoding deflate, chunked', ['Transfer-Encoding: deflate,chunked'], true, 415, 'unsupported_content_encoding'],
    ['ok Content-Encoding identity', ['Content-Encoding: identity'], false, 201, null],
    ['ok Transfer-Encoding chunked', ['Transfer-Encoding: chunked'], true, 201, null],
  ])('%s', async (_name, extra, chunked, status, code) => {
    const before = h.upstream.received.length;
    let bytes = request('POST', '/api/v1/operations', extra, chunked ? '2\r\n{}\r\n0\r\n\r\n' : '{}');
    if (chunked) bytes = bytes.replace(/Content-Length: \d+\r\n/, '');
    const a = await raw(bytes);
    const got = h.upstream.received.slice(before);
    expect({ status: a.status, code: codeOf(a) ?? null, forwarded: got.length }).toEqual({ status, code, forwarded: status === 201 ? 1 : 0 });
  });

  it('ok one Idempotency-Key and one X-Admin-Session are forwarded as sent', async () => {
    const before = h.upstream.received.length;
    const a = await raw(request('POST', '/api/v1/operations', ['Idempotency-Key: key-one-0001', 'X-Admin-Session: 00000000-0000-4000-8000-000000000001']));
    expect(a.status).toBe(201);
    const [got] = h.upstream.received.slice(before);
    expect([got.headers['idempotency-key'], got.headers['x-admin-session'], got.headers['content-type']]).toEqual(['key-one-0001', '00000000-0000-4000-8000-000000000001', 'application/json']);
  });

  it("fail the API's credentials, CORS grants and security headers never reach the browser", async () => {
    h.upstream.respond = (_req, res) => {
      res.writeHead(200, {
        'content-type': 'application/json',
        'set-cookie': 'api=1; Path=/',
        'www-authenticate': 'Bearer realm="internal", error="invalid_token"',
        'access-control-allow-origin': 'https://evil.example',
        'access-control-allow-credentials': 'true',
        'content-security-policy': "default-src *; script-src 'unsafe-inline'",
        'x-frame-options': 'ALLOWALL',
        server: 'keyserver-api/10.0.0.7',
        'x-powered-by': 'fastify',
        'alt-svc': 'h2="internal:443"',
        'content-disposition': 'attachment; filename="../../x"',
        refresh: '0; url=https://evil.example',
      });
      res.end('{}');
    };
    const a = await raw(request('GET', '/api/v1/keys'));
    expect(a.status).toBe(200);
    for (const name of ['set-cookie', 'www-authenticate', 'access-control-allow-origin', 'access-control-allow-credentials', 'server', 'x-powered-by', 'alt-svc', 'content-disposition', 'refresh']) {
      expect([name, a.headers[name]]).toEqual([name, undefined]);
    }
    expect(a.headers['content-security-policy']).toContain("script-src 'self'");
    expect(a.headers['x-frame-options']).toBe('DENY');
  });
});

describe('keyclient proxy and other sites (CSRF)', () => {
  const evil = 'https://evil.example';
  const crossSite = { origin: evil, 'sec-fetch-site': 'cross-site' };
  const unsafeRoutes = PROXY_ROUTES.filter(([m]) => m !== 'GET').map(([m, p]) => [m, p.replace(/:id/g, 'k1')] as const);

  it.each([
    ['fail a form POST text/plain', { 'content-type': 'text/plain' }, '{"x":1,"pad":"="}'],
    ['fail a form POST urlencoded', { 'content-type': 'application/x-www-form-urlencoded' }, 'x=1'],
    ['fail a form POST multipart', { 'content-type': 'multipart/form-data; boundary=b' }, '--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n'],
    ['fail a credentialed fetch (no preflight: simple content type)', { 'content-type': 'text/plain', 'sec-fetch-mode': 'cors' }, '{}'],
    ['fail a same-site page that carries the cookie, with the custom header', { 'content-type': 'application/json', 'x-keyserver-csrf': '1', 'sec-fetch-site': 'same-site', origin: 'http://sub.localhost' }, '{}'],
  ])('%s to every state-changing route of the list is refused and never forwarded', async (_name, headers, body) => {
    const before = h.upstream.received.length;
    for (const [method, path] of unsafeRoutes) {
      // Worst case: the session cookie is sent (a browser without SameSite, or a same-site page).
      const res = await browser.request(`${h.kc}${path}`, { method, body, headers: { ...crossSite, ...headers, cookie: sessionCookie } });
      expect([method, path, res.status, codeOf(res)]).toEqual([method, path, 403, 'csrf_rejected']);
      // As a browser sends it from another site: the Strict cookie stays home, and the answer is the same.
      const nav = await browser.navigate(`${h.kc}${path}`, { method, body, headers: { ...crossSite, ...headers }, initiator: evil });
      expect([method, path, nav.status, codeOf(nav)]).toEqual([method, path, 403, 'csrf_rejected']);
    }
    expect(h.upstream.received.length).toBe(before);
  });

  // GET /api/v1/audit/verify and /export append audit events in the officer's name and read the whole chain: a read
  // with side effects. A sibling site's page (same-site: the Strict cookie goes along) must not set them off.
  it.each([
    ['fail an image from a same-site page', { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' }, 403],
    ['fail a script from a same-site page', { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'script' }, 403],
    ['fail a frame on a same-site page', { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'iframe' }, 403],
    ['fail a navigation from a same-site page', { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' }, 403],
    ['fail a cross-site request that carries the cookie', { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' }, 403],
    ['ok the SPA (same-origin fetch)', { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' }, 200],
    ['ok the officer typing the address', { 'sec-fetch-site': 'none', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' }, 200],
    ['ok a client without fetch metadata', {}, 200],
  ])('%s to a proxied GET with side effects', async (_name, headers, status) => {
    for (const path of ['/api/v1/audit/verify', '/api/v1/audit/export']) {
      const before = h.upstream.received.length;
      const res = await browser.request(`${h.kc}${path}`, { headers: { ...headers, cookie: sessionCookie } });
      const forwarded = h.upstream.received.length - before;
      expect([path, res.status, codeOf(res) ?? null, forwarded]).toEqual([path, status, status === 403 ? 'csrf_rejected' : null, status === 403 ? 0 : 1]);
    }
  });

  it('fail a CORS preflight for the custom header gets no grant', async () => {
    const res = await browser.request(`${h.kc}/api/v1/operations`, {
      method: 'OPTIONS',
      headers: { origin: evil, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-keyserver-csrf', cookie: sessionCookie },
    });
    expect([res.status, Object.keys(res.headers).filter((k) => k.startsWith('access-control-'))]).toEqual([405, []]);
  });

  it('fail a cross-site read: no CORS grant, same-origin resource policy; a cross-site navigation is refused', async () => {
    const read = await browser.request(`${h.kc}/api/v1/audit/export`, { headers: { ...crossSite, 'sec-fetch-mode': 'cors', cookie: sessionCookie } });
    expect([read.headers['access-control-allow-origin'], read.headers['cross-origin-resource-policy'], read.headers['x-content-type-options']]).toEqual([
      undefined,
      'same-origin',
      'nosniff',
    ]);
    const before = h.upstream.received.length;
    const nav = await browser.navigate(`${h.kc}/api/v1/audit/export`, { initiator: evil, headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' } });
    expect([nav.status, codeOf(nav), h.upstream.received.length - before]).toEqual([403, 'csrf_rejected', 0]);
  });
});

describe(`keyclient proxy answers (${ProxyService.name})`, () => {
  it('ok streams a long answer: the browser has the first bytes while the API is still writing, and a paused browser holds the API back', async () => {
    let written = 0;
    let ended = false;
    h.upstream.respond = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      // Writes as fast as the connection takes it, up to 256 MiB: a proxy that buffered would take it all.
      const pump = () => {
        while (!res.destroyed && written < 256 * 1024 * 1024) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        if (!res.destroyed) {
          ended = true;
          res.end();
        }
      };
      pump();
    };
    const port = Number(new URL(h.kc).port);
    const first = await new Promise<number>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/api/v1/audit/export', headers: { cookie: sessionCookie }, agent: false }, (res) => {
        res.once('data', (c: Buffer) => {
          res.pause();
          // The browser reads nothing more for a second: what the API writes meanwhile is what sits in between.
          setTimeout(() => {
            resolve(c.length);
            req.destroy();
          }, 1000);
        });
      });
      req.on('error', reject);
    });
    expect({ first: first > 0, ended, boundedBelow32MiB: written < 32 * 1024 * 1024 }).toEqual({ first: true, ended: false, boundedBelow32MiB: true });
  });

  it('ok an API problem passes through unchanged (status, type, code), with no internal address', async () => {
    const problem = { type: 'https://keyserver.dev/problems/key_not_found', title: 'Key not found', status: 404, code: 'key_not_found', requestId: 'r' };
    h.upstream.respond = (_req, res) => res.writeHead(404, { 'content-type': 'application/problem+json' }).end(JSON.stringify(problem));
    const a = await raw(request('GET', '/api/v1/keys/nope'));
    expect([a.status, a.headers['content-type'], JSON.parse(a.body)]).toEqual([404, 'application/problem+json', problem]);
    expect(JSON.stringify(a)).not.toContain(new URL(h.upstream.url).host);
  });

  it.each<[string, number, Record<string, string>, string]>([
    ['fail an HTML error page from something in front of the API', 503, { 'content-type': 'text/html' }, '<h1>503</h1>No server is available: backend api-1 (10.0.0.7:3000)'],
    ['fail a redirect to an internal address', 302, { location: 'http://10.0.0.7:3000/api/v1/keys' }, ''],
    ['fail a plain-text error naming a token', 401, { 'content-type': 'text/plain' }, 'invalid token eyJhbGciOiJSUzI1NiJ9.x.y at http://10.0.0.7:3000'],
  ])('%s becomes 502 upstream_unavailable problem+json', async (_name, status, headers, body) => {
    h.upstream.respond = (_req, res) => res.writeHead(status, headers).end(body);
    const a = await raw(request('GET', '/api/v1/keys'));
    expect([a.status, codeOf(a), a.headers['location']]).toEqual([502, 'upstream_unavailable', undefined]);
    expect(a.body).not.toContain('10.0.0.7');
  });

  it('ok a 304 for If-None-Match passes', async () => {
    h.upstream.respond = (_req, res) => res.writeHead(304, { etag: '"v1"' }).end();
    const a = await raw(request('GET', '/api/v1/keys', ['If-None-Match: "v1"']));
    expect([a.status, a.headers['etag']]).toEqual([304, '"v1"']);
  });

  it('fail an API that accepts the connection and never answers: 504 upstream_timeout, not a hang', async () => {
    h.upstream.respond = () => undefined;
    const started = Date.now();
    const a = await raw(request('GET', '/api/v1/keys'));
    expect([a.status, codeOf(a), Date.now() - started < 5_000]).toEqual([504, 'upstream_timeout', true]);
  });

  it.each<[string, Record<string, string>]>([
    ['chunked', {}],
    ['with a Content-Length', { 'content-length': '1000000' }],
  ])('fail an API that dies in the middle of a streamed export (%s): the browser sees it cut off, never a clean end', async (_name, headers) => {
    h.upstream.respond = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson', ...headers });
      res.write('{"seq":1}\n');
      setTimeout(() => res.socket?.destroy(), 100);
    };
    const port = Number(new URL(h.kc).port);
    const outcome = await new Promise<string>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/api/v1/audit/export', headers: { cookie: sessionCookie }, agent: false }, (res) => {
        res.on('data', () => undefined);
        res.on('end', () => resolve('complete'));
        res.on('aborted', () => resolve('cut off'));
        res.on('error', () => resolve('cut off'));
      });
      req.on('error', () => resolve('cut off'));
    });
    expect(outcome).toBe('cut off');
  });

  it('fail an API that stalls in the middle of its answer: the browser is cut off, not left hanging', async () => {
    h.upstream.respond = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"partial":');
    };
    const started = Date.now();
    const a = await raw(request('GET', '/api/v1/keys'));
    expect([a.status, a.body.length < 100, Date.now() - started < 5_000]).toEqual([200, true, true]);
  });
});
