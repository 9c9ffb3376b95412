import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import { Registry } from 'prom-client';
import { httpMetrics, setMetricsRoute, UNMATCHED_ROUTE } from './http-metrics';

describe(httpMetrics.name, () => {
  let server: Server;
  let base: string;
  const registry = new Registry();

  beforeAll(async () => {
    const app = express();
    app.use(httpMetrics(registry, { maxRoutes: 5 }));
    app.get('/api/v1/crl/:keyid', (_req, res) => res.status(200).send('crl'));
    app.post('/api/signorders', (_req, res) => res.status(403).send('no'));
    // A handler that dispatches itself names the pattern it matched.
    app.all('/proxy/*path', (req, res) => {
      if (/^\/proxy\/keys\/[a-z0-9-]+$/.test(req.path)) setMetricsRoute(req, '/proxy/keys/:id');
      res.status(204).end();
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise((r) => server.close(r)));

  async function series(): Promise<Map<string, number>> {
    const metric = await registry.getSingleMetric('http_request_duration_seconds')?.get();
    const out = new Map<string, number>();
    for (const v of metric?.values ?? []) {
      // A histogram's values carry the series name (MetricValueWithName); prom-client's type for get() does not say so.
      if ((v as { metricName?: string }).metricName !== 'http_request_duration_seconds_count') continue;
      out.set(`${v.labels['method']} ${v.labels['route']} ${v.labels['status']}`, v.value);
    }
    return out;
  }

  it('labels requests with the route template and status, never the raw path or ids', async () => {
    for (let i = 0; i < 50; i++) await fetch(`${base}/api/v1/crl/key-${i}?x=${i}`);
    await fetch(`${base}/api/signorders`, { method: 'POST' });
    for (let i = 0; i < 50; i++) await fetch(`${base}/no/such/${i}`, { method: i % 2 ? 'PROPFIND' : 'GET' });
    for (let i = 0; i < 5; i++) await fetch(`${base}/proxy/keys/k-${i}`);
    await fetch(`${base}/proxy/other/x`);
    const s = await series();
    expect(s.get('GET /api/v1/crl/:keyid 200')).toBe(50);
    expect(s.get('POST /api/signorders 403')).toBe(1);
    expect(s.get(`GET ${UNMATCHED_ROUTE} 404`)).toBe(25);
    expect(s.get(`other ${UNMATCHED_ROUTE} 404`)).toBe(25);
    expect(s.get('GET /proxy/keys/:id 204')).toBe(5);
    expect(s.get('GET /proxy/*path 204')).toBe(1);
    // 106 distinct paths, five routes: six series.
    expect(s.size).toBe(6);
    expect([...s.keys()].join(' ')).not.toMatch(/key-\d|no\/such/);
  });

  it('counts nothing in flight once responses are done', async () => {
    await fetch(`${base}/api/v1/crl/k`);
    const inFlight = await registry.getSingleMetric('http_requests_in_flight')?.get();
    expect(inFlight?.values[0]?.value).toBe(0);
  });
});
