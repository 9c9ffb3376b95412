import type { Browser, Response as PageResponse } from 'playwright-core';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { launchChromium, newSession, readableSecrets, signIn, type UserSession } from './browser-support';
import { call, operationBody, userToken } from './operations-support';

// ADR 0047 and the console's own defences, in Chromium against the real keyclient: what an orderer writes reaches an
// approver's page as visible escapes (never as reordered or hidden text, never as markup), the CSP the keyclient sends
// for the SPA allows no inline or eval'd script and no framing, a page of another origin cannot frame the console, and
// no answer the page receives holds a token (the keyclient, the BFF, keeps them).

/** Characters a reader does not see as themselves (ADR 0047): controls but tab/newline, bidi, zero-width, separators. */
// eslint-disable-next-line no-control-regex
const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\p{Cf}\u2028\u2029]/u;
const JWT = /eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+/;

describe('what an approver sees in the console (Chromium)', () => {
  let p: RunningPlatform;
  let browser: Browser;
  let ann: UserSession;
  let opId = '';
  const seen: { url: string; body: string }[] = [];
  /** Markup, a script, an ESC sequence, a right-to-left override, zero-width and isolate characters, an 8-bit CSI. */
  const DESCRIPTION = 'Release <img src=x onerror="document.title=1"> <script>document.title=2</script> \u001b[2K file \u202egnp.exe\u202c u\u200bsages \u2066x\u2069 \u009b2J';
  const PIPELINE = 'nightly \u202egnp.exe\u202c \u200bbuild';

  beforeAll(async () => {
    p = await startPlatform({ keyclient: true });
    browser = await launchChromium();
    const r = await call<{ id: string }>(p.env.urls.api, await userToken(p, 'otto.orderer@demo.test'), 'POST', '/api/v1/operations', {
      ...operationBody('demo-fw-prod', 1, { description: DESCRIPTION, provenance: { pipeline: PIPELINE, url: 'https://ci.example.test/run/1' } }),
    });
    expect(r.status).toBe(201);
    opId = r.body.id;
    ann = await newSession(browser, p);
    const origin = new URL(p.env.urls.keyclient).origin;
    ann.page.on('response', (res: PageResponse) => {
      if (!res.url().startsWith(origin)) return;
      void res.text().then(
        (body) => seen.push({ url: res.url(), body }),
        () => undefined,
      );
    });
    await signIn(ann, p, 'ann.approver@demo.test');
  }, 180_000);

  afterAll(async () => {
    await ann?.context.close().catch(() => undefined);
    await browser?.close();
    await p?.stop();
  }, 60_000);

  it('ok the approvals page names every hidden character as \\u{...}, shows markup as text, and runs none of it', async () => {
    const { page } = ann;
    await page.goto(`${p.env.urls.keyclient}/approvals`);
    const card = page.locator(`[aria-labelledby="op-${opId}"]`);
    await card.waitFor();
    const text = (await card.innerText()).replace(/\s+/g, ' ');
    for (const marked of ['\\u{1b}[2K', '\\u{202e}gnp.exe\\u{202c}', 'u\\u{200b}sages', '\\u{2066}x\\u{2069}', '\\u{9b}2J', 'nightly \\u{202e}gnp.exe\\u{202c} \\u{200b}build']) {
      expect(text).toContain(marked);
    }
    expect(text).toContain('<img src=x onerror="document.title=1">');
    // Nothing hidden anywhere in the page's text or attributes, and no element made from the description.
    const all = (await page.evaluate(
      `(() => { const out = [document.body.innerText]; for (const e of document.querySelectorAll('*')) for (const a of e.attributes) out.push(a.value); return out.join('\\n'); })()`,
    )) as string;
    expect(all).not.toMatch(HIDDEN);
    expect(await page.locator('img[src="x"]').count()).toBe(0);
    // The provenance URL is https: linked (core/safe-url.ts links nothing else).
    expect(await card.getByRole('link', { name: 'open the run' }).getAttribute('href')).toBe('https://ci.example.test/run/1');
    expect(await page.title()).not.toMatch(/^[12]$/);
    expect(ann.cspViolations).toEqual([]);
  });

  it('ok the CSP of the console: no inline or eval script, no framing, one nonce for styles; X-Frame-Options DENY', async () => {
    const res = await ann.page.goto(`${p.env.urls.keyclient}/approvals`);
    const h = res?.headers() ?? {};
    const csp = h['content-security-policy'] ?? '';
    const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));
    expect(directives.get('script-src')).toEqual(["'self'"]);
    expect(directives.get('frame-ancestors')).toEqual(["'none'"]);
    expect(directives.get('object-src')).toEqual(["'none'"]);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|unsafe-hashes|\*/);
    expect(directives.get('style-src')?.filter((s) => s.startsWith("'nonce-"))).toHaveLength(1);
    expect(h['x-frame-options']).toBe('DENY');
  });

  it('fail a page of another origin framing the console: Chromium shows no console inside it', async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(`${p.env.urls.emulator}/`).catch(() => undefined); // any other origin
    await page.setContent(`<iframe id="f" src="${p.env.urls.keyclient}/approvals" width="800" height="600"></iframe>`);
    await page.waitForTimeout(1500);
    const framed = page.frames().filter((f) => f !== page.mainFrame());
    for (const f of framed) {
      const content = await f.evaluate('document.querySelector("app-root") ? "console" : "none"').catch(() => 'blocked');
      expect(content).not.toBe('console');
    }
    await ctx.close();
  });

  it('ok nothing the page received or can read holds a token', async () => {
    await ann.page.goto(`${p.env.urls.keyclient}/operations/${opId}`);
    await ann.page.getByText('gnp.exe').first().waitFor();
    await ann.page.waitForLoadState('networkidle').catch(() => undefined);
    expect(await readableSecrets(ann.page)).toEqual({ localStorage: 0, sessionStorage: 0, documentCookie: '', jwtInDom: false });
    expect(seen.length).toBeGreaterThan(3);
    expect(seen.filter((s) => JWT.test(s.body)).map((s) => s.url)).toEqual([]);
  });
});
