import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { type AddressInfo, createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { createKeyclientApp } from '../src/app/create-keyclient-app';
import { SpaController } from '../src/app/spa.controller';
import { ProxyService } from '../src/proxy/proxy.service';
import { CALLBACK_PATH } from '../src/config/keyclient-config';
import { MAX_PENDING_LOGINS } from '../src/oidc/oidc.service';
import { MAX_SESSIONS_PER_IDENTITY, sessionIdFromCookie } from '../src/session/session.service';
import type { Browser, SeenResponse } from './browser';
import { DEMO_TENANT, Harness } from './harness';
import { expectNoSecretsLeaked } from './leak-scan';

jest.setTimeout(60_000);

const h = new Harness();

function problemCode(res: SeenResponse): string {
  expect(res.headers['content-type']).toContain('application/problem+json');
  return (JSON.parse(res.body) as { code: string }).code;
}

function setCookieLine(res: SeenResponse, name: string): string | undefined {
  return (res.headers['set-cookie'] ?? []).find((c) => c.startsWith(`${name}=`));
}

function jwtPayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8')) as Record<string, unknown>;
}

async function signedIn(user?: string): Promise<{ browser: Browser; cookie: string }> {
  const browser = h.browser();
  const res = await h.login(browser, { user });
  expect(res.status).toBe(200); // the SPA's index.html after the callback redirect
  const cookie = browser.cookie(h.kcHost, h.sessionCookieName);
  expect(cookie).toBeDefined();
  return { browser, cookie: cookie!.value };
}

/** The transaction the keyclient sealed into the browser's cookie (the test knows the key). */
function transactionOf(browser: Browser) {
  const value = browser.cookie(h.kcHost, h.txCookieName)?.value;
  return h.keyclient.context.oidc.openTransactions(value).at(-1) ?? null;
}

beforeAll(async () => {
  await h.start({ env: { PROXY_MAX_BODY_BYTES: '4096' } });
});

afterAll(async () => {
  await h.stop();
});

describe('keyclient sign-in', () => {
  it('runs the code flow with PKCE S256, state and nonce and sets a __Host- session cookie', async () => {
    const browser = h.browser();
    const start = await browser.request(`${h.kc}/login?returnTo=%2Foperations%2F42`, { navigation: true });
    expect(start.status).toBe(302);
    const authorize = new URL(start.headers.location!);
    expect(authorize.href.startsWith(h.emulator.authorizationEndpoint)).toBe(true);
    const p = authorize.searchParams;
    expect(p.get('response_type')).toBe('code');
    expect(p.get('client_id')).toBe(DEMO_TENANT.keyserverApp.clientId);
    expect(p.get('code_challenge_method')).toBe('S256');
    expect(p.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(p.get('state')).toBeTruthy();
    expect(p.get('nonce')).toBeTruthy();
    expect(p.get('redirect_uri')).toBe(`${h.kc}${CALLBACK_PATH}`);
    expect(p.get('scope')!.split(' ').sort()).toEqual(
      ['email', 'offline_access', 'openid', 'profile', `api://${DEMO_TENANT.keyserverApp.clientId}/keyserver`].sort(),
    );
    const tx = setCookieLine(start, h.txCookieName)!;
    expect(tx).toMatch(/; Path=\//);
    expect(tx).toMatch(/; HttpOnly/);
    expect(tx).toMatch(/; Secure/);
    expect(tx).toMatch(/; SameSite=Lax/);
    expect(tx).toMatch(/; Max-Age=600/);
    expect(transactionOf(browser)?.returnTo).toBe('/operations/42');

    const callback = await h.login(browser, { startUrl: authorize.href, stopAtCallback: true });
    const done = await browser.navigate(callback.stoppedBefore!, { initiator: h.emulator.baseUrl, stopBefore: () => true });
    expect(done.status).toBe(302);
    expect(done.headers.location).toBe('/operations/42');
    const session = setCookieLine(done, h.sessionCookieName)!;
    expect(session).toMatch(/^__Host-keyclient-session=[A-Za-z0-9_-]{43};/);
    expect(session).toMatch(/; Path=\//);
    expect(session).toMatch(/; HttpOnly/);
    expect(session).toMatch(/; Secure/);
    expect(session).toMatch(/; SameSite=Strict/);
    expect(session).not.toMatch(/Domain=/i);
    expect(setCookieLine(done, h.txCookieName)).toMatch(/Expires=Thu, 01 Jan 1970/);
    expect(browser.cookie(h.kcHost, h.txCookieName)).toBeUndefined();
    expect(browser.rejectedCookies).toEqual([]);

    const [tokens] = await h.harvestTokens();
    expect(jwtPayload(tokens.accessToken)['aud']).toBe(DEMO_TENANT.keyserverApp.clientId);
    expect(String(jwtPayload(tokens.accessToken)['scp']).split(' ')).toContain('keyserver');
    expect(tokens.refreshToken).toBeTruthy();
  });

  it('answers /me with the identity facts and never a token', async () => {
    const { browser } = await signedIn('ann.approver@demo.test');
    const me = await h.spa(browser, 'GET', '/me');
    expect(me.status).toBe(200);
    const body = JSON.parse(me.body) as Record<string, unknown>;
    const ann = DEMO_TENANT.users.find((u) => u.username === 'ann.approver@demo.test')!;
    expect(body).toMatchObject({ displayName: ann.name, username: ann.username, oid: ann.oid, tid: DEMO_TENANT.tenant.id, source: 'id_token' });
    expect(Object.keys(body).some((k) => /token/i.test(k))).toBe(false);

    h.upstream.me = {
      subjectId: 'subj-ann',
      oid: ann.oid,
      natures: ['approver'],
      permissions: ['operations:approve'],
      keyPermissions: { 'fw-key-1': ['APPROVE'] },
      accessToken: 'must-not-pass',
      debug: { idToken: 'must-not-pass-either', echo: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig' },
    };
    try {
      const viaApi = JSON.parse((await h.spa(browser, 'GET', '/me')).body) as Record<string, unknown>;
      expect(viaApi['source']).toBe('api');
      expect(viaApi['roles']).toEqual(['approver']);
      expect(viaApi['api']).toMatchObject({ subjectId: 'subj-ann', permissions: ['operations:approve'], keyPermissions: { 'fw-key-1': ['APPROVE'] } });
      expect(JSON.stringify(viaApi)).not.toContain('must-not-pass');
      expect(JSON.stringify(viaApi)).not.toContain('eyJhbGciOiJSUzI1NiJ9');
    } finally {
      h.upstream.me = null;
    }
  });

  it('refuses /me and the proxy without a session (401 problem+json)', async () => {
    const browser = h.browser();
    expect(problemCode(await h.spa(browser, 'GET', '/me'))).toBe('unauthenticated');
    const api = await h.spa(browser, 'GET', '/api/keys');
    expect(api.status).toBe(401);
    expect(problemCode(api)).toBe('unauthenticated');
  });
});

describe('keyclient callback attacks', () => {
  it.each([
    ['fail a callback without state', (u: URL) => u.searchParams.delete('state')],
    ['fail a callback with another state (a link on another site)', (u: URL) => u.searchParams.set('state', 'forged-state-value')],
    ['fail a callback with the state twice', (u: URL) => u.searchParams.append('state', 'forged-state-value')],
  ])('%s is refused and spends no flow of this browser: its own callback still completes, once', async (_name, forge) => {
    const browser = h.browser();
    const cb = await h.login(browser, { stopAtCallback: true });
    const url = new URL(cb.stoppedBefore!);
    forge(url);
    const res = await browser.navigate(url.href, { initiator: 'https://evil.example' });
    expect([res.status, res.body.includes('state_mismatch')]).toEqual([400, true]);
    expect(browser.cookie(h.kcHost, h.sessionCookieName)).toBeUndefined();
    const genuine = await browser.navigate(cb.stoppedBefore!, { initiator: h.emulator.baseUrl, stopBefore: () => true });
    expect(genuine.status).toBe(302);
    // Used once: the genuine callback spent its flow.
    expect(browser.cookie(h.kcHost, h.txCookieName)).toBeUndefined();
    const replay = await browser.navigate(cb.stoppedBefore!, { initiator: h.emulator.baseUrl });
    expect([replay.status, replay.body.includes('missing_transaction')]).toEqual([400, true]);
  });

  it('rejects a replayed callback after a successful sign-in', async () => {
    const browser = h.browser();
    const cb = await h.login(browser, { stopAtCallback: true });
    const ok = await browser.navigate(cb.stoppedBefore!, { initiator: h.emulator.baseUrl, stopBefore: () => true });
    expect(ok.status).toBe(302);
    const first = browser.cookie(h.kcHost, h.sessionCookieName)!.value;
    const replay = await browser.navigate(cb.stoppedBefore!, { initiator: h.emulator.baseUrl });
    expect(replay.status).toBe(400);
    expect(replay.body).toContain('missing_transaction');
    // Even with the old transaction cookie put back, the code cannot be redeemed twice.
    const attacker = h.browser();
    attacker.setCookie(h.kcHost, h.txCookieName, setCookieTx(cb), 'lax');
    const again = await attacker.navigate(cb.stoppedBefore!, { initiator: h.emulator.baseUrl });
    expect(again.status).toBe(400);
    expect(attacker.cookie(h.kcHost, h.sessionCookieName)).toBeUndefined();
    expect((await h.spa(browser, 'GET', '/me')).status).toBe(200);
    expect(browser.cookie(h.kcHost, h.sessionCookieName)!.value).toBe(first);
  });

  it('rejects an authorization code injected from another transaction (PKCE binds it)', async () => {
    const victim = h.browser();
    const victimCb = new URL((await h.login(victim, { stopAtCallback: true })).stoppedBefore!);
    const attacker = h.browser();
    const attackerCb = new URL((await h.login(attacker, { user: 'nora.nobody@demo.test', stopAtCallback: true })).stoppedBefore!);
    const injected = new URL(victimCb.href);
    injected.searchParams.set('code', attackerCb.searchParams.get('code')!);
    const res = await victim.navigate(injected.href, { initiator: h.emulator.baseUrl });
    expect(res.status).toBe(400);
    expect(res.body).toContain('token_exchange_failed');
    expect(victim.cookie(h.kcHost, h.sessionCookieName)).toBeUndefined();
  });

  it('rejects an ID token whose nonce does not match the transaction', async () => {
    const browser = h.browser();
    const start = await browser.request(`${h.kc}/login`, { navigation: true });
    const tx = transactionOf(browser)!;
    expect(tx).not.toBeNull();
    // Same state and PKCE challenge, but the authorization request carries another nonce.
    const forged = new URL(start.headers.location!);
    expect(forged.searchParams.get('nonce')).toBe(tx.nonce);
    forged.searchParams.set('nonce', 'attacker-chosen-nonce');
    const res = await h.login(browser, { startUrl: forged.href });
    expect(res.url.startsWith(`${h.kc}${CALLBACK_PATH}`)).toBe(true);
    expect(res.status).toBe(400);
    expect(res.body).toContain('id_token_invalid');
    expect(browser.cookie(h.kcHost, h.sessionCookieName)).toBeUndefined();
  });

  it.each([
    ['fail scheme-relative', '//evil.example'],
    ['fail backslash', '/\\evil.example'],
    ['fail absolute URL', 'https://evil.example/'],
    ['fail javascript URL', 'javascript:alert(1)'],
    ['fail encoded slashes', '/%2f%2fevil.example'],
    ['fail API path', '/api/v1/keys'],
  ])('%s return path falls back to /', async (_name, returnTo) => {
    const browser = h.browser();
    await browser.request(`${h.kc}/login?returnTo=${encodeURIComponent(returnTo)}`, { navigation: true });
    expect(transactionOf(browser)?.returnTo).toBe('/');
  });

  it('redirects to / after signing in with an open-redirect return path', async () => {
    const browser = h.browser();
    const cb = await h.login(browser, { returnTo: '//evil.example/phish', stopAtCallback: true });
    const done = await browser.navigate(cb.stoppedBefore!, { initiator: h.emulator.baseUrl, stopBefore: () => true });
    expect(done.status).toBe(302);
    expect(done.headers.location).toBe('/');
  });

  it('never reflects provider error parameters into the page', async () => {
    const browser = h.browser();
    const cb = new URL((await h.login(browser, { stopAtCallback: true })).stoppedBefore!);
    const evil = new URL(`${h.kc}${CALLBACK_PATH}`);
    evil.searchParams.set('error', '<script>alert(1)</script>');
    evil.searchParams.set('error_description', '<img src=x onerror=alert(2)>Call +1-555-SCAM');
    evil.searchParams.set('state', cb.searchParams.get('state')!);
    const res = await browser.navigate(evil.href, { initiator: h.emulator.baseUrl });
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toContain('text/html');
    expect(res.body).toContain('provider_error');
    for (const needle of ['<script>alert', 'onerror', 'alert(', 'SCAM', '%3Cscript', '&lt;script']) {
      expect(res.body).not.toContain(needle);
    }
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
  });
});

describe('keyclient sign-ins in two tabs of one browser', () => {
  // Two tabs whose session ended both go to /login (the console does on a 401): each flow has its own state, PKCE
  // verifier and nonce, and the browser has one cookie jar.
  it.each([
    ['ok the first tab completes first', [0, 1]],
    ['ok the second tab completes first', [1, 0]],
  ])('%s: both callbacks sign in, each to its own return path', async (_name, order) => {
    const browser = h.browser();
    const callbacks = [
      (await h.login(browser, { returnTo: '/keys/k1', stopAtCallback: true })).stoppedBefore!,
      (await h.login(browser, { returnTo: '/operations/42', stopAtCallback: true })).stoppedBefore!,
    ];
    const returns = ['/keys/k1', '/operations/42'];
    const outcomes = [];
    for (const i of order) {
      const done = await browser.navigate(callbacks[i], { initiator: h.emulator.baseUrl, stopBefore: () => true });
      outcomes.push([done.status, done.headers.location ?? done.body.match(/<code>([a-z_]+)<\/code>/)?.[1]]);
    }
    expect(outcomes).toEqual(order.map((i) => [302, returns[i]]));
    expect((await h.spa(browser, 'GET', '/me')).status).toBe(200);
    // Both flows spent: a replay of either finds nothing.
    const replay = await browser.navigate(callbacks[order[0]], { initiator: h.emulator.baseUrl });
    expect([replay.status, replay.body.includes('missing_transaction')]).toEqual([400, true]);
  });

  it(`fail a page that sends the browser to /login again and again keeps at most ${MAX_PENDING_LOGINS} flows in one bounded cookie`, async () => {
    const browser = h.browser();
    const callbacks: string[] = [];
    for (let i = 0; i < MAX_PENDING_LOGINS + 2; i++) {
      callbacks.push((await h.login(browser, { returnTo: `/keys/${'k'.repeat(120)}${i}`, stopAtCallback: true })).stoppedBefore!);
    }
    const txCookies = browser.cookies.filter((c) => c.name.includes('keyclient-tx'));
    expect(txCookies.map((c) => c.name)).toEqual([h.txCookieName]);
    expect(txCookies[0].value.length).toBeLessThan(4000);
    // The oldest flow was dropped; the newest still completes.
    const oldest = await browser.navigate(callbacks[0], { initiator: h.emulator.baseUrl, stopBefore: () => true });
    expect([oldest.status, oldest.body.includes('state_mismatch')]).toEqual([400, true]);
    const newest = await browser.navigate(callbacks[callbacks.length - 1], { initiator: h.emulator.baseUrl, stopBefore: () => true });
    expect([newest.status, newest.headers.location]).toEqual([302, `/keys/${'k'.repeat(120)}${MAX_PENDING_LOGINS + 1}`]);
  });
});

/** The raw transaction cookie value the keyclient set for a login (captured from the jar history). */
function setCookieTx(cb: SeenResponse): string {
  void cb;
  const start = [...h.seen].reverse().find((r) => r.url.startsWith(`${h.kc}/login`) && setCookieLine(r, h.txCookieName));
  return setCookieLine(start!, h.txCookieName)!.split(';')[0].split('=').slice(1).join('=');
}

describe('keyclient sessions', () => {
  it('issues a new session id at the callback and never adopts one the browser brought (fixation)', async () => {
    // An id the attacker chose and knows, planted before the victim signs in: it must never become her session.
    const planted = 'P'.repeat(43);
    const victim = h.browser();
    victim.setCookie(h.kcHost, h.sessionCookieName, planted);
    await h.login(victim);
    const victimId = victim.cookie(h.kcHost, h.sessionCookieName)!.value;
    expect(victimId).not.toBe(planted);
    const me = JSON.parse((await h.spa(victim, 'GET', '/me')).body) as { username: string };
    expect(me.username).toBe('ada.admin@demo.test');
    expect(await h.db.prisma.bffSession.count({ where: { id: sessionIdFromCookie(planted) } })).toBe(0);
    const replay = h.browser();
    replay.setCookie(h.kcHost, h.sessionCookieName, planted);
    expect((await h.spa(replay, 'GET', '/me')).status).toBe(401);
  });

  it('ends the session the browser sent when a callback completes (a new id on authentication)', async () => {
    const { browser, cookie } = await signedIn('nora.nobody@demo.test');
    // A flow started where the Strict cookie stayed home (a cross-site navigation), completed same-site.
    const start = await browser.request(`${h.kc}/login`, { navigation: true, initiator: 'https://elsewhere.example' });
    expect(start.status).toBe(302);
    const cb = await h.login(browser, { startUrl: start.headers.location!, stopAtCallback: true });
    const done = await browser.navigate(cb.stoppedBefore!, { initiator: h.kc, stopBefore: () => true });
    expect(done.status).toBe(302);
    expect(browser.cookie(h.kcHost, h.sessionCookieName)!.value).not.toBe(cookie);
    expect(await h.db.prisma.bffSession.count({ where: { id: sessionIdFromCookie(cookie) } })).toBe(0);
    // The provider's own session signed the same user in again (single sign-on, no form).
    expect(JSON.parse((await h.spa(browser, 'GET', '/me')).body)).toMatchObject({ username: 'nora.nobody@demo.test' });
  });

  it('keeps at most MAX_SESSIONS_PER_IDENTITY sessions per user: a script signing in again and again ends the oldest', async () => {
    const user = 'otto.orderer@demo.test';
    const other = await signedIn('ann.approver@demo.test');
    const browsers: Browser[] = [];
    for (let i = 0; i < MAX_SESSIONS_PER_IDENTITY + 3; i++) {
      // A fresh cookie jar each time: no session cookie comes back to be ended by the callback.
      const b = h.browser();
      await h.login(b, { user });
      browsers.push(b);
    }
    const oid = (JSON.parse((await h.spa(browsers[browsers.length - 1], 'GET', '/me')).body) as { oid: string }).oid;
    const rows = (await h.db.prisma.bffSession.findMany()).filter((r) => r.oid === oid);
    expect(rows).toHaveLength(MAX_SESSIONS_PER_IDENTITY);
    const statuses = await Promise.all(browsers.map(async (b) => (await h.spa(b, 'GET', '/me')).status));
    expect(statuses).toEqual([...Array(3).fill(401), ...Array(MAX_SESSIONS_PER_IDENTITY).fill(200)]);
    // Another user's session is not touched.
    expect((await h.spa(other.browser, 'GET', '/me')).status).toBe(200);
  });

  it('stores only the hash of the cookie value and keeps tokens encrypted at rest', async () => {
    const { cookie } = await signedIn();
    const row = await h.db.prisma.bffSession.findUnique({ where: { id: sessionIdFromCookie(cookie) } });
    expect(row).not.toBeNull();
    expect(await h.db.prisma.bffSession.count({ where: { id: cookie } })).toBe(0);
    const raw = Buffer.from(row!.tokenCiphertext);
    const tokens = h.tokenBox().openJson<{ accessToken: string; refreshToken: string }>(raw, row!.id)!;
    expect(tokens.accessToken.split('.')).toHaveLength(3);
    expect(raw.includes(Buffer.from(tokens.accessToken.slice(0, 40)))).toBe(false);
    expect(raw.includes(Buffer.from(tokens.refreshToken))).toBe(false);
    expect(raw.toString('latin1')).not.toMatch(/eyJ[A-Za-z0-9_-]{20}/);
    // Sealed to this row: the same ciphertext under another session id does not open.
    expect(h.tokenBox().openJson(raw, sessionIdFromCookie('x'.repeat(43)))).toBeNull();
  });

  it('ends a session whose idle deadline has passed', async () => {
    const { browser, cookie } = await signedIn();
    await h.db.prisma.bffSession.update({
      where: { id: sessionIdFromCookie(cookie) },
      data: { idleExpiresAt: new Date(Date.now() - 1000) },
    });
    const res = await h.spa(browser, 'GET', '/me');
    expect(res.status).toBe(401);
    expect(problemCode(res)).toBe('unauthenticated');
    expect(await h.db.prisma.bffSession.count({ where: { id: sessionIdFromCookie(cookie) } })).toBe(0);
  });

  it('ends a session whose absolute deadline has passed even while active', async () => {
    const { browser, cookie } = await signedIn();
    await h.db.prisma.bffSession.update({
      where: { id: sessionIdFromCookie(cookie) },
      data: { absoluteExpiresAt: new Date(Date.now() - 1000) },
    });
    expect((await h.spa(browser, 'GET', '/api/keys')).status).toBe(401);
  });

  it('logs out: destroys the session and redirects through the provider end_session endpoint', async () => {
    const { browser, cookie } = await signedIn();
    const res = await browser.request(`${h.kc}/logout`, {
      method: 'POST',
      navigation: true,
      headers: { 'x-keyserver-csrf': '1', origin: h.kc },
    });
    expect(res.status).toBe(303);
    const target = new URL(res.headers.location!);
    expect(`${target.origin}${target.pathname}`).toBe(h.emulator.endSessionEndpoint);
    expect(target.searchParams.get('post_logout_redirect_uri')).toBe(`${h.kc}/`);
    expect(target.searchParams.get('client_id')).toBe(DEMO_TENANT.keyserverApp.clientId);
    expect(target.searchParams.has('id_token_hint')).toBe(false);
    expect(setCookieLine(res, h.sessionCookieName)).toMatch(/Expires=Thu, 01 Jan 1970/);
    expect(await h.db.prisma.bffSession.count({ where: { id: sessionIdFromCookie(cookie) } })).toBe(0);
    const back = await browser.navigate(res.headers.location!, { initiator: h.kc });
    expect(back.url).toBe(`${h.kc}/`);
    expect(back.status).toBe(200);
    // The old cookie value is dead even if replayed.
    const replay = h.browser();
    replay.setCookie(h.kcHost, h.sessionCookieName, cookie);
    expect((await h.spa(replay, 'GET', '/me')).status).toBe(401);
  });

  it('answers logout with JSON for the SPA when asked', async () => {
    const { browser } = await signedIn();
    const res = await h.spa(browser, 'POST', '/logout');
    expect(res.status).toBe(200);
    expect((JSON.parse(res.body) as { redirectTo: string }).redirectTo.startsWith(h.emulator.endSessionEndpoint)).toBe(true);
    expect((await h.spa(browser, 'GET', '/me')).status).toBe(401);
  });
});

describe('keyclient login and logout across sites', () => {
  const sessionAlive = async (browser: Browser, cookie: string) => ({
    cookie: browser.cookie(h.kcHost, h.sessionCookieName)?.value,
    me: (await h.spa(browser, 'GET', '/me')).status,
    rows: await h.db.prisma.bffSession.count({ where: { id: sessionIdFromCookie(cookie) } }),
  });

  it('fail a cross-site top-level navigation to /login does not end or clear the session (logout CSRF)', async () => {
    const { browser, cookie } = await signedIn();
    // window.location = 'https://keyclient/login' from another site: the Strict session cookie stays home.
    const res = await browser.navigate(`${h.kc}/login?returnTo=%2Fapprovals`, {
      initiator: 'https://evil.example',
      headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' },
      stopBefore: () => true,
    });
    expect(res.status).toBe(302);
    expect(setCookieLine(res, h.sessionCookieName)).toBeUndefined();
    expect(await sessionAlive(browser, cookie)).toEqual({ cookie, me: 200, rows: 1 });
  });

  it.each([
    ['fail an image from a same-site page', { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' }],
    ['fail a frame', { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'iframe' }],
    ['fail a fetch', { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' }],
  ])('%s to /login that carries the session cookie is refused and leaves the session alone', async (_name, headers) => {
    const { browser, cookie } = await signedIn();
    const res = await browser.request(`${h.kc}/login`, { headers });
    expect({ status: res.status, code: problemCode(res), setCookie: res.headers['set-cookie'] }).toEqual({ status: 403, code: 'csrf_rejected', setCookie: undefined });
    expect(await sessionAlive(browser, cookie)).toEqual({ cookie, me: 200, rows: 1 });
  });

  it.each([
    ['ok an allow-listed return path', '/operations/42', '/operations/42'],
    ['ok no return path', undefined, '/'],
    ['fail an open-redirect return path', '//evil.example/phish', '/'],
  ])('%s: /login with a valid session goes back to the SPA, starts no flow and keeps the session', async (_name, returnTo, location) => {
    const { browser, cookie } = await signedIn();
    const query = returnTo === undefined ? '' : `?returnTo=${encodeURIComponent(returnTo)}`;
    const res = await browser.request(`${h.kc}/login${query}`, {
      navigation: true,
      headers: { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' },
    });
    expect({ status: res.status, location: res.headers.location, setCookie: res.headers['set-cookie'], cache: res.headers['cache-control'] }).toEqual({
      status: 302,
      location,
      setCookie: undefined,
      cache: 'no-store',
    });
    expect(browser.cookie(h.kcHost, h.txCookieName)).toBeUndefined();
    expect(await sessionAlive(browser, cookie)).toEqual({ cookie, me: 200, rows: 1 });
  });

  it('fail a subresource request to the callback does not use up the login transaction', async () => {
    const browser = h.browser();
    const cb = await h.login(browser, { stopAtCallback: true });
    const tx = browser.cookie(h.kcHost, h.txCookieName)?.value;
    const img = await browser.request(cb.stoppedBefore!, { headers: { 'sec-fetch-site': 'same-site', 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' } });
    expect({ status: img.status, code: problemCode(img), setCookie: img.headers['set-cookie'] }).toEqual({ status: 403, code: 'csrf_rejected', setCookie: undefined });
    expect(browser.cookie(h.kcHost, h.txCookieName)?.value).toBe(tx);
    const done = await browser.navigate(cb.stoppedBefore!, { initiator: h.emulator.baseUrl, stopBefore: () => true });
    expect(done.status).toBe(302);
    expect((await h.spa(browser, 'GET', '/me')).status).toBe(200);
  });

  it('fail a cross-site form POST to /logout is refused and the session stays usable', async () => {
    const { browser, cookie } = await signedIn();
    for (const initiator of ['https://evil.example', h.kc]) {
      // From another site (the Strict cookie stays home) and from a same-site page (it is sent): never a logout.
      const res = await browser.navigate(`${h.kc}/logout`, {
        method: 'POST',
        initiator,
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
        body: '',
      });
      expect({ initiator, status: res.status, code: problemCode(res), setCookie: res.headers['set-cookie'] }).toEqual({ initiator, status: 403, code: 'csrf_rejected', setCookie: undefined });
    }
    expect(await sessionAlive(browser, cookie)).toEqual({ cookie, me: 200, rows: 1 });
  });
});

describe('keyclient CSRF defence', () => {
  it.each([
    ['fail no custom header', { origin: 'SELF' }],
    ['fail custom header with a foreign Origin', { 'x-keyserver-csrf': '1', origin: 'https://evil.example' }],
    ['fail custom header with Origin null', { 'x-keyserver-csrf': '1', origin: 'null' }],
    ['fail custom header, no Origin, cross-site fetch metadata', { 'x-keyserver-csrf': '1', 'sec-fetch-site': 'cross-site' }],
    ['fail custom header with a wrong value', { 'x-keyserver-csrf': 'true', origin: 'SELF' }],
  ])('%s', async (_name, headers) => {
    const { browser } = await signedIn();
    const before = h.upstream.received.length;
    const h2: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) h2[k] = v === 'SELF' ? h.kc : v;
    const res = await browser.request(`${h.kc}/api/v1/operations`, {
      method: 'POST',
      body: '{"x":1}',
      headers: { 'content-type': 'application/json', ...h2 },
    });
    expect(res.status).toBe(403);
    expect(problemCode(res)).toBe('csrf_rejected');
    expect(h.upstream.received.length).toBe(before);
    const logout = await browser.request(`${h.kc}/logout`, { method: 'POST', headers: h2 });
    expect(problemCode(logout)).toBe('csrf_rejected');
    expect((await h.spa(browser, 'GET', '/me')).status).toBe(200);
  });

  it('ok accepts the custom header with Sec-Fetch-Site same-origin and no Origin', async () => {
    const { browser } = await signedIn();
    const res = await browser.request(`${h.kc}/api/v1/operations`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json', 'x-keyserver-csrf': '1', 'sec-fetch-site': 'same-origin' },
    });
    expect(res.status).toBe(201);
  });
});

describe('keyclient API proxy', () => {
  let browser: Browser;
  beforeAll(async () => {
    ({ browser } = await signedIn());
  });

  it('forwards an allow-listed route with the session bearer token and strips browser credentials', async () => {
    const before = h.upstream.received.length;
    const res = await h.spa(browser, 'GET', '/api/v1/keys/fw-key-1?include=certs', undefined, {
      authorization: 'Bearer attacker-token',
      forwarded: 'for=1.2.3.4;host=evil',
      'x-forwarded-for': '1.2.3.4',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-proto': 'http',
      'x-real-ip': '1.2.3.4',
      'x-request-id': 'req-from-spa-0001',
      'proxy-authorization': 'Basic eA==',
      te: 'trailers',
      'x-user-id': 'admin',
    });
    expect(res.status).toBe(200);
    expect(h.upstream.received.length).toBe(before + 1);
    const got = h.upstream.received[h.upstream.received.length - 1];
    expect(got.method).toBe('GET');
    expect(got.url).toBe('/api/v1/keys/fw-key-1?include=certs');
    const [tokens] = await h.harvestTokens().then((all) => all.filter((t) => got.headers.authorization === `Bearer ${t.accessToken}`));
    expect(tokens).toBeDefined();
    for (const name of ['cookie', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip', 'proxy-authorization', 'te', 'x-user-id']) {
      expect(got.headers[name]).toBeUndefined();
    }
    expect(got.headers['x-request-id']).toBe('req-from-spa-0001');
    expect(res.headers['x-request-id']).toBe('req-from-spa-0001');
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.headers['x-upstream-secret']).toBeUndefined();
    expect(res.headers['etag']).toBe('"v1"');
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('keeps using a fresh access token without refreshing it', async () => {
    await h.spa(browser, 'GET', '/api/v1/audit');
    const first = h.upstream.received[h.upstream.received.length - 1].headers.authorization;
    await h.spa(browser, 'GET', '/api/v1/audit');
    expect(h.upstream.received[h.upstream.received.length - 1].headers.authorization).toBe(first);
  });

  it('mints a request id when the SPA sends none and passes it to the API', async () => {
    const res = await h.spa(browser, 'GET', '/api/keys');
    expect(res.status).toBe(200);
    const got = h.upstream.received[h.upstream.received.length - 1];
    expect(got.headers['x-request-id']).toBe(res.headers['x-request-id']);
    expect(String(res.headers['x-request-id'])).toMatch(/^[0-9a-f-]{36}$/);
    expect(h.logs.some((l) => l.includes(String(res.headers['x-request-id'])))).toBe(true);
  });

  it('answers an oversize header with 431 problem+json header_too_large, not a bare status line', async () => {
    const res = await h.spa(browser, 'GET', '/api/keys', undefined, { 'x-pad': 'p'.repeat(20_000) });
    expect([res.status, String(res.headers['content-type']).split(';')[0], problemCode(res)]).toEqual([431, 'application/problem+json', 'header_too_large']);
  });

  it('never writes a JWT-shaped value from the path or a credential from the query into its log', async () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJsZWFrLW1lIn0.bGVha2VkLXNpZ25hdHVyZQ';
    await h.spa(browser, 'GET', `/api/v1/keys/${jwt}?access_token=${jwt}`);
    await h.spa(browser, 'GET', `/api/v1/nope/${jwt}`);
    const log = h.logs.join('');
    expect(log).toContain('/api/v1/keys/***');
    expect(log).not.toContain('bGVha2VkLXNpZ25hdHVyZQ');
    expect(log).not.toContain('eyJzdWIiOiJsZWFrLW1lIn0');
  });

  it('streams a request body to the API', async () => {
    const body = JSON.stringify({ keyId: 'fw-key-1', reason: 'x'.repeat(2000) });
    const res = await h.spa(browser, 'POST', '/api/v1/operations/op-1/approvals', body);
    expect(res.status).toBe(201);
    const got = h.upstream.received[h.upstream.received.length - 1];
    expect(got.body.toString('utf8')).toBe(body);
    expect(got.headers['content-type']).toBe('application/json');
  });

  it('refuses a body over the size cap with 413', async () => {
    const before = h.upstream.received.length;
    const res = await h.spa(browser, 'POST', '/api/v1/operations', JSON.stringify({ pad: 'x'.repeat(5000) }));
    expect(res.status).toBe(413);
    expect(problemCode(res)).toBe('payload_too_large');
    expect(h.upstream.received.length).toBe(before);
  });

  it('stops a chunked body (no Content-Length) at the size cap with 413', async () => {
    const before = h.upstream.received.length;
    const res = await h.spa(browser, 'POST', '/api/v1/operations', JSON.stringify({ pad: 'y'.repeat(6000) }), {
      'transfer-encoding': 'chunked',
    });
    expect(res.status).toBe(413);
    expect(problemCode(res)).toBe('payload_too_large');
    // The upstream request was aborted mid-body: the API never saw a complete request.
    expect(h.upstream.received.slice(before).some((r) => r.body.length > 4096)).toBe(false);
  });

  it.each([
    ['fail a POST without the CSRF header (403 csrf_rejected)', '/api/v1/operations', {}, 403],
    ['fail a POST without a session (401 unauthenticated)', '/api/v1/operations', { 'x-keyserver-csrf': '1', origin: 'KC' }, 401],
    ['fail a POST to a route off the list (403 proxy_route_forbidden)', '/api/v1/signorders', { 'x-keyserver-csrf': '1', origin: 'KC' }, 403],
    ['fail a POST to /logout without the CSRF header', '/logout', {}, 403],
  ])('%s whose body never ends: answered, then the connection closed within a second, not drained for minutes', async (_name, path, extra, status) => {
    const port = Number(new URL(h.kc).port);
    const headers = Object.entries(extra as Record<string, string>).map(([k, v]) => `${k}: ${v === 'KC' ? h.kc : v}\r\n`).join('');
    const socket = createConnection(port, '127.0.0.1');
    let answer = '';
    let sent = 0;
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    socket.on('error', () => undefined);
    const closedAfter = new Promise<number>((resolve) => {
      const started = Date.now();
      socket.on('close', () => resolve(Date.now() - started));
      setTimeout(() => resolve(Infinity), 4_000);
    });
    socket.write(`POST ${path} HTTP/1.1\r\nHost: ${new URL(h.kc).host}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n${headers}\r\n`);
    const chunk = Buffer.alloc(16_384, 0x20);
    const pump = setInterval(() => {
      if (socket.destroyed) return;
      socket.write(`${chunk.length.toString(16)}\r\n`);
      socket.write(chunk);
      socket.write('\r\n');
      sent += chunk.length;
    }, 5);
    try {
      expect(await closedAfter).toBeLessThan(3_000);
      expect(answer.split('\r\n')[0]).toBe(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Forbidden'}`);
      expect(answer).toMatch(/content-type: application\/problem\+json/i);
    } finally {
      clearInterval(pump);
      socket.destroy();
    }
    expect(sent).toBeGreaterThan(0);
  });

  it.each([
    ['fail sign order (legacy)', 'POST', '/api/signorders'],
    ['fail sign order v1', 'POST', '/api/v1/signorders'],
    ['fail firmware signing', 'POST', '/api/v1/firmware/signatures'],
    ['fail certificate issuance', 'POST', '/api/v1/certificates'],
    ['fail not allow-listed method', 'DELETE', '/api/v1/keys/fw-key-1'],
    ['fail unknown route', 'GET', '/api/v1/hsm/slots'],
  ])('%s is refused with 403', async (_name, method, path) => {
    const before = h.upstream.received.length;
    const res = await h.spa(browser, method, path, method === 'GET' || method === 'DELETE' ? undefined : '{}');
    expect(res.status).toBe(403);
    expect(problemCode(res)).toBe('proxy_route_forbidden');
    expect(h.upstream.received.length).toBe(before);
  });

  it.each([
    ['fail dot-dot segment', '/api/../api/signorders'],
    ['fail dot-dot after an allowed prefix', '/api/v1/keys/../../signorders'],
    ['fail encoded dot-dot slash', '/api/v1/keys/%2e%2e%2fsignorders'],
    ['fail upper-case encoded dots', '/api/v1/keys/%2E%2E/signorders'],
    ['fail double-encoded slash', '/api/v1/keys/a%252f..%252fsignorders'],
    ['fail backslash', '/api/v1/keys\\..\\signorders'],
    ['fail matrix parameter', '/api/v1/keys;/signorders'],
    ['fail empty segment', '/api//v1/keys'],
  ])('%s is refused before matching', async (_name, path) => {
    const before = h.upstream.received.length;
    const res = await browser.request(`${h.kc}${path}`, { method: 'POST', body: '{}', headers: { 'x-keyserver-csrf': '1', origin: h.kc, 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect(problemCode(res)).toBe('path_rejected');
    const get = await browser.request(`${h.kc}${path}`);
    expect(get.status).toBe(400);
    expect(h.upstream.received.length).toBe(before);
  });

  it('answers 502 problem+json when the API is down', async () => {
    const app = await createKeyclientApp({ ...h.config, keyserverApiUrl: 'http://127.0.0.1:9' }, { logDestination: { write: () => true } });
    await app.app.listen(0, '127.0.0.1');
    try {
      const port = (app.app.getHttpServer().address() as { port: number }).port;
      const res = await browser.request(`http://localhost:${port}/api/keys`);
      expect(res.status).toBe(502);
      expect(problemCode(res)).toBe('upstream_unavailable');
    } finally {
      await app.close();
    }
  });
});

describe('keyclient SPA hosting and health', () => {
  it('serves the SPA with a strict CSP and security headers, index.html for client routes', async () => {
    const browser = h.browser();
    const index = await browser.request(`${h.kc}/`);
    expect(index.status).toBe(200);
    expect(index.body).toContain('<app-root ');
    const csp = String(index.headers['content-security-policy']);
    for (const d of ["default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'self'", "frame-ancestors 'none'"]) {
      expect(csp).toContain(d);
    }
    expect(csp).toContain(`form-action 'self' ${h.emulator.baseUrl}`);
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
    expect(index.headers['strict-transport-security']).toMatch(/max-age=31536000/);
    expect(index.headers['x-content-type-options']).toBe('nosniff');
    expect(index.headers['referrer-policy']).toBe('no-referrer');
    expect(index.headers['x-powered-by']).toBeUndefined();

    // A fresh nonce per response, in the page and in style-src; never 'unsafe-inline'.
    const nonce = /ngCspNonce="([A-Za-z0-9+/=]{24})"/.exec(index.body)?.[1];
    expect(nonce).toBeDefined();
    expect(index.body).not.toContain('KEYSERVER_CSP_NONCE');
    expect(csp).toContain(`style-src 'self' 'nonce-${nonce}'`);
    expect(csp).not.toContain('unsafe-inline');
    expect(index.headers['cache-control']).toBe('no-store');
    const route = await browser.request(`${h.kc}/operations/42`);
    expect(route.status).toBe(200);
    expect(route.body).toContain('<app-root');
    expect(route.body).not.toContain(nonce);
    const js = await browser.request(`${h.kc}/main-ABCDEFGH.js`);
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toContain('javascript');
    expect(js.headers['cache-control']).toContain('immutable');
    expect((await browser.request(`${h.kc}/missing-file.js`)).status).toBe(404);
  });

  it('answers /healthz and /readyz', async () => {
    const browser = h.browser();
    expect((await browser.request(`${h.kc}/healthz`)).status).toBe(200);
    const ready = await browser.request(`${h.kc}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready', checks: { database: 'up', provider: 'up' } });
  });

  it('shows a 503 page asking to build the SPA, and is not ready without its database', async () => {
    const app = await createKeyclientApp(
      { ...h.config, spaDistDir: '/nonexistent/admin-spa', databaseUrl: 'postgresql://postgres@127.0.0.1:5432/ks_bff_test_does_not_exist' },
      { logDestination: { write: () => true } },
    );
    await app.app.listen(0, '127.0.0.1');
    try {
      const port = (app.app.getHttpServer().address() as { port: number }).port;
      const browser = h.browser();
      const page = await browser.request(`http://localhost:${port}/keys`);
      expect(page.status).toBe(503);
      expect(page.body).toContain('npx nx build admin-spa');
      const ready = await browser.request(`http://localhost:${port}/readyz`);
      expect(ready.status).toBe(503);
      expect(problemCode(ready)).toBe('not_ready');
    } finally {
      await app.close();
    }
  });

  it('answers 503 session_store_unavailable with Retry-After, never 500, while its session database is down (a failover)', async () => {
    // A port nobody listens on: what the primary endpoint looks like between a primary's death and the promotion.
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const dbPort = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const app = await createKeyclientApp({ ...h.config, databaseUrl: `postgresql://keyserver_keyclient@127.0.0.1:${dbPort}/keyserver` }, { logDestination: { write: () => true } });
    await app.app.listen(0, '127.0.0.1');
    try {
      const port = (app.app.getHttpServer().address() as { port: number }).port;
      const cookie = `${h.sessionCookieName}=${'A'.repeat(43)}`;
      for (const path of ['/me', '/api/v1/operations']) {
        const res = await h.browser().request(`http://localhost:${port}${path}`, { headers: { cookie } });
        expect({ path, status: res.status, code: problemCode(res), retryAfter: res.headers['retry-after'] }).toEqual({
          path,
          status: 503,
          code: 'session_store_unavailable',
          retryAfter: '2',
        });
      }
    } finally {
      await app.close();
    }
  });
});

describe(ProxyService.name, () => {
  it.each([
    ['fail browser gone in the middle of a long answer', 0, 'body'],
    ['fail browser gone before the API answered', 400, 'headers'],
  ])('%s: the API request is abandoned too', async (_name, answerAfterMs, leaveAfter) => {
    // An API that streams an endless answer (an audit export, say) and tells when its connection closes.
    let apiConnectionClosed = false;
    let apiRequests = 0;
    const api = http.createServer((req, res) => {
      apiRequests++;
      req.socket.on('close', () => (apiConnectionClosed = true));
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'application/json' });
        const pump = () => {
          while (!res.destroyed && res.write(Buffer.alloc(64 * 1024, 0x20)));
          if (!res.destroyed) res.once('drain', pump);
        };
        pump();
      }, answerAfterMs);
    });
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    const replica = await createKeyclientApp(
      { ...h.config, keyserverApiUrl: `http://127.0.0.1:${(api.address() as AddressInfo).port}`, proxyTimeoutMs: 30_000 },
      { logDestination: { write: () => true } },
    );
    await replica.app.listen(0, '127.0.0.1');
    try {
      const { cookie } = await signedIn();
      const port = (replica.app.getHttpServer().address() as AddressInfo).port;
      await new Promise<void>((resolve, reject) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/api/v1/audit/export', headers: { cookie: `${h.sessionCookieName}=${cookie}` }, agent: false });
        req.on('error', () => resolve());
        if (leaveAfter === 'headers') {
          setTimeout(() => {
            req.destroy();
            resolve();
          }, 100);
        } else {
          req.on('response', (res) => {
            if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
            res.once('data', () => {
              req.destroy();
              resolve();
            });
          });
        }
      });
      const deadline = Date.now() + 3_000;
      while (!apiConnectionClosed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect({ apiRequests, apiConnectionClosed }).toEqual({ apiRequests: 1, apiConnectionClosed: true });
    } finally {
      await replica.close();
      api.closeAllConnections();
      await new Promise((r) => api.close(r));
    }
  });
});

describe(SpaController.name, () => {
  beforeAll(() => {
    // A dotfile left in the build directory (an editor's or a deploy tool's) is never served.
    writeFileSync(join(h.config.spaDistDir, '.env'), 'SPA_DOTFILE_CONTENT=1');
  });

  it.each([
    ['fail a range past the end of a bundle', '/main-ABCDEFGH.js', { range: 'bytes=99999-' }, 416, 'range_not_satisfiable'],
    ['fail an If-Match that names another version', '/main-ABCDEFGH.js', { 'if-match': '"another-version"' }, 412, 'precondition_failed'],
    ['fail an If-Unmodified-Since before the file was written', '/assets/logo.svg', { 'if-unmodified-since': 'Thu, 01 Jan 1970 00:00:00 GMT' }, 412, 'precondition_failed'],
    ['fail a dotfile in the build directory', '/.env', {}, 404, 'not_found'],
  ])('%s is a 4xx problem, never a 500', async (_name, path, headers, status, code) => {
    const res = await h.browser().request(`${h.kc}${path}`, { headers });
    expect({ status: res.status, code: problemCode(res) }).toEqual({ status, code });
    expect(res.body).not.toContain('SPA_DOTFILE_CONTENT');
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('ok serves a satisfiable range of a bundle', async () => {
    const res = await h.browser().request(`${h.kc}/main-ABCDEFGH.js`, { headers: { range: 'bytes=0-7' } });
    expect([res.status, res.body, res.headers['content-range']]).toEqual([206, 'document', expect.stringMatching(/^bytes 0-7\/\d+$/)]);
  });
});

describe('keyclient secrecy of tokens', () => {
  it('never sent an access, refresh or ID token (or the client secret) in any response or log line', async () => {
    await h.harvestTokens();
    const { responses, secrets } = expectNoSecretsLeaked(h);
    expect(secrets).toBeGreaterThanOrEqual(20);
    expect(responses).toBeGreaterThan(100);
  });

  it('the scan itself catches a token in a header', () => {
    const token = [...h.tokens].find((t) => t.split('.').length === 3)!;
    // Only the signature part of a JWT: still a leak.
    const leak: SeenResponse = { method: 'GET', url: `${h.kc}/leak`, status: 200, headers: { 'x-debug': `sig=${token.split('.')[2]}` }, body: '' };
    expect(() => expectNoSecretsLeaked(Object.assign(Object.create(h) as Harness, { seen: [...h.seen, leak] }))).toThrow(/leaked/);
  });
});
