import { createKeyclientApp, type KeyclientApp } from '../src/app/create-keyclient-app';
import { KeyclientError, KeyclientErrorCode } from '../src/errors/keyclient-error';
import type { TokenSet } from '../src/oidc/oidc.service';
import { sessionIdFromCookie } from '../src/session/session.service';
import type { Browser, SeenResponse } from './browser';
import { Harness } from './harness';
import { expectNoSecretsLeaked } from './leak-scan';

jest.setTimeout(60_000);

// The emulator issues access tokens for 120 s; the keyclient refreshes 60 s before expiry. Tests move
// only the keyclient's clock forward (70 s) to bring a session's token into the refresh window.
const TTL_S = 120;
const h = new Harness();

beforeAll(async () => {
  await h.start({ accessTokenTtlSeconds: TTL_S });
});

afterEach(() => {
  h.clockOffsetMs = 0;
});

function advanceIntoRefreshWindow(): void {
  h.clockOffsetMs += 70_000;
}

afterAll(async () => {
  await h.stop();
});

function problemCode(res: SeenResponse): string {
  expect(res.headers['content-type']).toContain('application/problem+json');
  return (JSON.parse(res.body) as { code: string }).code;
}

async function storedTokens(cookie: string): Promise<TokenSet> {
  const id = sessionIdFromCookie(cookie);
  const row = await h.db.prisma.bffSession.findUniqueOrThrow({ where: { id } });
  const tokens = h.tokenBox().openJson<TokenSet>(Buffer.from(row.tokenCiphertext), id)!;
  for (const t of [tokens.accessToken, tokens.refreshToken, tokens.idToken]) if (t) h.tokens.add(t);
  return tokens;
}

async function signedIn(): Promise<{ browser: Browser; cookie: string }> {
  const browser = h.browser();
  await h.login(browser);
  return { browser, cookie: browser.cookie(h.kcHost, h.sessionCookieName)!.value };
}

function lastBearer(): string {
  return String(h.upstream.received[h.upstream.received.length - 1].headers.authorization).replace(/^Bearer /, '');
}

describe('keyclient token refresh', () => {
  it('refreshes an access token that is about to expire and stores the new one encrypted', async () => {
    const { browser, cookie } = await signedIn();
    const before = await storedTokens(cookie);
    expect(before.accessTokenExpiresAt - h.now()).toBeLessThanOrEqual(TTL_S * 1000);
    expect((await h.spa(browser, 'GET', '/api/keys')).status).toBe(200);
    expect(lastBearer()).toBe(before.accessToken);
    advanceIntoRefreshWindow();
    const res = await h.spa(browser, 'GET', '/api/keys');
    expect(res.status).toBe(200);
    const used = lastBearer();
    expect(used).not.toBe(before.accessToken);
    // The new token is fresh again: the next call does not refresh.
    await h.spa(browser, 'GET', '/api/keys');
    expect(lastBearer()).toBe(used);
    const after = await storedTokens(cookie);
    expect(after.accessToken).toBe(used);
    expect(after.accessTokenExpiresAt).toBeGreaterThan(before.accessTokenExpiresAt - 1);
    const row = await h.db.prisma.bffSession.findUniqueOrThrow({ where: { id: sessionIdFromCookie(cookie) } });
    expect(row.accessTokenExpiresAt.getTime()).toBe(after.accessTokenExpiresAt);
  });

  it('refreshes once for concurrent requests of one session (single flight)', async () => {
    const { browser, cookie } = await signedIn();
    const before = await storedTokens(cookie);
    advanceIntoRefreshWindow();
    const start = h.upstream.received.length;
    const refreshes = jest.spyOn(h.keyclient.context.oidc, 'refresh');
    const results = await Promise.all(Array.from({ length: 6 }, () => h.spa(browser, 'GET', '/api/v1/operations')));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(refreshes).toHaveBeenCalledTimes(1);
    refreshes.mockRestore();
    const bearers = new Set(h.upstream.received.slice(start).map((r) => String(r.headers.authorization)));
    expect(bearers.size).toBe(1);
    const [only] = [...bearers];
    expect(only).not.toBe(`Bearer ${before.accessToken}`);
    expect(only).toBe(`Bearer ${(await storedTokens(cookie)).accessToken}`);
  });

  it('shares sessions between two keyclient replicas, refreshing without losing the session', async () => {
    const { browser, cookie } = await signedIn();
    let replica: KeyclientApp | undefined;
    try {
      replica = await createKeyclientApp(h.config, { now: h.now, logDestination: { write: (l: string) => h.logs.push(l) > 0 } });
      await replica.app.listen(0, '127.0.0.1');
      const other = `http://localhost:${(replica.app.getHttpServer().address() as { port: number }).port}`;
      const before = await storedTokens(cookie);
      advanceIntoRefreshWindow();
      const start = h.upstream.received.length;
      const both = await Promise.all([
        h.spa(browser, 'GET', '/api/keys'),
        browser.request(`${other}/api/keys`, { initiator: other }),
        h.spa(browser, 'GET', '/api/keys'),
        browser.request(`${other}/api/keys`, { initiator: other }),
      ]);
      expect(both.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(h.upstream.received.length).toBe(start + 4);
      const me = await browser.request(`${other}/me`, { initiator: other });
      expect(me.status).toBe(200);
      const after = await storedTokens(cookie);
      expect(after.accessToken).not.toBe(before.accessToken);
      // Every request after the race carries the one stored token, whichever replica serves it.
      await h.spa(browser, 'GET', '/api/keys');
      expect(lastBearer()).toBe(after.accessToken);
      await browser.request(`${other}/api/keys`, { initiator: other });
      expect(lastBearer()).toBe(after.accessToken);
    } finally {
      await replica?.close();
    }
  });

  it.each([
    ['ok the current token still usable: the other replica sends it meanwhile', 70_000, false],
    ['ok the current token about to expire: the other replica waits for the new one', 117_000, true],
  ])('uses a refresh token once when two replicas refresh one session at the same moment (two tabs): %s', async (_case, advanceMs, bothNew) => {
    const { browser, cookie } = await signedIn();
    let replica: KeyclientApp | undefined;
    const spies: jest.SpyInstance[] = [];
    try {
      replica = await createKeyclientApp(h.config, { now: h.now, logDestination: { write: (l: string) => h.logs.push(l) > 0 } });
      await replica.app.listen(0, '127.0.0.1');
      const other = `http://localhost:${(replica.app.getHttpServer().address() as { port: number }).port}`;
      const used: string[] = [];
      // A slow provider, so each replica's refresh is under way while the other's starts (one tab per replica).
      for (const oidc of [h.keyclient.context.oidc, replica.context.oidc]) {
        const original = oidc.refresh.bind(oidc);
        spies.push(
          jest.spyOn(oidc, 'refresh').mockImplementation(async (previous: TokenSet) => {
            used.push(previous.refreshToken ?? '');
            await new Promise((r) => setTimeout(r, 400));
            return original(previous);
          }),
        );
      }
      const before = await storedTokens(cookie);
      h.clockOffsetMs += advanceMs;
      const start = h.upstream.received.length;
      const both = await Promise.all([
        h.spa(browser, 'GET', '/api/keys'),
        browser.request(`${other}/api/keys`, { initiator: other }),
      ]);
      expect(both.map((r) => r.status)).toEqual([200, 200]);
      expect(used).toEqual([before.refreshToken]);
      expect(h.upstream.received.length).toBe(start + 2);
      const after = await storedTokens(cookie);
      expect(after.accessToken).not.toBe(before.accessToken);
      expect(after.refreshLeaseUntil).toBeUndefined();
      const sent = h.upstream.received.slice(start).map((r) => String(r.headers.authorization).replace(/^Bearer /, ''));
      if (bothNew) expect(sent).toEqual([after.accessToken, after.accessToken]);
      else expect(sent.sort()).toEqual([before.accessToken, after.accessToken].sort());
      // Once the refresh is stored, both replicas send the one new token.
      await h.spa(browser, 'GET', '/api/keys');
      expect(lastBearer()).toBe(after.accessToken);
      await browser.request(`${other}/api/keys`, { initiator: other });
      expect(lastBearer()).toBe(after.accessToken);
    } finally {
      for (const s of spies) s.mockRestore();
      await replica?.close();
    }
  });

  it.each([
    ['ok the current token not expired yet: the other replica sends it', 115_500, 200],
    ['fail the current token expired: the other replica answers 503 provider_unavailable at once', 121_000, 503],
  ])('holds no request of another replica for a refresh stuck on a stalled provider beyond a short wait: %s', async (_case, advanceMs, status) => {
    const { browser, cookie } = await signedIn();
    let replica: KeyclientApp | undefined;
    let release: () => void = () => undefined;
    const stalled = new Promise<void>((r) => (release = r));
    const original = h.keyclient.context.oidc.refresh.bind(h.keyclient.context.oidc);
    // The replica that claims the lease waits on a provider that does not answer (until released below).
    const refreshes = jest.spyOn(h.keyclient.context.oidc, 'refresh').mockImplementation(async (previous: TokenSet) => {
      await stalled;
      return original(previous);
    });
    try {
      replica = await createKeyclientApp(h.config, { now: h.now, logDestination: { write: (l: string) => h.logs.push(l) > 0 } });
      await replica.app.listen(0, '127.0.0.1');
      const other = `http://localhost:${(replica.app.getHttpServer().address() as { port: number }).port}`;
      const before = await storedTokens(cookie);
      const theirs = jest.spyOn(replica.context.oidc, 'refresh');
      h.clockOffsetMs += advanceMs;
      const first = h.spa(browser, 'GET', '/api/keys');
      for (let i = 0; i < 100 && (await storedTokens(cookie)).refreshLeaseUntil === undefined; i++) await new Promise((r) => setTimeout(r, 20));
      expect((await storedTokens(cookie)).refreshLeaseUntil).toBeDefined();
      const started = Date.now();
      const second = await browser.request(`${other}/api/keys`, { initiator: other });
      const waited = Date.now() - started;
      release();
      expect(second.status).toBe(status);
      if (status === 200) expect(lastBearer()).toBe(before.accessToken);
      else expect(problemCode(second)).toBe('provider_unavailable');
      // A short wait for the replica holding the lease, not its provider timeout; and no second provider call.
      expect(waited).toBeLessThan(4_000);
      expect(theirs).not.toHaveBeenCalled();
      expect((await first).status).toBe(200);
      expect(refreshes).toHaveBeenCalledTimes(1);
    } finally {
      release();
      refreshes.mockRestore();
      await replica?.close();
    }
  });

  it('gives the refresh lease back when the provider cannot be reached, so the next request refreshes at once', async () => {
    const { browser, cookie } = await signedIn();
    const before = await storedTokens(cookie);
    advanceIntoRefreshWindow();
    const refreshes = jest
      .spyOn(h.keyclient.context.oidc, 'refresh')
      .mockRejectedValueOnce(new KeyclientError(KeyclientErrorCode.ProviderUnavailable));
    try {
      expect((await h.spa(browser, 'GET', '/api/keys')).status).toBe(200);
      expect(lastBearer()).toBe(before.accessToken);
      const kept = await storedTokens(cookie);
      expect(kept.refreshLeaseUntil).toBeUndefined();
      expect(kept.accessToken).toBe(before.accessToken);
      expect((await h.spa(browser, 'GET', '/api/keys')).status).toBe(200);
      expect(refreshes).toHaveBeenCalledTimes(2);
      expect(lastBearer()).toBe((await storedTokens(cookie)).accessToken);
      expect(lastBearer()).not.toBe(before.accessToken);
    } finally {
      refreshes.mockRestore();
    }
  });

  it('ends the session with 401 problem+json when the provider refuses the refresh', async () => {
    const { browser, cookie } = await signedIn();
    const id = sessionIdFromCookie(cookie);
    const tokens = await storedTokens(cookie);
    const broken = h.tokenBox().sealJson({ ...tokens, refreshToken: 'revoked-or-unknown-refresh-token' }, id);
    await h.db.prisma.bffSession.update({ where: { id }, data: { tokenCiphertext: new Uint8Array(broken) } });
    advanceIntoRefreshWindow();
    const start = h.upstream.received.length;
    const res = await h.spa(browser, 'GET', '/api/keys');
    expect(res.status).toBe(401);
    expect(problemCode(res)).toBe('session_refresh_failed');
    expect(h.upstream.received.length).toBe(start);
    expect(await h.db.prisma.bffSession.count({ where: { id } })).toBe(0);
    expect((await h.spa(browser, 'GET', '/me')).status).toBe(401);
  });

  it('never sent a token in any response or log line', async () => {
    await h.harvestTokens();
    const { secrets, responses } = expectNoSecretsLeaked(h);
    expect(secrets).toBeGreaterThanOrEqual(10);
    expect(responses).toBeGreaterThan(10);
  });
});
