import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
// eslint-disable-next-line @nx/enforce-module-boundaries -- test-only: the harness migrates its database as the owner
import { migrateDatabase } from '@keyserver/data-access';
// eslint-disable-next-line @nx/enforce-module-boundaries -- test-only: the one temp-database helper
import { createEmptyTestDatabase } from '@keyserver/data-access/testing';
// eslint-disable-next-line @nx/enforce-module-boundaries -- test-only: the emulator is the identity provider under test
import { startEmulator, type RunningEmulator } from '@keyserver/entra-emulator';
import { createKeyclientApp, type KeyclientApp } from '../src/app/create-keyclient-app';
import { CALLBACK_PATH, loadKeyclientConfig, type KeyclientConfig } from '../src/config/keyclient-config';
import { SealedBox } from '../src/crypto/sealed-box';
import type { TokenSet } from '../src/oidc/oidc.service';
import { Browser, parseForm, type NavigationResult, type SeenResponse } from './browser';
import { FakeUpstream } from './fake-upstream';
import { asKeyclientRole, SessionTable } from './session-table';

const REPO_ROOT = resolve(__dirname, '../../..');

export const DEMO_TENANT = JSON.parse(readFileSync(join(REPO_ROOT, 'config/demo-tenant.json'), 'utf8')) as {
  tenant: { id: string };
  keyserverApp: { clientId: string; clientSecret: string; redirectUris: string[]; postLogoutRedirectUris: string[] };
  users: Array<{ username: string; password: string; name: string; oid: string }>;
};

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => ok(port));
    });
  });
}

/** A fresh empty database `ks_bff_test_<random>` (the one temp-database helper, @keyserver/data-access/testing). */
export function createDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  return createEmptyTestDatabase('ks_bff_test');
}

export interface HarnessOptions {
  accessTokenTtlSeconds?: number;
  spaDir?: string | null;
  env?: Record<string, string>;
}

/**
 * Everything a keyclient end-to-end test needs, all real: a fresh migrated PostgreSQL database,
 * the Entra emulator, a fake Keyserver API recording what it receives, and the keyclient itself
 * listening on http://localhost:<port>.
 */
export class Harness {
  readonly seen: SeenResponse[] = [];
  readonly logs: string[] = [];
  readonly tokens = new Set<string>();
  readonly upstream = new FakeUpstream();
  emulator!: RunningEmulator;
  keyclient!: KeyclientApp;
  config!: KeyclientConfig;
  db!: SessionTable;
  kc = '';
  /** Added to the keyclient's clock (not the emulator's), to make tokens look close to expiry. */
  clockOffsetMs = 0;
  readonly now = (): number => Date.now() + this.clockOffsetMs;
  private dropDb?: () => Promise<void>;
  private dbUrl = '';

  async start(options: HarnessOptions = {}): Promise<void> {
    const port = await freePort();
    this.kc = `http://localhost:${port}`;
    const { url, drop } = await createDatabase();
    this.dbUrl = url;
    this.dropDb = drop;
    await migrateDatabase(url);
    this.db = new SessionTable(url);
    await this.upstream.start();
    this.emulator = await startEmulator({
      port: 0,
      accessTokenTtlSeconds: options.accessTokenTtlSeconds,
      tenant: {
        ...(DEMO_TENANT as unknown as Record<string, unknown>),
        keyserverApp: {
          ...DEMO_TENANT.keyserverApp,
          redirectUris: [`${this.kc}${CALLBACK_PATH}`],
          postLogoutRedirectUris: [`${this.kc}/`],
        },
      } as never,
    });
    let spaDir = options.spaDir === undefined ? this.makeSpaDir() : options.spaDir;
    if (spaDir === null) spaDir = join(mkdtempSync(join(tmpdir(), 'kc-nospa-')), 'missing');
    this.config = loadKeyclientConfig({
      TENANT_ID: DEMO_TENANT.tenant.id,
      APPLICATION_ID: DEMO_TENANT.keyserverApp.clientId,
      CLIENT_SECRET: DEMO_TENANT.keyserverApp.clientSecret,
      OPENID_CONNECT_METADATA_DOCUMENT: this.emulator.metadataUrl,
      // The emulator speaks plain http on loopback.
      OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: 'true',
      REDIRECT_URI: `${this.kc}${CALLBACK_PATH}`,
      KEYSERVER_API_URL: this.upstream.url,
      // The keyclient runs as its own role, which reaches only its session schema (ADR 0018).
      DATABASE_URL: asKeyclientRole(url),
      KEYCLIENT_PORT: String(port),
      SESSION_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      SESSION_IDLE_MINUTES: '30',
      SESSION_ABSOLUTE_HOURS: '8',
      KEYCLIENT_PUBLIC_URL: this.kc,
      SPA_DIST_DIR: spaDir,
      LOG_LEVEL: 'debug',
      ...(options.env ?? {}),
    });
    const logs = this.logs;
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(chunk.toString('utf8'));
        done();
      },
    });
    this.keyclient = await createKeyclientApp(this.config, { logDestination: sink, now: this.now });
    await this.keyclient.app.listen(port, '127.0.0.1');
  }

  private makeSpaDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'kc-spa-'));
    // Shaped like the Angular build: a nonce placeholder for ngCspNonce, one nonce'd and one bare inline style.
    writeFileSync(
      join(dir, 'index.html'),
      '<!doctype html><html><head><style nonce="KEYSERVER_CSP_NONCE">body{color:rgb(1, 2, 3)}</style>' +
        '<style>body{background-color:rgb(9, 9, 9)}</style></head>' +
        '<body><app-root ngCspNonce="KEYSERVER_CSP_NONCE"></app-root><script src="main-ABCDEFGH.js" type="module"></script>' +
        '<script>document.body.dataset.inline = "ran";</script></body></html>',
    );
    writeFileSync(join(dir, 'main-ABCDEFGH.js'), 'document.body.dataset.spa = "ran";');
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'assets', 'logo.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    return dir;
  }

  browser(): Browser {
    return new Browser(this.seen);
  }

  /** The host under which the jar keeps keyclient cookies (browsers do not isolate cookies by port). */
  get kcHost(): string {
    return new URL(this.kc).hostname;
  }

  get sessionCookieName(): string {
    return '__Host-keyclient-session';
  }

  get txCookieName(): string {
    return '__Host-keyclient-tx';
  }

  /**
   * Follows the login from /login through the emulator's sign-in form. Stops just before the
   * callback when `stopAtCallback`, returning the callback URL in `stoppedBefore`.
   */
  async login(
    browser: Browser,
    options: { user?: string; returnTo?: string; stopAtCallback?: boolean; startUrl?: string } = {},
  ): Promise<NavigationResult> {
    const user = DEMO_TENANT.users.find((u) => u.username === (options.user ?? 'ada.admin@demo.test'))!;
    const start =
      options.startUrl ?? `${this.kc}/login${options.returnTo !== undefined ? `?returnTo=${encodeURIComponent(options.returnTo)}` : ''}`;
    const stopBefore = options.stopAtCallback ? (u: string) => u.startsWith(`${this.kc}${CALLBACK_PATH}`) : undefined;
    let res = await browser.navigate(start, { initiator: this.kc, stopBefore });
    for (let step = 0; step < 5 && !res.stoppedBefore && res.url.startsWith(this.emulator.baseUrl); step++) {
      const form = parseForm(res.body, res.url);
      if (!form) throw new Error(`no sign-in form at ${res.url} (status ${res.status})`);
      const fields = { ...form.fields, username: user.username, password: user.password };
      res = await browser.navigate(form.action, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(fields).toString(),
        initiator: new URL(res.url).origin,
        stopBefore,
      });
    }
    await this.harvestTokens();
    return res;
  }

  /** Calls the keyclient as the SPA does (fetch, same origin, CSRF header on unsafe methods). */
  spa(browser: Browser, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<SeenResponse> {
    const unsafe = !['GET', 'HEAD'].includes(method);
    return browser.request(`${this.kc}${path}`, {
      method,
      body,
      initiator: this.kc,
      headers: {
        accept: 'application/json',
        ...(unsafe ? { 'x-keyserver-csrf': '1', origin: this.kc } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
    });
  }

  tokenBox(): SealedBox {
    return new SealedBox(this.config.sessionEncryptionKey, 'session-tokens');
  }

  /** Decrypts every stored session's tokens (as only the server can) and remembers them for the leak scan. */
  async harvestTokens(): Promise<TokenSet[]> {
    const rows = await this.db.prisma.bffSession.findMany();
    const box = this.tokenBox();
    const sets: TokenSet[] = [];
    for (const row of rows) {
      const t = box.openJson<TokenSet>(Buffer.from(row.tokenCiphertext), row.id);
      if (!t) continue;
      sets.push(t);
      for (const v of [t.accessToken, t.refreshToken, t.idToken]) if (v) this.tokens.add(v);
    }
    for (const t of this.upstream.bearerTokens()) this.tokens.add(t);
    return sets;
  }

  async stop(): Promise<void> {
    await this.keyclient?.close();
    await this.emulator?.close();
    await this.upstream.stop();
    await this.db?.close();
    await this.dropDb?.();
  }

  get databaseUrl(): string {
    return this.dbUrl;
  }
}
