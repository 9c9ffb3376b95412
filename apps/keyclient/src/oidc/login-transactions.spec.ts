import { loadKeyclientConfig } from '../config/keyclient-config';
import { SealedBox } from '../crypto/sealed-box';
import { LOGIN_TRANSACTION_TTL_MS, LoginFailure, type LoginTransaction, MAX_PENDING_LOGINS, OidcService } from './oidc.service';

const KEY = Buffer.alloc(32, 7);
const config = loadKeyclientConfig({
  TENANT_ID: '7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01',
  APPLICATION_ID: '5b0f3c2a-8e7d-4f61-a9c3-1d2e3f4a5b60',
  CLIENT_SECRET: 'super-secret-value',
  OPENID_CONNECT_METADATA_DOCUMENT: 'http://127.0.0.1:9/.well-known/openid-configuration',
  OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: 'true',
  REDIRECT_URI: 'http://localhost:8080/login/oauth2/code/keyserver-client',
  KEYSERVER_API_URL: 'http://127.0.0.1:3000',
  DATABASE_URL: 'postgresql://app@127.0.0.1:5432/keyserver',
  SESSION_ENCRYPTION_KEY: KEY.toString('base64'),
  KEYCLIENT_PUBLIC_URL: 'http://localhost:8080',
});

const NOW = 1_800_000_000_000;
const oidc = new OidcService(config, () => NOW);

function flow(state: string, ageMs = 0): LoginTransaction {
  return { state, nonce: `n-${state}`, codeVerifier: `v-${state}`.padEnd(43, 'x'), returnTo: '/keys', createdAt: NOW - ageMs };
}

function sealed(value: unknown, box = new SealedBox(KEY, 'login-transaction'), aad = 'login-transaction'): string {
  return box.sealJson(value, aad).toString('base64url');
}

function failure(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof LoginFailure ? err.reason : 'other';
  }
  return undefined;
}

describe(`${OidcService.name} login transactions`, () => {
  it.each<[string, string | undefined, string[]]>([
    ['ok the flows of two tabs, oldest first', sealed([flow('a'), flow('b')]), ['a', 'b']],
    ['ok a cookie of one flow as sealed before a browser could hold several', sealed(flow('a')), ['a']],
    ['fail more flows than a browser may hold', sealed(Array.from({ length: MAX_PENDING_LOGINS + 1 }, (_, i) => flow(`s${i}`))), []],
    ['fail a flow without a PKCE verifier', sealed([{ ...flow('a'), codeVerifier: undefined }]), []],
    ['fail sealed for another purpose (a session token box)', sealed([flow('a')], new SealedBox(KEY, 'session-tokens')), []],
    ['fail sealed under another key', sealed([flow('a')], new SealedBox(Buffer.alloc(32, 8), 'login-transaction')), []],
    ['fail not base64url', '!!!', []],
    ['fail no cookie', undefined, []],
  ])('%s', (_name, cookie, states) => {
    expect(oidc.openTransactions(cookie).map((t) => t.state)).toEqual(states);
  });

  it('ok takes the flow the state names and keeps the other live flows, without the expired ones', () => {
    const cookie = sealed([flow('old', LOGIN_TRANSACTION_TTL_MS + 1), flow('a'), flow('b')]);
    const { tx, remaining } = oidc.takeTransaction('code=c&state=a', cookie);
    expect(tx.state).toBe('a');
    expect(oidc.openTransactions(remaining ?? undefined).map((t) => t.state)).toEqual(['b']);
    expect(oidc.takeTransaction('code=c&state=b', remaining ?? undefined).remaining).toBeNull();
  });

  it.each<[string, string, string]>([
    ['fail no state', 'code=c', 'state_mismatch'],
    ['fail a state of no flow here', 'code=c&state=z', 'state_mismatch'],
    ['fail two states, one of them right', 'code=c&state=a&state=b', 'state_mismatch'],
  ])('%s', (_name, query, reason) => {
    expect(failure(() => oidc.takeTransaction(query, sealed([flow('a'), flow('b')])))).toBe(reason);
  });

  it('fail a callback without a readable cookie is missing_transaction', () => {
    expect(failure(() => oidc.takeTransaction('code=c&state=a', undefined))).toBe('missing_transaction');
  });

  it('ok flows with the longest return paths still fit one cookie under 4 KiB, the newest kept', () => {
    const long = (s: string): LoginTransaction => ({ ...flow(s), returnTo: `/keys/${'k'.repeat(500)}` });
    const cookie = oidc.sealTransactions([long('a'), long('b'), long('c'), long('d')]) ?? '';
    expect(cookie.length).toBeLessThan(4000);
    expect(oidc.openTransactions(cookie).map((t) => t.state)).toEqual(['b', 'c', 'd']);
  });
});
