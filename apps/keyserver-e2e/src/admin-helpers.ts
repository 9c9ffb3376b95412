import { Client } from 'pg';
import { authorizeWithPassword, exchangeCode, pkcePair } from '@keyserver/entra-emulator';
import { demoTenant, type RunningPlatform } from '@keyserver/testing';

// Helpers of the admin, subjects and audit end-to-end specs: real tokens, real HTTP.

/**
 * A user's access token as the keyclient (the BFF) gets it: authorization code + PKCE on the
 * confidential keyclient registration, so azp = keyclient (channel "bff"), the way administrators come in.
 */
export async function bffUserToken(p: RunningPlatform, username: string, password?: string): Promise<string> {
  // A user the test added to the emulator's tenant (startPlatform's `tenant`) brings its own password.
  const user = password !== undefined ? { password } : demoTenant.users.find((u) => u.username === username);
  if (!user) throw new Error(`no demo user ${username}`);
  const app = demoTenant.keyserverApp;
  // The keyclient registration's redirect URI in this platform instance (its test port).
  const redirectUri = p.env.keyclient['REDIRECT_URI'];
  const emu = {
    baseUrl: p.env.urls.emulator,
    tokenEndpoint: p.facts.tokenEndpoint,
    authorizationEndpoint: `${p.env.urls.emulator}/${p.facts.tenantId}/oauth2/v2.0/authorize`,
  };
  const pkce = pkcePair();
  const { code } = await authorizeWithPassword(emu, {
    clientId: app.clientId,
    redirectUri,
    username,
    password: user.password,
    scope: `openid profile offline_access ${p.facts.scope}`,
    codeChallenge: pkce.codeChallenge,
  });
  const res = await exchangeCode(emu, { clientId: app.clientId, clientSecret: app.clientSecret, authMethod: 'basic', code, redirectUri, codeVerifier: pkce.codeVerifier });
  const token = res.body['access_token'];
  if (res.status !== 200 || typeof token !== 'string') throw new Error(`token exchange failed: ${res.status} ${JSON.stringify(res.body)}`);
  return token;
}

export interface ApiAnswer<T = Record<string, unknown>> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

/** A JSON client of the API for one bearer token. */
export function apiAs(p: RunningPlatform, token: string) {
  return async <T = Record<string, unknown>>(method: string, path: string, opts: { body?: unknown; rawBody?: string; session?: string } = {}): Promise<ApiAnswer<T>> => {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (opts.body !== undefined || opts.rawBody !== undefined) headers['content-type'] = 'application/json';
    if (opts.session) headers['x-admin-session'] = opts.session;
    const r = await fetch(`${p.env.urls.api}${path}`, { method, headers, body: opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)) });
    const text = await r.text();
    let body: T;
    try {
      body = JSON.parse(text) as T;
    } catch {
      body = {} as T;
    }
    return { status: r.status, body, text, headers: r.headers };
  };
}
export type Api = ReturnType<typeof apiAs>;

/**
 * Opens a session as `creator` and has `second` authorize it; returns the ACTIVE session id. `powers`: the session
 * may make or unmake administrators and approvers (ADR 0044).
 */
export async function activeSession(creator: Api, second: Api, description = 'e2e administrative work', powers = false): Promise<string> {
  const s = await creator<{ id: string; state: string }>('POST', '/api/v1/admin-sessions', { body: { description, powers } });
  if (s.status !== 201) throw new Error(`open session: ${s.status} ${s.text}`);
  const a = await second<{ state: string }>('POST', `/api/v1/admin-sessions/${s.body.id}/authorizations`);
  if (a.status !== 200 || a.body.state !== 'ACTIVE') throw new Error(`authorize session: ${a.status} ${a.text}`);
  return s.body.id;
}

/** Runs SQL as the PostgreSQL superuser on the platform's database. */
export async function sql<R extends Record<string, unknown> = Record<string, unknown>>(p: RunningPlatform, text: string, params: unknown[] = []): Promise<R[]> {
  const c = new Client({ connectionString: p.databaseUrl });
  await c.connect();
  try {
    return (await c.query<R>(text, params)).rows;
  } finally {
    await c.end();
  }
}

export interface AuditRow {
  seq: string;
  action: string;
  outcome: string;
  errorCode: string | null;
  adminSessionId: string | null;
  keyid: string | null;
  operationId: string | null;
  actorOid: string | null;
  details: Record<string, unknown>;
}

/** The newest audit entries of an action (read as an auditor would, over HTTP). */
export async function auditOf(api: Api, query: string): Promise<AuditRow[]> {
  const r = await api<{ items: AuditRow[] }>('GET', `/api/v1/audit?${query}`);
  if (r.status !== 200) throw new Error(`audit query: ${r.status} ${r.text}`);
  return r.body.items;
}

export const userOid = (username: string): string => {
  const u = demoTenant.users.find((x) => x.username === username);
  if (!u) throw new Error(`no demo user ${username}`);
  return u.oid;
};
