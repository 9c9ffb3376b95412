import { z } from 'zod';
import { ConfigError, csv, guid, isLoopbackHost, loadConfig, maskSecrets, port, secureUrl } from './config';

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
