import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { launchChromium, UI_TIMEOUT } from './browser-support';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const uiDir = (require('swagger-ui-dist/absolute-path.js') as () => string)();
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';

interface OpenApiDoc {
  openapi: string;
  paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, { content?: Record<string, unknown> }> }>>;
}

describe('GET /api/docs', () => {
  let p: RunningPlatform;
  let api: string;

  beforeAll(async () => {
    p = await startPlatform();
    api = p.env.urls.api;
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('answers a client (no Accept, or application/json) with the OpenAPI document, without a token', async () => {
    for (const headers of [{}, { accept: 'application/json' }, { accept: '*/*' }] as Record<string, string>[]) {
      const r = await fetch(`${api}/api/docs`, { headers });
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      expect(r.headers.get('vary')).toMatch(/accept/i);
      const doc = (await r.json()) as OpenApiDoc;
      expect(doc.openapi).toBe('3.1.0');
      // Public routes carry no security requirement; the others document their 401 as problem+json.
      expect(doc.paths['/api/v1/crl/{keyid}']['get'].security).toEqual([]);
      expect(doc.paths['/api/v1/me']['get'].responses['401'].content).toHaveProperty(['application/problem+json']);
    }
  });

  it('answers a browser with Swagger UI whose files all come from the API itself', async () => {
    const r = await fetch(`${api}/api/docs`, { headers: { accept: BROWSER_ACCEPT } });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = r.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
    const html = await r.text();
    expect(html).not.toMatch(/<script>(?!<)/); // no inline script
    const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(assets.length).toBeGreaterThanOrEqual(4);
    for (const a of assets) {
      expect(a).toMatch(/^\/api\/docs\/ui\//); // same origin, no CDN
      const asset = await fetch(`${api}${a}`);
      expect({ a, status: asset.status }).toEqual({ a, status: 200 });
      expect(asset.headers.get('x-content-type-options')).toBe('nosniff');
      const body = Buffer.from(await asset.arrayBuffer());
      const name = a.replace('/api/docs/ui/', '');
      if (name === 'init.js') {
        expect(asset.headers.get('content-type')).toMatch(/^text\/javascript/);
        expect(body.toString()).toContain("url: '/api/docs'");
      } else {
        // The very bytes of swagger-ui-dist (not a JSON rendering of them).
        expect(body.equals(readFileSync(join(uiDir, name)))).toBe(true);
        expect(asset.headers.get('content-type')).toMatch(name.endsWith('.css') ? /^text\/css/ : name.endsWith('.js') ? /^text\/javascript/ : /^image\/png/);
      }
    }
  });

  it.each([
    ['fail a file outside the fixed list', '/api/docs/ui/index.html'],
    ['fail a path traversal', '/api/docs/ui/..%2Fpackage.json'],
    ['fail an encoded traversal to the repository', '/api/docs/ui/%2E%2E%2F%2E%2E%2Fpackage.json'],
    ['fail a source map (not served)', '/api/docs/ui/swagger-ui-bundle.js.map'],
  ])('%s: 404 problem+json', async (_name, path) => {
    const r = await fetch(`${api}${path}`);
    expect(r.status).toBe(404);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await r.json()) as { code: string }).code).toBe('not_found');
  });

  it('fail a NUL byte: refused at the HTTP edge with 400 invalid_input_encoding problem+json (ADR 0011)', async () => {
    const r = await fetch(`${api}/api/docs/ui/swagger-ui.css%00.js`);
    expect(r.status).toBe(400);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await r.json()) as { code: string }).code).toBe('invalid_input_encoding');
  });

  it('renders the routes in Chromium with no request leaving the API and no CSP violation', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const origin = new URL(api).origin;
      const foreign: string[] = [];
      const cspErrors: string[] = [];
      page.on('request', (req) => {
        if (!req.url().startsWith(origin) && !req.url().startsWith('data:')) foreign.push(req.url());
      });
      page.on('console', (m) => {
        if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) cspErrors.push(m.text());
      });
      await page.goto(`${api}/api/docs`, { timeout: UI_TIMEOUT });
      await page.locator('.opblock-summary-path', { hasText: '/api/v1/me' }).first().waitFor({ timeout: UI_TIMEOUT });
      expect(await page.locator('.opblock').count()).toBeGreaterThan(20);
      expect(foreign).toEqual([]);
      expect(cspErrors).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});
