import http from 'node:http';
import { CookieJar, signInAt } from '@keyserver/entra-emulator';
import { demoTenant, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { bffUserToken } from './admin-helpers';

/** A browser's view of the keyclient: cookies kept, redirects followed by hand. */
class Browser {
  readonly jar = new CookieJar();
  constructor(private readonly origin: string) {}

  async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const r = await fetch(new URL(path, this.origin), {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers as Record<string, string>), cookie: this.jar.header() },
    });
    this.jar.store(r);
    return r;
  }
}

describe('keyclient with the real API and emulator', () => {
  let p: RunningPlatform;
  const password = demoTenant.users[0].password;

  beforeAll(async () => {
    p = await startPlatform({ keyclient: true });
  });

  afterAll(async () => {
    await p?.stop();
  });

  async function login(username: string): Promise<Browser> {
    const b = new Browser(p.env.urls.keyclient);
    const start = await b.fetch('/login?returnTo=/approvals');
    expect(start.status).toBe(302);
    const emulator = { baseUrl: p.env.urls.emulator, tokenEndpoint: p.facts.tokenEndpoint, authorizationEndpoint: '' };
    const { callbackUrl } = await signInAt(emulator, { authorizationUrl: start.headers.get('location') ?? '', username, password });
    const back = await b.fetch(callbackUrl.replace(new URL(callbackUrl).origin, ''));
    expect(back.status).toBe(302);
    expect(back.headers.get('location')).toBe('/approvals');
    return b;
  }

  it('keeps idle connections longer than its clients do: the emulator, the API and the keyclient announce Keep-Alive: timeout=65', async () => {
    // With Node's 5 s default, a client (fetch, the keyclient's proxy agent) could send on a connection the server was closing.
    for (const url of [p.facts.metadataUrl, `${p.env.urls.api}/healthz`, `${p.env.urls.keyclient}/healthz`]) {
      const r = await fetch(url);
      await r.arrayBuffer();
      expect([url, r.status, r.headers.get('keep-alive')]).toEqual([url, 200, 'timeout=65']);
    }
  });

  it('logs an approver in and shows who she is, with her natures from the API and no token', async () => {
    const b = await login('ann.approver@demo.test');
    const me = await b.fetch('/me');
    expect(me.status).toBe(200);
    const text = await me.text();
    expect(JSON.parse(text)).toMatchObject({ displayName: 'Ann Approver' });
    expect(text).toContain('approver');
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/);
  });

  it('proxies administration reads to the API with the session token', async () => {
    const b = await login('ada.admin@demo.test');
    const keys = await b.fetch('/api/keys');
    expect(keys.status).toBe(200);
    const ids = ((await keys.json()) as { keyid: string }[]).map((k) => k.keyid);
    expect(ids).toEqual(expect.arrayContaining(['demo-root', 'demo-fw-prod']));
  });

  it('never lets a browser session sign: the keyclient refuses and so does the API', async () => {
    const b = await login('otto.orderer@demo.test');
    const headers = { 'content-type': 'application/json', 'x-keyserver-csrf': '1', origin: p.env.urls.keyclient };
    const body = JSON.stringify({
      operationid: '00000000-0000-4000-8000-000000000000',
      keyid: 'demo-fw-dev',
      inputdata: '00'.repeat(32),
      inputformat: 'hex',
      inputpadding: 'none',
      signatureformat: 'asn1',
      description: 'from the browser',
    });
    const viaProxy = await b.fetch('/api/signorders', { method: 'POST', headers, body });
    expect(viaProxy.status).toBe(403);
    const issue = await b.fetch('/api/v1/certificates', { method: 'POST', headers, body: '{}' });
    expect(issue.status).toBe(403);

    // The API enforces it itself: a token issued to the keyclient (BFF channel) cannot sign either.
    const token = await bffUserToken(p, 'otto.orderer@demo.test');
    const direct = await fetch(`${p.env.urls.api}/api/signorders`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body,
    });
    expect(direct.status).toBe(403);
    expect(((await direct.json()) as { code: string }).code).toBe('bff_token_not_allowed');
  });

  it('refuses a state change without the CSRF header', async () => {
    const b = await login('ann.approver@demo.test');
    const r = await b.fetch('/api/v1/operations', { method: 'POST', headers: { 'content-type': 'application/json', origin: p.env.urls.keyclient }, body: '{}' });
    expect(r.status).toBe(403);
  });

  it("passes the API's own problem through unchanged and names no internal address", async () => {
    const b = await login('ada.admin@demo.test');
    const r = await b.fetch('/api/v1/keys/no-such-key', { headers: { 'sec-fetch-site': 'same-origin' } });
    const text = await r.text();
    expect([r.status, r.headers.get('content-type')?.split(';')[0], (JSON.parse(text) as { code: string }).code]).toEqual([404, 'application/problem+json', 'key_not_found']);
    const apiHost = new URL(p.env.urls.api).host;
    const headers: string[] = [];
    r.headers.forEach((v, k) => headers.push(`${k}: ${v}`));
    expect(`${text} ${headers.join('\n')}`).not.toContain(apiHost);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/);
  });

  it('fail a raw # in the query is refused, never cut off on the way to the API', async () => {
    const b = await login('ada.admin@demo.test');
    const { hostname, port } = new URL(p.env.urls.keyclient);
    // A raw target (fetch and URL strings drop the fragment before sending).
    const path = '/api/v1/audit?limit=1#/../../signorders';
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ hostname, port, path, headers: { cookie: b.jar.header() } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });
    expect([answer.status, (JSON.parse(answer.body) as { code: string }).code]).toEqual([400, 'path_rejected']);
  });

  it('fail a same-site page cannot make the officer verify or export the audit log (reads that append events)', async () => {
    const b = await login('ada.admin@demo.test');
    const spa = { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' };
    const count = async (action: string) => {
      const r = await b.fetch(`/api/v1/audit?action=${action}&limit=200`, { headers: spa });
      expect(r.status).toBe(200);
      return ((await r.json()) as { items: unknown[] }).items.length;
    };
    const before = [await count('audit.verify'), await count('audit.export')];
    for (const path of ['/api/v1/audit/verify', '/api/v1/audit/export']) {
      // <img src=...> on a sibling site: the Strict session cookie goes along.
      const img = await b.fetch(path, { headers: { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' } });
      expect([path, img.status, ((await img.json()) as { code: string }).code]).toEqual([path, 403, 'csrf_rejected']);
    }
    expect([await count('audit.verify'), await count('audit.export')]).toEqual(before);
    // The console's own call still does it (and is recorded).
    expect((await b.fetch('/api/v1/audit/verify', { headers: spa })).status).toBe(200);
    expect(await count('audit.verify')).toBe(before[0] + 1);
  });

  it('an unknown Entra user can log in but has no rights', async () => {
    const b = await login('nora.nobody@demo.test');
    const keys = await b.fetch('/api/keys');
    expect(keys.status).toBe(403);
    expect(((await keys.json()) as { code: string }).code).toBe('unknown_subject');
  });
});
