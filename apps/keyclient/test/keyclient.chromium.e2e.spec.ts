import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser as Chromium } from 'playwright-core';
import { Harness } from './harness';
import { expectNoSecretsLeaked } from './leak-scan';

jest.setTimeout(90_000);

// A real browser: proves that Chromium keeps and sends the Secure __Host- cookies on http://localhost,
// that the SameSite=Lax transaction cookie survives the cross-site callback and that the SPA's
// same-origin calls carry the Strict session cookie.
const h = new Harness();
let browser: Chromium;

beforeAll(async () => {
  await h.start();
  browser = await chromium.launch({
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking'],
  });
});

afterAll(async () => {
  await browser?.close();
  await h.stop();
});

describe('keyclient in Chromium', () => {
  it('signs in through the emulator form, calls /me and the proxy, and logs out', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const captured: Array<Promise<void>> = [];
    page.on('response', (r) => {
      if (!r.url().startsWith(h.kc)) return;
      // Redirect and aborted responses have no body; do not wait for one forever.
      const body = Promise.race([
        r.body().catch(() => Buffer.alloc(0)),
        new Promise<Buffer>((ok) => setTimeout(() => ok(Buffer.alloc(0)), 500).unref()),
      ]);
      captured.push(
        Promise.all([r.allHeaders().catch(() => r.headers()), body]).then(([headers, body]) => {
          h.seen.push({ method: r.request().method(), url: r.url(), status: r.status(), headers, body: body.toString('utf8') });
        }),
      );
    });
    await page.goto(`${h.kc}/login?returnTo=%2Fkeys`);
    await page.fill('#username', 'ada.admin@demo.test');
    await page.fill('#password', 'demo-password');
    await Promise.all([page.waitForURL(`${h.kc}/keys`), page.click('button[type=submit]')]);

    // The CSP as a browser enforces it: the nonce'd style and the bundle apply, inline script and bare style do not.
    await page.waitForFunction(() => document.body.dataset['spa'] === 'ran');
    const applied = await page.evaluate(() => ({
      color: getComputedStyle(document.body).color,
      background: getComputedStyle(document.body).backgroundColor,
      inline: document.body.dataset['inline'] ?? null,
    }));
    expect(applied).toEqual({ color: 'rgb(1, 2, 3)', background: 'rgba(0, 0, 0, 0)', inline: null });

    const cookies = await context.cookies(h.kc);
    const session = cookies.find((c) => c.name === '__Host-keyclient-session');
    expect(session).toMatchObject({ secure: true, httpOnly: true, sameSite: 'Strict', path: '/' });
    expect(cookies.find((c) => c.name === '__Host-keyclient-tx')).toBeUndefined();

    const me = await page.evaluate(async () => {
      const r = await fetch('/me', { headers: { accept: 'application/json' } });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    });
    expect(me.status).toBe(200);
    expect(me.body['username']).toBe('ada.admin@demo.test');

    const api = await page.evaluate(async () => {
      const r = await fetch('/api/v1/operations/op-7/approvals', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-keyserver-csrf': '1' },
        body: '{"comment":"ok"}',
      });
      return r.status;
    });
    expect(api).toBe(201);
    const got = h.upstream.received[h.upstream.received.length - 1];
    expect(got.url).toBe('/api/v1/operations/op-7/approvals');
    expect(String(got.headers.authorization)).toMatch(/^Bearer ey/);
    expect(got.headers.cookie).toBeUndefined();

    const logout = await page.evaluate(async () => {
      const r = await fetch('/logout', { method: 'POST', headers: { accept: 'application/json', 'x-keyserver-csrf': '1' } });
      return (await r.json()) as { redirectTo: string };
    });
    await page.goto(logout.redirectTo);
    await page.waitForURL(`${h.kc}/`);
    const after = await page.evaluate(async () => (await fetch('/me')).status);
    expect(after).toBe(401);
    await Promise.all(captured);
    expect(h.seen.length).toBeGreaterThanOrEqual(6);
    await context.close();
    await h.harvestTokens();
    expectNoSecretsLeaked(h);
  });

  it('fail a page on another site that points the browser at /login (an image, a link) does not sign the user out', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${h.kc}/login?returnTo=%2Fkeys`);
    await page.fill('#username', 'ada.admin@demo.test');
    await page.fill('#password', 'demo-password');
    await Promise.all([page.waitForURL(`${h.kc}/keys`), page.click('button[type=submit]')]);
    const session = async () => (await context.cookies(h.kc)).find((c) => c.name === '__Host-keyclient-session')?.value;
    const before = await session();
    expect(before).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // Without the provider's own session (127.0.0.1), the provider asks for a password the user never types.
    await context.clearCookies({ domain: '127.0.0.1' });
    // Another site: 127.0.0.1 is not the site of http://localhost.
    const evil = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<img src="${h.kc}/login"><a id="prize" href="${h.kc}/login?returnTo=%2Fkeys">win a prize</a>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    try {
      await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`, { waitUntil: 'networkidle' });
      const provider = new URL(h.emulator.baseUrl).origin;
      await Promise.all([page.waitForURL((u) => u.origin === provider), page.click('#prize')]);
      // The user leaves the sign-in page and goes back to the console: still signed in, with the same session.
      await page.goto(`${h.kc}/keys`);
      const me = await page.evaluate(async () => (await fetch('/me')).status);
      expect({ me, session: await session() }).toEqual({ me: 200, session: before });
    } finally {
      evil.closeAllConnections();
      await new Promise((resolve) => evil.close(resolve));
      await context.close();
    }
  });
});
