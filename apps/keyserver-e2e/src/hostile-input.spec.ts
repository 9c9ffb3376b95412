import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { authorizeWithPassword, exchangeCode, pkcePair } from '@keyserver/entra-emulator';
import { clientCredentialsToken, demoTenant, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { apiAs, bffUserToken, sql, type Api, type AuditRow } from './admin-helpers';

// Issue 13, items 4 and 7: hostile input at the HTTP edge is a 4xx problem+json with a stable code (never a 500),
// the refusal is audited, tokens never reach the logs, and floods of refusals are rate-limited and aggregated.

interface Answer {
  status: number;
  type: string;
  body: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
}

/** One raw HTTP/1.1 request: the target, headers and body go on the wire exactly as given. */
function raw(base: string, method: string, target: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path: target, headers, insecureHTTPParser: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: Record<string, unknown> = {};
        try {
          parsed = JSON.parse(text) as Record<string, unknown>;
        } catch {
          parsed = { raw: text };
        }
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: parsed, headers: res.headers });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

/** Bytes straight onto a socket (for request lines Node's client would refuse to send). */
function wire(base: string, bytes: Buffer): Promise<{ status: number; type: string; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const s = connect(Number(url.port), url.hostname, () => s.end(bytes));
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const type = /\r\ncontent-type: *([^\r]*)/i.exec(text)?.[1] ?? '';
      resolve({ status, type, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
  });
}

const PROBLEM = 'application/problem+json';
const NUL_USER = { username: 'nul.name@demo.test', password: 'demo-password', name: 'Mallory\u0000Admin', oid: 'a0000001-0000-4000-8000-0000000000ff', natures: [] as string[] };

function deepJson(levels: number): string {
  return `{"description":${'['.repeat(levels)}${']'.repeat(levels)}}`;
}

describe('hostile input at the HTTP edge', () => {
  let p: RunningPlatform;
  let ci: string;
  let auditor: Api;
  const api = () => p.env.urls.api;

  beforeAll(async () => {
    p = await startPlatform({
      keyclient: true,
      tenant: (t) => {
        t.users.push(NUL_USER);
      },
    });
    const c = demoTenant.ciClients.find((x) => x.name === 'demo-ci');
    ci = await clientCredentialsToken(p.facts, c?.clientId ?? '', c?.clientSecret ?? '');
    auditor = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
  });

  afterAll(async () => {
    await p?.stop();
  });

  describe('never a 500', () => {
    it.each([
      ['fail NUL in a public path segment', 'GET', '/api/v1/crl/a%00b', false, 'invalid_input_encoding'],
      ['fail NUL in an authenticated path segment', 'GET', '/api/v1/keys/demo%00fw', true, 'invalid_input_encoding'],
      ['fail malformed UTF-8 in a path segment', 'GET', '/api/v1/keys/%ff%fe', true, 'invalid_input_encoding'],
      ['fail a broken percent escape in a path segment', 'GET', '/api/v1/crl/%zz', false, 'invalid_input_encoding'],
      ['fail NUL in a query parameter', 'GET', '/api/v1/certificates?subject=a%00b', true, 'invalid_input_encoding'],
      ['fail NUL in an operations filter', 'GET', '/api/v1/operations?key=demo%00fw', true, 'invalid_input_encoding'],
      ['fail malformed UTF-8 in a query parameter', 'GET', '/api/v1/certificates?subject=%c3%28', true, 'invalid_input_encoding'],
      ['fail year 0000 in a date filter', 'GET', '/api/v1/audit?from=0000-01-01T00:00:00Z', 'auditor', 'validation_failed'],
    ] as const)('%s: 400 %s problem+json', async (_n, method, target, auth, code) => {
      const headers: Record<string, string> = {};
      if (auth === true) headers['authorization'] = `Bearer ${ci}`;
      if (auth === 'auditor') headers['authorization'] = `Bearer ${await bffUserToken(p, 'aude.auditor@demo.test')}`;
      const r = await raw(api(), method, target, headers);
      expect([r.status, r.type.split(';')[0], r.body['code']]).toEqual([400, PROBLEM, code]);
    });

    const op = (over: Record<string, unknown>) =>
      JSON.stringify({
        description: 'hostile body',
        validFrom: new Date(Date.now() - 60_000).toISOString(),
        validTo: new Date(Date.now() + 3_600_000).toISOString(),
        keys: [{ keyid: 'demo-fw-dev', usages: 1 }],
        ...over,
      });

    it.each([
      ['fail NUL in a JSON string', () => op({ description: 'build\u0000 42' }), 'invalid_input_encoding'],
      ['fail NUL in a JSON key', () => op({ 'descr\u0000iption': 'x' }), 'invalid_input_encoding'],
      ['fail a lone surrogate in a JSON string', () => op({ description: 'build \ud800 42' }), 'invalid_input_encoding'],
      ['fail year 0000 in a JSON date', () => op({ validFrom: '0000-01-01T00:00:00Z' }), 'validation_failed'],
      ['fail JSON nested 5000 levels', () => deepJson(5000), 'json_too_deep'],
      ['fail JSON nested 20000 levels', () => deepJson(20000), 'json_too_deep'],
    ] as const)('%s: 400 %s problem+json', async (_n, body, code) => {
      const started = Date.now();
      const r = await raw(api(), 'POST', '/api/v1/operations', { authorization: `Bearer ${ci}`, 'content-type': 'application/json' }, body());
      expect([r.status, r.type.split(';')[0], r.body['code']]).toEqual([400, PROBLEM, code]);
      expect(Date.now() - started).toBeLessThan(5000);
    });

    it.each([
      ['fail gzip with a corrupt body', 'gzip', Buffer.from('this is not gzip at all')],
      ['fail deflate', 'deflate', Buffer.from('x')],
      ['fail an unknown encoding', 'zstd', Buffer.from('{}')],
    ])('%s: 415 unsupported_content_encoding', async (_n, encoding, body) => {
      const r = await raw(api(), 'POST', '/api/v1/operations', { authorization: `Bearer ${ci}`, 'content-type': 'application/json', 'content-encoding': encoding }, body);
      expect([r.status, r.type.split(';')[0], r.body['code']]).toEqual([415, PROBLEM, 'unsupported_content_encoding']);
    });

    it.each([
      ['fail an Expect nothing can meet on a POST with a body', 'POST', '/api/v1/operations', '200-ok', '{}', 417, 'expectation_failed'],
      ['fail an unknown expectation on a public read', 'GET', '/api/v1/crl/demo-fw-dev', 'foo', undefined, 417, 'expectation_failed'],
      ['ok Expect: 100-continue is met as before', 'GET', '/healthz', '100-continue', undefined, 200, undefined],
    ] as const)('%s: %s', async (_n, method, target, expectation, body, status, code) => {
      // Node's server answers an unmet Expect with a bare 417 unless the server listens for it (checkExpectation).
      const r = await raw(api(), method, target, { authorization: `Bearer ${ci}`, 'content-type': 'application/json', expect: expectation }, body);
      expect([r.status, r.body['code']]).toEqual([status, code]);
      if (code) expect([r.type.split(';')[0], typeof r.headers['x-request-id']]).toEqual([PROBLEM, 'string']);
    });

    it('answers a request line Node cannot parse with problem+json, not a bare 400', async () => {
      const r = await wire(api(), Buffer.from('GET /api/v1/crl/a\u0000b HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1'));
      expect([r.status, r.type.split(';')[0], (JSON.parse(r.body) as { code: string }).code]).toEqual([400, PROBLEM, 'malformed_request']);
    });

    it('takes a valid token whose name claim holds a NUL as an unknown principal with a sanitised name', async () => {
      const app = demoTenant.keyserverApp;
      const emu = { baseUrl: p.env.urls.emulator, tokenEndpoint: p.facts.tokenEndpoint, authorizationEndpoint: `${p.env.urls.emulator}/${p.facts.tenantId}/oauth2/v2.0/authorize` };
      const pkce = pkcePair();
      const redirectUri = p.env.keyclient['REDIRECT_URI'];
      const { code } = await authorizeWithPassword(emu, {
        clientId: app.clientId,
        redirectUri,
        username: NUL_USER.username,
        password: NUL_USER.password,
        scope: `openid profile ${p.facts.scope}`,
        codeChallenge: pkce.codeChallenge,
      });
      const res = await exchangeCode(emu, { clientId: app.clientId, clientSecret: app.clientSecret, authMethod: 'basic', code, redirectUri, codeVerifier: pkce.codeVerifier });
      const token = String(res.body['access_token']);
      const r = await raw(api(), 'GET', '/api/v1/me', { authorization: `Bearer ${token}` });
      expect([r.status, r.type.split(';')[0], r.body['code']]).toEqual([403, PROBLEM, 'unknown_subject']);
      const rows = await sql<{ display_name: string }>(p, 'SELECT "displayName" AS display_name FROM unknown_principal WHERE oid = $1', [NUL_USER.oid]);
      expect(rows.map((x) => x.display_name)).toEqual(['Mallory\ufffdAdmin']);
    });

    it('refuses malformed UTF-8 in a path proxied by the keyclient with 400 path_rejected', async () => {
      const r = await raw(p.env.urls.keyclient, 'GET', '/api/v1/keys/%ff%fe');
      expect([r.status, r.type.split(';')[0], r.body['code']]).toEqual([400, PROBLEM, 'path_rejected']);
      const star = await raw(p.env.urls.keyclient, 'GET', '/api/%c3%28');
      expect([star.status, star.body['code']]).toEqual([400, 'path_rejected']);
    });

    it('audits the refusals at the edge and keeps the audit chain valid', async () => {
      const refused = await auditor<{ items: AuditRow[] }>('GET', '/api/v1/audit?action=request.refused&limit=500');
      expect(refused.status).toBe(200);
      const codes = new Set(refused.body.items.map((e) => e.errorCode));
      for (const c of ['invalid_input_encoding', 'json_too_deep', 'unsupported_content_encoding', 'validation_failed', 'expectation_failed']) expect(codes).toContain(c);
      const verify = await auditor<{ ok: boolean }>('GET', '/api/v1/audit/verify');
      expect(verify.body.ok).toBe(true);
    });
  });

  describe('leaks and abuse', () => {
    it('answers an oversize Authorization header with 431 problem+json header_too_large', async () => {
      const r = await raw(api(), 'GET', '/api/keys', { authorization: `Bearer ${'a'.repeat(20_000)}` });
      expect([r.status, r.type.split(';')[0], r.body['code']]).toEqual([431, PROBLEM, 'header_too_large']);
      await new Promise((resolve) => setTimeout(resolve, 200)); // audited after the answer
      const refused = await auditor<{ items: AuditRow[] }>('GET', '/api/v1/audit?action=request.refused&limit=500');
      expect(refused.body.items.map((e) => e.errorCode)).toEqual(expect.arrayContaining(['header_too_large', 'malformed_request']));
    });

    it('never writes a token from the query string or the headers into the API log', async () => {
      const marker = `${ci.split('.')[2].slice(0, 24)}`;
      await raw(api(), 'GET', `/api/keys?access_token=${ci}&x=1`);
      await raw(api(), 'GET', `/api/v1/crl/${ci}`);
      await raw(api(), 'GET', `/api/v1/keys/nope?id_token=${ci}&code=secretcode123&client_secret=hunter2`, { authorization: `Bearer ${ci}` });
      await new Promise((r) => setTimeout(r, 300));
      const out = p.api.output();
      expect(out).toContain('access_token=');
      expect(out).not.toContain(marker);
      expect(out).not.toContain('secretcode123');
      expect(out).not.toContain('hunter2');
    });
  });
});

describe('limits on refused callers', () => {
  // Small limits so a flood is a few requests: a burst of 5 refusals per caller, one token back per minute,
  // 3 identical refusals audited one by one per 3-second window, the rest counted.
  const BURST = 5;
  const PER_KEY = 3;
  let p: RunningPlatform;
  let auditor: Api;
  let ci: string;

  beforeAll(async () => {
    p = await startPlatform({
      extraApiEnv: {
        REFUSAL_RATE_BURST: String(BURST),
        REFUSAL_RATE_PER_MINUTE: '1',
        REFUSAL_AUDIT_PER_KEY: String(PER_KEY),
        REFUSAL_AUDIT_PER_WINDOW: '1000',
        REFUSAL_AUDIT_WINDOW_SECONDS: '3',
      },
    });
    auditor = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    const c = demoTenant.ciClients.find((x) => x.name === 'demo-ci');
    ci = await clientCredentialsToken(p.facts, c?.clientId ?? '', c?.clientSecret ?? '');
  });

  afterAll(async () => {
    await p?.stop();
  });

  const countOf = async (action: string, code: string): Promise<{ single: number; aggregated: number; summaries: number }> => {
    const single = await auditor<{ items: AuditRow[] }>('GET', `/api/v1/audit?action=${action}&limit=500`);
    const agg = await auditor<{ items: (AuditRow & { details: { action: string; count: number } })[] }>('GET', '/api/v1/audit?action=audit.refusals_aggregated&limit=500');
    const mine = agg.body.items.filter((e) => e.details.action === action && e.errorCode === code);
    return {
      single: single.body.items.filter((e) => e.errorCode === code).length,
      aggregated: mine.reduce((n, e) => n + e.details.count, 0),
      summaries: mine.length,
    };
  };

  it('answers an anonymous caller over its limit with 429 rate_limited and Retry-After, probes and valid tokens still pass', async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < BURST + 6; i++) answers.push(await raw(p.env.urls.api, 'GET', '/api/keys'));
    expect(answers.slice(0, BURST).map((a) => a.status)).toEqual(Array(BURST).fill(401));
    const limited = answers.slice(BURST);
    expect(limited.map((a) => [a.status, a.type.split(';')[0], a.body['code']])).toEqual(Array(6).fill([429, PROBLEM, 'rate_limited']));
    expect(Number(limited[0].headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await raw(p.env.urls.api, 'GET', '/healthz')).status).toBe(200);
    // A caller with a valid token is not held back by the refusals of others at the same address.
    expect((await raw(p.env.urls.api, 'GET', '/api/keys', { authorization: `Bearer ${ci}` })).status).toBe(200);
    // An invalid token from the exhausted address is answered 429 as well.
    const bad = await raw(p.env.urls.api, 'GET', '/api/keys', { authorization: 'Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln' });
    expect([bad.status, bad.body['code']]).toEqual([429, 'rate_limited']);
  });

  it('answers a principal that keeps being refused (an unregistered one) with 429 once its bucket is empty', async () => {
    const nora = apiAs(p, await bffUserToken(p, 'nora.nobody@demo.test'));
    const statuses: number[] = [];
    for (let i = 0; i < BURST + 3; i++) statuses.push((await nora('GET', '/api/v1/audit')).status);
    expect(statuses).toEqual([...Array(BURST).fill(403), 429, 429, 429]);
    const again = await nora('GET', '/api/v1/me');
    expect([again.status, again.body['code'], Number(again.headers.get('retry-after')) >= 1]).toEqual([429, 'rate_limited', true]);
  });

  it('audits a flood of identical refusals as a few events plus one aggregated count, and the chain stays valid', async () => {
    await new Promise((r) => setTimeout(r, 3500)); // the window of the floods above ends and is flushed
    const invalid = await countOf('auth.invalid_token', 'missing_token');
    expect(invalid.single + invalid.aggregated).toBe(BURST);
    expect(invalid.single).toBeLessThan(BURST);
    expect(invalid.summaries).toBeGreaterThanOrEqual(1);
    const limited = await countOf('request.refused', 'rate_limited');
    expect(limited.single + limited.aggregated).toBe(6 + 1 + 4);
    // Two callers (the address, then Nora); 7 of the address's fall in at most two 3-s windows: some were counted.
    expect(limited.single).toBeLessThan(6 + 1 + 4);
    expect(limited.summaries).toBeGreaterThanOrEqual(1);
    // Nora holds a valid token but is not registered: every one of her 9 requests was refused and audited.
    const unknown = await countOf('auth.unknown_subject', 'unknown_subject');
    expect(unknown.single + unknown.aggregated).toBe(BURST + 3 + 1);
    expect(unknown.single).toBeLessThanOrEqual(2 * PER_KEY);
    const verify = await auditor<{ ok: boolean }>('GET', '/api/v1/audit/verify');
    expect(verify.body.ok).toBe(true);
  });
});
