import fc from 'fast-check';
import { ConfigError } from '@keyserver/config';
import { describeKeyclientConfig, insecureLoopbackWarnings, loadKeyclientConfig } from './keyclient-config';

const KEY = Buffer.alloc(32, 7).toString('base64');

const VALID: Record<string, string> = {
  TENANT_ID: '7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01',
  APPLICATION_ID: '5b0f3c2a-8e7d-4f61-a9c3-1d2e3f4a5b60',
  CLIENT_SECRET: 'super-secret-value',
  OPENID_CONNECT_METADATA_DOCUMENT:
    'https://login.microsoftonline.com/7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01/v2.0/.well-known/openid-configuration',
  REDIRECT_URI: 'https://keyclient.example.com/login/oauth2/code/keyserver-client',
  KEYSERVER_API_URL: 'http://127.0.0.1:3000',
  DATABASE_URL: 'postgresql://app:pw@127.0.0.1:5432/keyserver',
  SESSION_ENCRYPTION_KEY: KEY,
  KEYCLIENT_PUBLIC_URL: 'https://keyclient.example.com',
};

function variableOf(env: Record<string, string | undefined>): string {
  try {
    loadKeyclientConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.variable;
    throw err;
  }
  return '(accepted)';
}

describe(loadKeyclientConfig.name, () => {
  it('ok applies the documented defaults', () => {
    const c = loadKeyclientConfig(VALID);
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8080);
    expect(c.cookieSecure).toBe(true);
    expect(c.spaDistDir).toBe('dist/apps/admin-spa/browser');
    expect(c.sessionEncryptionKey.length).toBe(32);
    expect(c.publicOrigin).toBe('https://keyclient.example.com');
    expect(c.sessionIdleMs).toBe(30 * 60_000);
    expect(c.sessionAbsoluteMs).toBe(12 * 3_600_000);
  });

  it('ok accepts plain http for loopback hosts (the metadata with OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK)', () => {
    const c = loadKeyclientConfig({
      ...VALID,
      OPENID_CONNECT_METADATA_DOCUMENT: 'http://127.0.0.1:4011/t/v2.0/.well-known/openid-configuration',
      OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK: 'true',
      REDIRECT_URI: 'http://localhost:8080/login/oauth2/code/keyserver-client',
      KEYCLIENT_PUBLIC_URL: 'http://localhost:8080',
    });
    expect(c.publicOrigin).toBe('http://localhost:8080');
  });

  const failures: Array<[string, Record<string, string | undefined>, string]> = [
    ['fail missing TENANT_ID', { TENANT_ID: undefined }, 'TENANT_ID'],
    ['fail APPLICATION_ID not a GUID', { APPLICATION_ID: 'keyclient' }, 'APPLICATION_ID'],
    ['fail empty CLIENT_SECRET', { CLIENT_SECRET: '' }, 'CLIENT_SECRET'],
    ['fail http metadata on a public host', { OPENID_CONNECT_METADATA_DOCUMENT: 'http://login.example.com/x' }, 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail redirect URI with another path', { REDIRECT_URI: 'https://keyclient.example.com/callback' }, 'REDIRECT_URI'],
    ['fail redirect URI on another origin', { REDIRECT_URI: 'https://evil.example.com/login/oauth2/code/keyserver-client' }, 'REDIRECT_URI'],
    ['fail KEYSERVER_API_URL not a URL', { KEYSERVER_API_URL: 'api:3000' }, 'KEYSERVER_API_URL'],
    ['fail DATABASE_URL not postgres', { DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    ['fail DATABASE_URL with several hosts (one primary endpoint, ADR 0026)', { DATABASE_URL: 'postgresql://app@db1:5432,db2:5432/keyserver' }, 'DATABASE_URL'],
    ['fail KEYCLIENT_HOST empty', { KEYCLIENT_HOST: '' }, 'KEYCLIENT_HOST'],
    ['fail KEYCLIENT_HOST with a port', { KEYCLIENT_HOST: '127.0.0.1:8080' }, 'KEYCLIENT_HOST'],
    ['fail KEYCLIENT_HOST a URL', { KEYCLIENT_HOST: 'http://0.0.0.0' }, 'KEYCLIENT_HOST'],
    ['fail KEYCLIENT_HOST with a space', { KEYCLIENT_HOST: '127.0.0.1 ' }, 'KEYCLIENT_HOST'],
    ['fail KEYCLIENT_HOST with NUL', { KEYCLIENT_HOST: 'localhost\u0000.evil' }, 'KEYCLIENT_HOST'],
    ['fail KEYCLIENT_HOST with zero-width space', { KEYCLIENT_HOST: 'local\u200bhost' }, 'KEYCLIENT_HOST'],
    ['fail KEYCLIENT_HOST non-ASCII lookalike', { KEYCLIENT_HOST: 'lоcalhost' }, 'KEYCLIENT_HOST'],
    ['fail KEYCLIENT_HOST bracketed IPv6', { KEYCLIENT_HOST: '[::1]' }, 'KEYCLIENT_HOST'],
    ['fail KEYCLIENT_HOST too long', { KEYCLIENT_HOST: 'a.'.repeat(127) + 'a' }, 'KEYCLIENT_HOST'],
    ['fail KEYCLIENT_PORT out of range', { KEYCLIENT_PORT: '70000' }, 'KEYCLIENT_PORT'],
    ['fail encryption key of 16 bytes', { SESSION_ENCRYPTION_KEY: Buffer.alloc(16).toString('base64') }, 'SESSION_ENCRYPTION_KEY'],
    ['fail encryption key not base64', { SESSION_ENCRYPTION_KEY: '%%%%' }, 'SESSION_ENCRYPTION_KEY'],
    ['fail negative idle minutes', { SESSION_IDLE_MINUTES: '-1' }, 'SESSION_IDLE_MINUTES'],
    ['fail absolute hours not a number', { SESSION_ABSOLUTE_HOURS: 'ten' }, 'SESSION_ABSOLUTE_HOURS'],
    ['fail public URL with a path', { KEYCLIENT_PUBLIC_URL: 'https://keyclient.example.com/app' }, 'KEYCLIENT_PUBLIC_URL'],
    ['fail COOKIE_SECURE not boolean', { COOKIE_SECURE: 'yes' }, 'COOKIE_SECURE'],
    ['fail COOKIE_SECURE false behind an https public URL', { COOKIE_SECURE: 'false', KEYCLIENT_PUBLIC_URL: 'https://keyclient.example.com', REDIRECT_URI: 'https://keyclient.example.com/login/oauth2/code/keyserver-client' }, 'COOKIE_SECURE'],
    ['fail idle minutes beyond a day', { SESSION_IDLE_MINUTES: '1441' }, 'SESSION_IDLE_MINUTES'],
    ['fail absolute hours so large no deadline is a date', { SESSION_ABSOLUTE_HOURS: '1e300' }, 'SESSION_ABSOLUTE_HOURS'],
  ];
  it.each(failures)('%s', (_name, patch, variable) => {
    expect(variableOf({ ...VALID, ...patch })).toBe(variable);
  });

  it.each([
    ['ok KEYCLIENT_HOST all interfaces (containers)', '0.0.0.0'],
    ['ok KEYCLIENT_HOST IPv6 loopback', '::1'],
    ['ok KEYCLIENT_HOST IPv6 any', '::'],
    ['ok KEYCLIENT_HOST a host name', 'keyclient.internal'],
  ])('%s', (_name, host) => {
    expect(loadKeyclientConfig({ ...VALID, KEYCLIENT_HOST: host }).host).toBe(host);
  });

  it('accepts every IPv4, IPv6 and DNS name as KEYCLIENT_HOST (property)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain()), (host) => {
        expect(loadKeyclientConfig({ ...VALID, KEYCLIENT_HOST: host }).host).toBe(host);
      }),
      { seed: 1405, numRuns: 300 },
    );
  });

  it('refuses any KEYCLIENT_HOST with a character outside letters, digits, dot, colon and hyphen (property)', () => {
    const hostile = fc.string({ unit: 'binary', minLength: 1, maxLength: 80 }).filter((s) => /[^A-Za-z0-9.:-]/.test(s));
    fc.assert(
      fc.property(hostile, (host) => {
        expect(variableOf({ ...VALID, KEYCLIENT_HOST: host })).toBe('KEYCLIENT_HOST');
      }),
      { seed: 1405, numRuns: 500 },
    );
  });

  it('never puts a secret value into the error line', () => {
    try {
      loadKeyclientConfig({ ...VALID, SESSION_ENCRYPTION_KEY: 'c2hvcnQtc2VjcmV0LWtleQ==' });
      throw new Error('accepted');
    } catch (err) {
      expect((err as Error).message).not.toContain('c2hvcnQtc2VjcmV0LWtleQ');
      expect((err as Error).message.split('\n')).toHaveLength(1);
    }
  });

  it('masks secrets in the loggable description', () => {
    const text = JSON.stringify(describeKeyclientConfig(loadKeyclientConfig(VALID)));
    expect(text).not.toContain('super-secret-value');
    expect(text).not.toContain(':pw@');
    expect(text).not.toContain(KEY);
  });
});

describe(`${loadKeyclientConfig.name}: plain-http OpenID metadata (ADR 0043 addendum "insecure loopback")`, () => {
  // The same setting, with the same meaning, as the API's (ADR 0011 addendum "the process edge").
  const EMULATOR = 'http://127.0.0.1:4011/7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01/v2.0/.well-known/openid-configuration';
  const FLAG = 'OPENID_CONNECT_ALLOW_INSECURE_LOOPBACK';
  const LOCAL = { REDIRECT_URI: 'http://localhost:8080/login/oauth2/code/keyserver-client', KEYCLIENT_PUBLIC_URL: 'http://localhost:8080' };

  it.each([
    ['ok the default: https only, plain http refused for the metadata, its issuer and the token endpoint', {}, false],
    ['ok explicitly off with https', { [FLAG]: 'false' }, false],
    ['ok the emulator on loopback, explicitly allowed (npm start, compose, the dev overlay, the tests)', { ...LOCAL, OPENID_CONNECT_METADATA_DOCUMENT: EMULATOR, [FLAG]: 'true' }, true],
    ['ok the emulator on [::1], allowed with 1', { ...LOCAL, OPENID_CONNECT_METADATA_DOCUMENT: 'http://[::1]:4011/t/v2.0/.well-known/openid-configuration', [FLAG]: '1' }, true],
  ])('%s', (_name, patch, allowed) => {
    expect(loadKeyclientConfig({ ...VALID, ...patch }).allowInsecureLoopback).toBe(allowed);
  });

  it.each([
    ['fail a plain-http loopback metadata URL without the setting (a local process could pose as the provider)', { OPENID_CONNECT_METADATA_DOCUMENT: EMULATOR }, 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail a plain-http localhost metadata URL without the setting', { OPENID_CONNECT_METADATA_DOCUMENT: 'http://localhost:4011/t/v2.0/.well-known/openid-configuration' }, 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail a plain-http loopback metadata URL with the setting off', { OPENID_CONNECT_METADATA_DOCUMENT: EMULATOR, [FLAG]: 'false' }, 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail the setting with an https metadata URL (it would only let the document name http endpoints)', { [FLAG]: 'true' }, FLAG],
    ['fail the setting with plain http to a remote host', { OPENID_CONNECT_METADATA_DOCUMENT: 'http://login.example.com/t/v2.0/.well-known/openid-configuration', [FLAG]: 'true' }, 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail a setting that is not true or false', { OPENID_CONNECT_METADATA_DOCUMENT: EMULATOR, [FLAG]: 'yes' }, FLAG],
  ])('%s', (_name, patch, variable) => {
    expect(variableOf({ ...VALID, ...patch })).toBe(variable);
  });

  it('ok a keyclient served to other hosts on the emulator is warned about at boot; a loopback public URL or https is not', () => {
    // The keyclient has no KEYSERVER_MODE: a public URL off loopback is its "production" (real browsers elsewhere).
    expect(insecureLoopbackWarnings(loadKeyclientConfig({ ...VALID, OPENID_CONNECT_METADATA_DOCUMENT: EMULATOR, [FLAG]: 'true' }))).toEqual([expect.stringContaining(FLAG)]);
    expect(insecureLoopbackWarnings(loadKeyclientConfig({ ...VALID, ...LOCAL, OPENID_CONNECT_METADATA_DOCUMENT: EMULATOR, [FLAG]: 'true' }))).toEqual([]);
    expect(insecureLoopbackWarnings(loadKeyclientConfig(VALID))).toEqual([]);
  });
});

describe(describeKeyclientConfig.name, () => {
  // node-postgres takes the password from the query string as well as from the user-info part.
  it.each([
    ['fail password in the user-info part', 'postgresql://keyserver_keyclient:db-pass-1@db:5432/keyserver', 'db-pass-1'],
    ['fail password as a query parameter', 'postgresql://keyserver_keyclient@db:5432/keyserver?password=db-pass-2', 'db-pass-2'],
    ['fail password as a query parameter after others', 'postgresql://keyserver_keyclient@db/keyserver?sslmode=verify-full&password=db-pass-3', 'db-pass-3'],
    ['fail encoded parameter name', 'postgresql://keyserver_keyclient@db/keyserver?pass%77ord=db-pass-4', 'db-pass-4'],
    ['fail client key passphrase', 'postgresql://keyserver_keyclient@db/keyserver?sslpassword=db-pass-5', 'db-pass-5'],
  ])('%s never reaches the loggable description', (_name, url, secret) => {
    const config = loadKeyclientConfig({ ...VALID, DATABASE_URL: url });
    expect(config.databaseUrl).toBe(url);
    const described = describeKeyclientConfig(config);
    expect(JSON.stringify(described)).not.toContain(secret);
    expect(String(described['DATABASE_URL'])).toContain('db');
  });

  it('ok keeps the harmless query parameters readable', () => {
    const config = loadKeyclientConfig({ ...VALID, DATABASE_URL: 'postgresql://keyserver_keyclient@db/keyserver?sslmode=verify-full&application_name=keyclient' });
    expect(describeKeyclientConfig(config)['DATABASE_URL']).toBe('postgresql://***@db/keyserver?sslmode=verify-full&application_name=keyclient');
  });
});

describe(`${loadKeyclientConfig.name}: the transport (ADR 0043 addendum "the keyclient's transport")`, () => {
  it("ok the API's defaults: 66 s for headers, 300 s for a request, 4096 connections, 1024 per client address, a 30 s shutdown grace", () => {
    expect(loadKeyclientConfig(VALID).transport).toEqual({ headersTimeoutMs: 66_000, requestTimeoutMs: 300_000, maxConnections: 4096, maxConnectionsPerIp: 1024, shutdownGraceMs: 30_000 });
  });

  it('ok a per-address limit defaults to the total when the total is lower', () => {
    expect(loadKeyclientConfig({ ...VALID, HTTP_MAX_CONNECTIONS: '100' }).transport.maxConnectionsPerIp).toBe(100);
  });

  it.each([
    ['fail a headers timeout under a second', { HTTP_HEADERS_TIMEOUT_MS: '999' }, 'HTTP_HEADERS_TIMEOUT_MS'],
    ['fail a request timeout shorter than the headers timeout', { HTTP_HEADERS_TIMEOUT_MS: '5000', HTTP_REQUEST_TIMEOUT_MS: '4000' }, 'HTTP_REQUEST_TIMEOUT_MS'],
    ['fail a per-address limit above the total', { HTTP_MAX_CONNECTIONS: '10', HTTP_MAX_CONNECTIONS_PER_IP: '11' }, 'HTTP_MAX_CONNECTIONS_PER_IP'],
    ['fail no connection at all', { HTTP_MAX_CONNECTIONS: '0' }, 'HTTP_MAX_CONNECTIONS'],
    ['fail a shutdown grace above ten minutes', { HTTP_SHUTDOWN_GRACE_MS: '600001' }, 'HTTP_SHUTDOWN_GRACE_MS'],
    ['fail a negative shutdown grace', { HTTP_SHUTDOWN_GRACE_MS: '-1' }, 'HTTP_SHUTDOWN_GRACE_MS'],
    ['ok no shutdown grace', { HTTP_SHUTDOWN_GRACE_MS: '0' }, '(accepted)'],
    ['ok both timeouts set', { HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_REQUEST_TIMEOUT_MS: '1000' }, '(accepted)'],
  ])('%s', (_name, patch, variable) => {
    expect(variableOf({ ...VALID, ...patch })).toBe(variable);
  });
});
