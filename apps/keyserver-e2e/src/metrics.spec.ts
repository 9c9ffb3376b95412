import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { freePort, repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { call, ciToken, operationBody, run, signOrderBody, userToken } from './operations-support';
import { logLines, parseExposition, promqlMetricNames, promtoolCheckMetrics, scrape, seriesNames, valueOf, type Sample } from './metrics-support';

// Prometheus metrics of the API and the keyclient (docs/adr/0022-metrics-endpoint.md), scraped from the real
// processes after real sign orders, certificates and approvals; the exposition is checked by promtool.

describe('Prometheus metrics', () => {
  let p: RunningPlatform;
  let apiMetrics: string;
  let keyclientMetrics: string;
  let ci: string;
  let work: string;

  beforeAll(async () => {
    const [apiPort, keyclientPort] = [await freePort(), await freePort()];
    p = await startPlatform({
      keyclient: true,
      extraApiEnv: { METRICS_PORT: String(apiPort), LOG_LEVEL: 'info' },
      extraKeyclientEnv: { METRICS_PORT: String(keyclientPort), LOG_LEVEL: 'info' },
    });
    apiMetrics = `http://127.0.0.1:${apiPort}/metrics`;
    keyclientMetrics = `http://127.0.0.1:${keyclientPort}/metrics`;
    ci = await ciToken(p);
    work = mkdtempSync(join(tmpdir(), 'ks-metrics-'));
  });

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const api = <T = Record<string, unknown>>(token: string, method: string, path: string, body?: unknown) => call<T>(p.env.urls.api, token, method, path, body);
  const apiSamples = async (): Promise<Sample[]> => parseExposition(await scrape(apiMetrics));

  it('serves the API metrics on their own listener, in an exposition promtool accepts', async () => {
    const text = await scrape(apiMetrics);
    promtoolCheckMetrics(text);
    for (const name of [
      'http_request_duration_seconds',
      'keyserver_sign_orders_total',
      'keyserver_certificates_total',
      'keyserver_audit_append_duration_seconds',
      'keyserver_hsm_operation_duration_seconds',
      'keyserver_usage_reservation_duration_seconds',
      'keyserver_hsm_sessions',
      'keyserver_db_pool_connections',
      'keyserver_operations_awaiting_approval',
      'process_cpu_seconds_total',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
  });

  it('names the Keyserver release it runs: keyserver_info{version} is the root package.json version, as ksctl --version', async () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    expect((await apiSamples()).filter((s) => s.name === 'keyserver_info').map((s) => s.labels)).toEqual([{ version, node: expect.stringMatching(/^\d+\.\d+\.\d+$/) }]);
    // The built API carries that one field of the root manifest, not the rest of it.
    const bundle = readFileSync(join(repoRoot, 'dist', 'apps', 'keyserver-api', 'main.js'), 'utf8');
    expect(['"devDependencies"', '"workspaces"'].filter((field) => bundle.includes(field))).toEqual([]);
  });

  it('counts real sign orders by key and outcome; a caller-supplied keyid or id never becomes a label', async () => {
    const before = await apiSamples();
    const op = await api<{ id: string }>(ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 3));
    expect(op.status).toBe(201);
    for (const text of ['metrics one', 'metrics two']) {
      const r = await api(ci, 'POST', '/api/signorders', signOrderBody(op.body.id, 'demo-fw-dev', createHash('sha256').update(text).digest('hex')));
      expect(r.status).toBe(201);
    }
    const hostileKey = `no-such-key-${randomUUID()}`;
    const refused = await api(ci, 'POST', '/api/signorders', signOrderBody(op.body.id, hostileKey, createHash('sha256').update('x').digest('hex')));
    expect(refused.status).toBe(403);
    const text = await scrape(apiMetrics);
    promtoolCheckMetrics(text);
    const after = parseExposition(text);
    const delta = (name: string, labels: Record<string, string>) => valueOf(after, name, labels) - valueOf(before, name, labels);

    expect(delta('keyserver_sign_orders_total', { key: 'demo-fw-dev', outcome: 'success', code: 'none' })).toBe(2);
    expect(delta('keyserver_sign_orders_total', { key: '_other', outcome: 'denied', code: 'key_not_permitted' })).toBe(1);
    expect(delta('http_request_duration_seconds_count', { method: 'POST', route: '/api/signorders', status: '201' })).toBe(2);
    expect(delta('http_request_duration_seconds_count', { method: 'POST', route: '/api/signorders', status: '403' })).toBe(1);
    expect(delta('http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/operations', status: '201' })).toBe(1);
    expect(delta('keyserver_hsm_operation_duration_seconds_count', { operation: 'sign', outcome: 'ok' })).toBeGreaterThanOrEqual(2);
    expect(delta('keyserver_audit_append_duration_seconds_count', { path: 'with_result' })).toBeGreaterThanOrEqual(2);
    expect(delta('keyserver_usage_reservation_duration_seconds_count', { kind: 'signorder', outcome: 'reserved' })).toBe(2);
    expect(delta('keyserver_audit_append_duration_seconds_count', { path: 'statement' })).toBeGreaterThanOrEqual(1);
    expect(delta('keyserver_audit_events_total', { action: 'signorder.create', outcome: 'success' })).toBe(2);
    // Bounded cardinality: no raw path, id or caller-supplied value anywhere in the exposition.
    expect(text).not.toContain(hostileKey);
    expect(text).not.toContain(op.body.id);
    const routes = new Set(after.filter((s) => s.name === 'http_request_duration_seconds_count').map((s) => s.labels['route']));
    for (const route of routes) expect(route === '(unmatched)' || /^\/[A-Za-z0-9/:{}*_.-]*$/.test(route)).toBe(true);
  });

  it('counts certificates by issuing CA', async () => {
    const op = await api<{ id: string }>(ci, 'POST', '/api/v1/operations', operationBody('demo-ca-dev', 1));
    expect(op.status).toBe(201);
    run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, 'd.key'), '-subj', '/CN=metrics-device/O=Demo Devices Ltd', '-out', join(work, 'd.csr')]);
    const before = await apiSamples();
    const r = await api(ci, 'POST', '/api/v1/certificates', { operationid: op.body.id, keyid: 'demo-ca-dev', csr: readFileSync(join(work, 'd.csr'), 'utf8') });
    expect(r.status).toBe(201);
    const after = await apiSamples();
    const delta = (name: string, labels: Record<string, string>) => valueOf(after, name, labels) - valueOf(before, name, labels);
    expect(delta('keyserver_certificates_total', { key: 'demo-ca-dev', outcome: 'success' })).toBe(1);
    expect(delta('keyserver_usage_reservation_duration_seconds_count', { kind: 'certificate', outcome: 'reserved' })).toBe(1);
  });

  it('counts firmware signatures by key, and the streamed route by its template', async () => {
    const op = await api<{ id: string }>(ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1));
    expect(op.status).toBe(201);
    const before = await apiSamples();
    const query = new URLSearchParams({ operationid: op.body.id, keyid: 'demo-fw-dev', description: 'metrics firmware' });
    const r = await fetch(`${p.env.urls.api}/api/v1/firmware/signatures?${query}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ci}`, 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(4096, 7),
    });
    expect(r.status).toBe(201);
    const after = await apiSamples();
    const delta = (name: string, labels: Record<string, string>) => valueOf(after, name, labels) - valueOf(before, name, labels);
    expect(delta('keyserver_firmware_signatures_total', { key: 'demo-fw-dev', outcome: 'success' })).toBe(1);
    expect(delta('http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/firmware/signatures', status: '201' })).toBe(1);
  });

  it('reports the operations waiting for approval, computed at scrape time', async () => {
    const otto = await userToken(p, 'otto.orderer@demo.test');
    const before = valueOf(await apiSamples(), 'keyserver_operations_awaiting_approval');
    const gated = await api<{ id: string }>(otto, 'POST', '/api/v1/operations', operationBody('demo-fw-prod', 1));
    expect(gated.status).toBe(201);
    const ungated = await api<{ id: string }>(otto, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1));
    expect(ungated.status).toBe(201);
    const after = await apiSamples();
    expect(valueOf(after, 'keyserver_operations_awaiting_approval')).toBe(before + 1);
    expect(valueOf(after, 'keyserver_operations_awaiting_approval_oldest_seconds')).toBeGreaterThanOrEqual(0);
    const cancelled = await api(otto, 'POST', `/api/v1/operations/${gated.body.id}/cancellation`, {});
    expect(cancelled.status).toBeLessThan(300);
    expect(valueOf(await apiSamples(), 'keyserver_operations_awaiting_approval')).toBe(before);
  });

  it('reports the HSM session pool and the database pool', async () => {
    const s = await apiSamples();
    expect(valueOf(s, 'keyserver_hsm_sessions_max')).toBe(4);
    expect(valueOf(s, 'keyserver_hsm_sessions')).toBe(4);
    expect(valueOf(s, 'keyserver_hsm_session_waiters')).toBe(0);
    expect(valueOf(s, 'keyserver_db_pool_max')).toBe(10);
    expect(valueOf(s, 'keyserver_db_pool_connections')).toBeGreaterThan(0);
  });

  it.each([
    ['fail the API port', () => `${p.env.urls.api}/metrics`],
    ['fail the keyclient port', () => `${p.env.urls.keyclient}/metrics`],
    ['fail through the keyclient proxy', () => `${p.env.urls.keyclient}/api/metrics`],
  ])('%s: no metrics there', async (_name, url) => {
    const r = await fetch(url());
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(await r.text()).not.toContain('# TYPE');
  });

  it('serves the keyclient metrics by route template, in an exposition promtool accepts', async () => {
    for (let i = 0; i < 3; i++) await fetch(`${p.env.urls.keyclient}/healthz?i=${i}`);
    await fetch(`${p.env.urls.keyclient}/api/v1/operations/${randomUUID()}`);
    const text = await scrape(keyclientMetrics);
    promtoolCheckMetrics(text);
    const s = parseExposition(text);
    expect(valueOf(s, 'http_request_duration_seconds_count', { method: 'GET', route: '/healthz', status: '200' })).toBeGreaterThanOrEqual(3);
    // A proxied call is labelled with the allow-list pattern it matched (here refused: no session).
    expect(valueOf(s, 'http_request_duration_seconds_count', { method: 'GET', route: '/api/v1/operations/:id', status: '401' })).toBe(1);
    expect(valueOf(s, 'keyserver_db_pool_max')).toBeGreaterThan(0);
    expect(text).not.toMatch(/route="[^"]*[0-9a-f]{8}-[0-9a-f]{4}-/);
  });

  describe('docs/monitoring', () => {
    const dir = join(repoRoot, 'docs', 'monitoring');
    /** Series names the running API and keyclient export, plus what Prometheus itself adds per target. */
    let exported: Set<string>;

    beforeAll(async () => {
      exported = new Set(['up', ...seriesNames(await scrape(apiMetrics)), ...seriesNames(await scrape(keyclientMetrics))]);
    });

    it.each([
      ['ok functions, label matchers, grouping and ranges are not metrics', 'sum by (key, le) (rate(foo_total{job=~"$api_job",key!="x"}[5m])) / on(instance) bar', ['foo_total', 'bar']],
      ['ok numbers and keywords are not metrics', 'max(a_seconds) > 4 * 3600 and bool b', ['a_seconds', 'b']],
    ])('%s', (_name, expr, names) => {
      expect(promqlMetricNames(expr)).toEqual(names);
    });

    it('the dashboard queries only metrics the servers really export', () => {
      const dashboard = JSON.parse(readFileSync(join(dir, 'keyserver-dashboard.json'), 'utf8')) as { uid: string; panels: { id: number; type: string; title: string; targets?: { expr: string }[] }[] };
      expect(dashboard.uid).toBe('keyserver-overview');
      const panels = dashboard.panels.filter((x) => x.type !== 'row');
      expect(panels.length).toBeGreaterThanOrEqual(20);
      expect(new Set(dashboard.panels.map((x) => x.id)).size).toBe(dashboard.panels.length);
      const unknown: string[] = [];
      for (const panel of panels) {
        expect([panel.title, panel.targets?.length ?? 0]).not.toEqual([panel.title, 0]);
        for (const t of panel.targets ?? []) {
          const names = promqlMetricNames(t.expr);
          expect([panel.title, names.length]).not.toEqual([panel.title, 0]);
          unknown.push(...names.filter((n) => !exported.has(n)).map((n) => `${panel.title}: ${n}`));
        }
      }
      expect(unknown).toEqual([]);
      // Every family of ours appears on the dashboard.
      const used = new Set(panels.flatMap((x) => (x.targets ?? []).flatMap((t) => promqlMetricNames(t.expr))));
      const ours = [...exported].filter((n) => n.startsWith('keyserver_') && !/_(sum|bucket)$/.test(n) && n !== 'keyserver_info');
      const family = (n: string) => n.replace(/_(count|bucket|sum)$/, '');
      expect(ours.filter((n) => ![...used].some((u) => family(u) === family(n)))).toEqual([]);
    });

    it('the alert rules pass promtool (config check and their unit tests) and query only metrics the servers really export', () => {
      const work = mkdtempSync(join(tmpdir(), 'ks-prom-'));
      try {
        // promtool check config also loads and checks the rule file it names.
        writeFileSync(join(work, 'token'), 'x'.repeat(40));
        writeFileSync(join(work, 'keyserver-alerts.yml'), readFileSync(join(dir, 'keyserver-alerts.yml')));
        writeFileSync(join(work, 'prometheus.yml'), readFileSync(join(dir, 'prometheus.yml'), 'utf8').replaceAll('/etc/prometheus/keyserver-metrics-token', join(work, 'token')));
        const out = run('promtool', ['check', 'config', join(work, 'prometheus.yml')]);
        expect(out).toMatch(/SUCCESS: 1\d rules found/);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
      // The alerts' own unit tests: series shaped like ours, the alerts expected to fire (and not to).
      expect(run('promtool', ['test', 'rules', join(dir, 'keyserver-alerts.test.yml')])).toContain('SUCCESS');
      const rules = parseYaml(readFileSync(join(dir, 'keyserver-alerts.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
      const unknown = rules.groups.flatMap((g) => g.rules.flatMap((r) => promqlMetricNames(r.expr).filter((n) => !exported.has(n)).map((n) => `${r.alert}: ${n}`)));
      expect(unknown).toEqual([]);
    });
  });

  // Last: it stops the processes the tests above scrape.
  describe('shutdown', () => {
    it('logs only JSON lines, one at shutdown with the signal and the uptime, then exits 0 (API, keyclient, emulator)', async () => {
      for (const service of [p.api, p.keyclient, p.emulator]) {
        if (!service) throw new Error('service not started');
        const code = await service.stop('SIGTERM');
        expect([service.name, code]).toEqual([service.name, 0]);
        // The output kept is the last 20 000 characters: when full, its first line may be cut.
        const out = service.output();
        const { json, other } = logLines(out.length >= 20_000 ? out.slice(out.indexOf('\n') + 1) : out);
        // Only Node's own runtime warnings may be plain text.
        expect([service.name, other.filter((l) => !/^\(node:\d+\)|--trace-warnings/.test(l))]).toEqual([service.name, []]);
        expect(json.length).toBeGreaterThan(0);
        const shutdown = json.find((l) => l['event'] === 'shutdown');
        expect(shutdown).toMatchObject({ signal: 'SIGTERM', uptimeSeconds: expect.any(Number) });
        expect(json.find((l) => l['event'] === 'stopped')).toMatchObject({ signal: 'SIGTERM' });
      }
    });
  });
});
