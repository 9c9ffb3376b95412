import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Counter, Registry } from 'prom-client';
import { metricsConfig } from './metrics-config';
import { startMetricsServer, type MetricsServer } from './metrics-server';

type RawMetricsEnv = { METRICS_HOST: string; METRICS_PORT: number; METRICS_TOKEN_FILE?: string };

const TOKEN = 'metrics-token-0123456789abcdefghijklmnop';

describe(startMetricsServer.name, () => {
  let open: MetricsServer;
  let guarded: MetricsServer;
  const registry = new Registry();
  new Counter({ name: 'demo_total', help: 'demo', registers: [registry] }).inc(3);
  const logger = pino({ level: 'silent' });

  beforeAll(async () => {
    open = await startMetricsServer({ host: '127.0.0.1', port: 0 }, registry, logger);
    guarded = await startMetricsServer({ host: '127.0.0.1', port: 0, token: TOKEN }, registry, logger);
  });

  afterAll(async () => {
    await open.close();
    await guarded.close();
  });

  it('serves the exposition format at /metrics', async () => {
    const r = await fetch(open.url);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await r.text()).toContain('demo_total 3');
  });

  it.each([
    ['fail no Authorization', undefined, 401],
    ['fail a wrong token', `Bearer ${TOKEN}x`, 401],
    ['fail the token as Basic', `Basic ${TOKEN}`, 401],
    ['fail an empty bearer', 'Bearer ', 401],
    ['ok the token', `Bearer ${TOKEN}`, 200],
    ['ok the scheme in lower case', `bearer ${TOKEN}`, 200],
  ])('%s: %s', async (_name, authorization, status) => {
    const r = await fetch(guarded.url, { headers: authorization ? { authorization } : {} });
    expect(r.status).toBe(status);
    if (status === 401) {
      expect(r.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
      expect(((await r.json()) as { code: string }).code).toBe('metrics_unauthorized');
    }
  });

  it.each([
    ['fail another path', '/', 'GET', 404, 'not_found'],
    ['fail a path under /metrics', '/metrics/x', 'GET', 404, 'not_found'],
    ['fail POST', '/metrics', 'POST', 405, 'method_not_allowed'],
  ])('%s: %s %s -> %s', async (_name, path, method, status, code) => {
    const r = await fetch(open.url.replace('/metrics', path), { method });
    expect(r.status).toBe(status);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await r.json()) as { code: string }).code).toBe(code);
  });
});

describe(metricsConfig.name, () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ks-metrics-'));
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
    writeFileSync(join(dir, 'short'), 'short');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is off without METRICS_PORT', () => {
    expect(metricsConfig({ METRICS_HOST: '0.0.0.0' })).toBeUndefined();
  });

  it.each([
    ['ok loopback without a token', { METRICS_HOST: '127.0.0.1', METRICS_PORT: 9464 }, { host: '127.0.0.1', port: 9464 }],
    ['ok any interface with a token file', { METRICS_HOST: '0.0.0.0', METRICS_PORT: 9464, METRICS_TOKEN_FILE: 'token' }, { host: '0.0.0.0', port: 9464, token: TOKEN }],
  ])('%s', (_name, raw: RawMetricsEnv, expected) => {
    const withDir = raw.METRICS_TOKEN_FILE ? { ...raw, METRICS_TOKEN_FILE: join(dir, raw.METRICS_TOKEN_FILE) } : raw;
    expect(metricsConfig(withDir)).toEqual(expected);
  });

  it.each([
    ['fail any interface without a token', { METRICS_HOST: '0.0.0.0', METRICS_PORT: 9464 }, 'METRICS_TOKEN_FILE'],
    ['fail a routable address without a token', { METRICS_HOST: '10.0.0.5', METRICS_PORT: 9464 }, 'METRICS_TOKEN_FILE'],
    ['fail a missing token file', { METRICS_HOST: '127.0.0.1', METRICS_PORT: 9464, METRICS_TOKEN_FILE: 'missing' }, 'METRICS_TOKEN_FILE'],
    ['fail a short token', { METRICS_HOST: '127.0.0.1', METRICS_PORT: 9464, METRICS_TOKEN_FILE: 'short' }, 'METRICS_TOKEN_FILE'],
  ])('%s: ConfigError naming %s', (_name, raw: RawMetricsEnv, variable) => {
    const withDir = raw.METRICS_TOKEN_FILE ? { ...raw, METRICS_TOKEN_FILE: join(dir, raw.METRICS_TOKEN_FILE) } : raw;
    expect(() => metricsConfig(withDir)).toThrow(variable);
  });
});
