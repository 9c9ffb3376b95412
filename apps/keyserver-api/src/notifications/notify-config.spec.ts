import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, loadConfig } from '@keyserver/config';
import { describeConfig, type ApiConfig } from '../config/api-config';
import { describeNotifyConfig, duplicateWebhookEndpoints, notifyConfig, notifyConfigWarnings, notifyEnvSchema } from './notify-config';

const schema = z.object(notifyEnvSchema);
const load = (env: Record<string, string>) => notifyConfig(loadConfig(schema, env));
const SECRET = 's'.repeat(40);
const dir = mkdtempSync(join(tmpdir(), 'ks-notify-config-'));
const secretFile = join(dir, 'hook-secret');
writeFileSync(secretFile, `${'f'.repeat(40)}\n`);

function variableOf(env: Record<string, string>): string {
  try {
    load(env);
    return 'ok';
  } catch (err) {
    if (err instanceof ConfigError) {
      expect(err.message).not.toContain(SECRET);
      return err.variable;
    }
    throw err;
  }
}

describe(notifyConfig.name, () => {
  it('sends nothing when nothing is configured, and takes empty values (compose pass-through) as unset', () => {
    expect(load({})).toMatchObject({ smtp: null, webhooks: [], maxAttempts: 8, spaUrl: null, recipientHourlyMax: 20, webhookHourlyMax: 60 });
    const empty = Object.fromEntries(Object.keys(notifyEnvSchema).map((k) => [k, '']));
    expect(load(empty)).toEqual(load({}));
    expect(load({ SMTP_HOST: 'smtp.example.test', SMTP_FROM: 'ks@example.test', SMTP_PORT: '' }).smtp?.port).toBe(587);
  });

  it.each([
    ['ok SMTP with STARTTLS by default', { SMTP_HOST: 'smtp.example.test', SMTP_FROM: 'ks@example.test' }, 'ok'],
    ['fail SMTP without a From address', { SMTP_HOST: 'smtp.example.test' }, 'SMTP_FROM'],
    ['fail SMTP without TLS to a remote host', { SMTP_HOST: 'smtp.example.test', SMTP_FROM: 'ks@example.test', SMTP_TLS: 'none' }, 'SMTP_TLS'],
    ['ok SMTP without TLS on loopback (tests, a local relay)', { SMTP_HOST: '127.0.0.1', SMTP_FROM: 'ks@example.test', SMTP_TLS: 'none' }, 'ok'],
    ['fail SMTP user without a password', { SMTP_HOST: 'smtp.example.test', SMTP_FROM: 'ks@example.test', SMTP_USER: 'u' }, 'SMTP_PASSWORD'],
    ['fail webhooks that are not JSON', { NOTIFY_WEBHOOKS: '[{' }, 'NOTIFY_WEBHOOKS'],
    ['fail a plain-http webhook to a remote host', { NOTIFY_WEBHOOKS: JSON.stringify([{ name: 'a', url: 'http://hooks.example.test/x', secret: SECRET }]) }, 'NOTIFY_WEBHOOKS[0.url]'],
    ['fail a short webhook secret', { NOTIFY_WEBHOOKS: JSON.stringify([{ name: 'a', url: 'https://hooks.example.test/x', secret: 'short' }]) }, 'NOTIFY_WEBHOOKS[0.secret]'],
    ['fail a keyserver-format webhook without a secret', { NOTIFY_WEBHOOKS: JSON.stringify([{ name: 'a', url: 'https://hooks.example.test/x' }]) }, 'NOTIFY_WEBHOOKS[0].secret'],
    ['fail two webhooks with one name', { NOTIFY_WEBHOOKS: JSON.stringify([{ name: 'a', url: 'https://h.example.test/1', secret: SECRET }, { name: 'a', url: 'https://h.example.test/2', secret: SECRET }]) }, 'NOTIFY_WEBHOOKS[1].name'],
    ['fail an unknown webhook field', { NOTIFY_WEBHOOKS: JSON.stringify([{ name: 'a', url: 'https://h.example.test/1', secret: SECRET, headers: {} }]) }, 'NOTIFY_WEBHOOKS[0]'],
    ['ok a Slack webhook without a secret (its URL is the secret)', { NOTIFY_WEBHOOKS: JSON.stringify([{ name: 'slack', url: 'https://hooks.slack.example/services/T/B/X', format: 'slack' }]) }, 'ok'],
    ['ok a secret read from a file', { NOTIFY_WEBHOOKS: JSON.stringify([{ name: 'a', url: 'https://h.example.test/1', secretFile }]) }, 'ok'],
    ['ok a recipient hourly cap within bounds', { NOTIFY_RECIPIENT_HOURLY_MAX: '100' }, 'ok'],
    ['fail a recipient hourly cap of 0 (it would mail no approval request at all)', { NOTIFY_RECIPIENT_HOURLY_MAX: '0' }, 'NOTIFY_RECIPIENT_HOURLY_MAX'],
    ['fail a recipient hourly cap above 10000 (no cap)', { NOTIFY_RECIPIENT_HOURLY_MAX: '10001' }, 'NOTIFY_RECIPIENT_HOURLY_MAX'],
    ['fail a recipient hourly cap that is not an integer', { NOTIFY_RECIPIENT_HOURLY_MAX: '2.5' }, 'NOTIFY_RECIPIENT_HOURLY_MAX'],
    ['ok a webhook endpoint hourly cap within bounds', { NOTIFY_WEBHOOK_HOURLY_MAX: '500' }, 'ok'],
    ['fail a webhook endpoint hourly cap of 0 (it would post no approval request at all)', { NOTIFY_WEBHOOK_HOURLY_MAX: '0' }, 'NOTIFY_WEBHOOK_HOURLY_MAX'],
    ['fail a webhook endpoint hourly cap above 10000 (no cap)', { NOTIFY_WEBHOOK_HOURLY_MAX: '10001' }, 'NOTIFY_WEBHOOK_HOURLY_MAX'],
    ['fail a webhook endpoint hourly cap that is not a number', { NOTIFY_WEBHOOK_HOURLY_MAX: 'lots' }, 'NOTIFY_WEBHOOK_HOURLY_MAX'],
    ['fail a retry maximum below the base', { NOTIFY_RETRY_BASE_MS: '1000', NOTIFY_RETRY_MAX_MS: '10' }, 'NOTIFY_RETRY_MAX_MS'],
  ])('%s', (_n, env, expected) => {
    expect(variableOf(env)).toBe(expected);
  });

  it('masks the SMTP password, webhook secrets and webhook paths (Slack and Teams URLs are secrets) in the logged config', () => {
    const c = load({
      SMTP_HOST: 'smtp.example.test',
      SMTP_FROM: 'ks@example.test',
      SMTP_USER: 'mailer',
      SMTP_PASSWORD: SECRET,
      NOTIFY_WEBHOOKS: JSON.stringify([
        { name: 'ks', url: 'https://hooks.example.test/in/abc', secret: SECRET },
        { name: 'teams', url: 'https://prod.example.test/workflows/SECRETPATH?sig=SECRETSIG', format: 'teams' },
      ]),
    });
    const logged = JSON.stringify(describeNotifyConfig(c));
    expect(logged).not.toMatch(new RegExp(`${SECRET}|SECRETPATH|SECRETSIG|/in/abc`));
    expect(logged).toContain('https://prod.example.test/***');
    expect(c.leaseMs).toBeGreaterThanOrEqual(2 * c.sendTimeoutMs);
    // The API's one config log line goes through the same masking.
    const api = { pkcs11: { pin: '1234' }, databaseUrl: 'postgresql://u:pw@h/db', databaseDirectUrl: 'postgresql://u:directpw@h/db', metrics: null, notify: c, cmsTimestamp: { url: null, trust: null } } as unknown as ApiConfig;
    expect(JSON.stringify(describeConfig(api))).not.toMatch(new RegExp(`${SECRET}|SECRETPATH|SECRETSIG|/in/abc|pw@`));
  });
});

describe(duplicateWebhookEndpoints.name, () => {
  const hooks = (...entries: [string, string][]) => ({
    NOTIFY_WEBHOOKS: JSON.stringify(entries.map(([name, url]) => ({ name, url, format: 'slack' }))),
  });

  // Two names for one receiver post every notification to it once per name (two delivery ids: receivers cannot
  // dedupe) and share one hourly cap: almost surely a mistake, but one that used to boot (a rename in progress), so a warning.
  it.each([
    ['ok no webhooks', {}, []],
    ['ok different paths on one host', hooks(['a', 'https://h.example.test/1'], ['b', 'https://h.example.test/2']), []],
    ['ok different ports', hooks(['a', 'https://h.example.test/1'], ['b', 'https://h.example.test:8443/1']), []],
    ['ok path case differs (a Slack token is case-sensitive)', hooks(['a', 'https://h.example.test/T/B/x'], ['b', 'https://h.example.test/T/B/X']), []],
    ['warn one URL under two names', hooks(['a', 'https://h.example.test/1'], ['b', 'https://h.example.test/1']), [['a', 'b']]],
    [
      'warn spellings of one URL (host case, default port, encoded unreserved character, fragment, empty query)',
      hooks(['a', 'https://h.example.test/in'], ['b', 'HTTPS://H.Example.Test:443/%69n#x'], ['c', 'https://h.example.test./in?']),
      [['a', 'b', 'c']],
    ],
    [
      'warn each shared URL once, naming its entries',
      hooks(['a', 'https://h.example.test/1'], ['b', 'https://h.example.test/2'], ['c', 'https://h.example.test/1'], ['d', 'https://h.example.test/2'], ['e', 'https://h.example.test/3']),
      [['a', 'c'], ['b', 'd']],
    ],
  ])('%s', (_n, env, expected) => {
    expect(duplicateWebhookEndpoints(load(env)).map((d) => d.names)).toEqual(expected);
  });

  it('logs one warning line per shared URL, naming the entries with the URL masked as in the config line', () => {
    const c = load(hooks(['teams', 'https://prod.example.test/workflows/SECRETPATH?sig=SECRETSIG'], ['teams-ops', 'https://PROD.example.test/workflows/SECRETPATH?sig=SECRETSIG#x']));
    const lines = notifyConfigWarnings(c);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('NOTIFY_WEBHOOKS[0] "teams", NOTIFY_WEBHOOKS[1] "teams-ops"');
    expect(lines[0]).toContain('https://prod.example.test/***');
    expect(lines[0]).not.toMatch(/SECRETPATH|SECRETSIG|workflows|\n/);
    expect(notifyConfigWarnings(load({}))).toEqual([]);
  });
});
