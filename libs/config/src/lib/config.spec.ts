import fc from 'fast-check';
import { z } from 'zod';
import { ConfigError, csv, guid, isLoopbackHost, loadConfig, maskSecrets, maskUrlCredentials, port, secureUrl } from './config';

const schema = z.object({
  TENANT_ID: guid(),
  OPENID_CONNECT_METADATA_DOCUMENT: secureUrl(),
  CLIENT_SECRET: z.string().min(8),
  PORT: port(3000),
  APP_ROLES: csv(),
});

const good = {
  TENANT_ID: '7D5C8C1E-3B0A-4C59-9D1E-2F6B8A4E1C01',
  OPENID_CONNECT_METADATA_DOCUMENT: 'https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration',
  CLIENT_SECRET: 'super-secret-value',
};

describe(loadConfig.name, () => {
  it('parses a valid environment and applies defaults', () => {
    const cfg = loadConfig(schema, { ...good, APP_ROLES: 'a, b,,' });
    expect(cfg.TENANT_ID).toBe('7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01');
    expect(cfg.PORT).toBe(3000);
    expect(cfg.APP_ROLES).toEqual(['a', 'b']);
  });

  it.each([
    ['fail missing tenant', { ...good, TENANT_ID: undefined }, 'TENANT_ID'],
    ['fail tenant not a guid', { ...good, TENANT_ID: 'common' }, 'TENANT_ID'],
    ['fail plain http to a remote host', { ...good, OPENID_CONNECT_METADATA_DOCUMENT: 'http://evil.example/x' }, 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail relative url', { ...good, OPENID_CONNECT_METADATA_DOCUMENT: '/x' }, 'OPENID_CONNECT_METADATA_DOCUMENT'],
    ['fail port out of range', { ...good, PORT: '70000' }, 'PORT'],
    ['fail short secret', { ...good, CLIENT_SECRET: 'x' }, 'CLIENT_SECRET'],
  ])('%s', (_name, env, variable) => {
    try {
      loadConfig(schema, env);
      throw new Error('expected a ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).variable).toBe(variable);
      expect((err as ConfigError).message).not.toContain('\n');
    }
  });

  it('never echoes a secret value in the error line', () => {
    expect(() => loadConfig(schema, { ...good, CLIENT_SECRET: 'abc' })).toThrow(ConfigError);
    try {
      loadConfig(schema, { ...good, CLIENT_SECRET: 'abc' });
    } catch (err) {
      expect((err as Error).message).not.toContain('abc');
    }
  });

  it('allows plain http only on loopback hosts', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '[::1]']) {
      expect(loadConfig(schema, { ...good, OPENID_CONNECT_METADATA_DOCUMENT: `http://${host}:4011/x` }).PORT).toBe(3000);
    }
    expect(isLoopbackHost('127.0.0.1.evil.example')).toBe(false);
  });
});

describe(maskSecrets.name, () => {
  it('masks secrets and URL credentials but keeps file paths and ids', () => {
    const masked = maskSecrets({
      CLIENT_SECRET: 's3cret',
      PKCS11_PIN: '1234',
      PKCS11_PIN_FILE: '/x/pin',
      APPLICATION_ID: 'id',
      DATABASE_URL: 'postgresql://user:pw@host/db',
    });
    expect(masked).toEqual({
      CLIENT_SECRET: '***',
      PKCS11_PIN: '***',
      PKCS11_PIN_FILE: '/x/pin',
      APPLICATION_ID: 'id',
      DATABASE_URL: 'postgresql://***@host/db',
    });
  });
});

describe(maskUrlCredentials.name, () => {
  it.each([
    ['fail a password in the user-info', 'postgresql://user:pw@host/db', 'postgresql://***@host/db'],
    ['fail an @ inside the password (the last @ ends the user-info)', 'postgresql://user:p@ss@host/db', 'postgresql://***@host/db'],
    ['fail a password in the query', 'postgresql://host/db?password=pw&sslmode=require', 'postgresql://host/db?password=***&sslmode=require'],
    ['fail an sslpassword in the query', 'postgresql://host/db?sslmode=verify-full&sslpassword=pw', 'postgresql://host/db?sslmode=verify-full&sslpassword=***'],
    ['fail a percent-encoded parameter name', 'postgresql://host/db?pass%77ord=pw', 'postgresql://host/db?pass%77ord=***'],
    ['fail an upper-case name, and both places at once', 'postgresql://u:pw@host/db?PASSWORD=pw', 'postgresql://***@host/db?PASSWORD=***'],
    ['fail a token before a fragment', 'https://host/x?access_token=t#top', 'https://host/x?access_token=***#top'],
    ['ok nothing secret: unchanged', 'postgresql://host:5432/db?sslmode=require&application_name=api', 'postgresql://host:5432/db?sslmode=require&application_name=api'],
    ['ok an @ in the path is not user-info', 'https://host/a@b?x=1', 'https://host/a@b?x=1'],
  ])('%s', (_n, url, expected) => {
    expect(maskUrlCredentials(url)).toBe(expected);
  });

  it('never prints a value it was given as a password, whatever the URL around it (property)', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9._~-]{0,20}$/), fc.constantFrom('password', 'sslpassword', 'PassWord', 'pass%77ord'), (tail, name) => {
        // A prefix found nowhere else in the URL, so the secret can only appear by leaking.
        const secret = `Zq9${tail}`;
        const masked = maskSecrets({ DATABASE_URL: `postgresql://u:${secret}@h/db?a=1&${name}=${secret}` })['DATABASE_URL'] as string;
        expect(masked.includes(secret)).toBe(false);
      }),
    );
  });
});
