import { execFileSync } from 'node:child_process';
import { Client } from 'pg';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { call, ciToken, operationBody } from '../operations-support';
import { operationRows, signOrderLoad, sleep } from './fault-support';

// Stops the SHARED PostgreSQL 15 cluster for a few seconds under load (one stop/start per run), so this
// suite is not part of `npm test`. PostgreSQL is started again whatever happens.

const pgctl = (action: 'stop' | 'start') =>
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', '15', 'main', action, ...(action === 'stop' ? ['-m', 'fast'] : [])], { stdio: 'pipe', timeout: 60_000 });

async function postgresUp(): Promise<boolean> {
  const c = new Client({ connectionString: 'postgresql://postgres@127.0.0.1:5432/postgres', connectionTimeoutMillis: 2_000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

async function ensurePostgresRunning(): Promise<void> {
  if (await postgresUp()) return;
  try {
    pgctl('start');
  } catch {
    // already starting or started by someone else: wait below
  }
  for (let i = 0; i < 60 && !(await postgresUp()); i++) await sleep(500);
}

describe('PostgreSQL restart during sign-order load', () => {
  let p: RunningPlatform;
  let ci: string;

  beforeAll(async () => {
    p = await startPlatform();
    ci = await ciToken(p);
  });

  afterAll(async () => {
    await ensurePostgresRunning();
    await p?.stop();
  });

  it('answers 503 database_unavailable with Retry-After during the outage, never 500, and recovers by itself', async () => {
    const url = p.env.urls.api;
    const op = await call<{ id: string }>(url, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 100_000));
    expect(op.status).toBe(201);

    let stop = false;
    let downAt = 0;
    let upAt = 0;
    const load = signOrderLoad([url], ci, op.body.id, 4, () => stop);
    let readyDuringOutage: { status: number; retryAfter: string | null } | undefined;
    try {
      await sleep(1_500);
      pgctl('stop');
      downAt = Date.now();
      await sleep(1_000);
      const ready = await fetch(`${url}/readyz`);
      readyDuringOutage = { status: ready.status, retryAfter: ready.headers.get('retry-after') };
      await sleep(2_000);
    } finally {
      await ensurePostgresRunning();
      upAt = Date.now();
    }
    // Recovery without a restart of the API: wait for fresh 201s (bounded).
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && (await call(url, ci, 'GET', `/api/v1/operations/${op.body.id}`)).status !== 200) await sleep(500);
    await sleep(2_000);
    stop = true;
    const answers = await load;

    expect(readyDuringOutage).toEqual({ status: 503, retryAfter: expect.stringMatching(/^\d+$/) });
    // Only successes and 503s: no 500 and no dropped connection (listed as "status code" to show what came instead).
    const other = answers.filter((a) => a.status !== 201 && a.status !== 503).map((a) => `${a.status} ${a.code ?? ''}`);
    // On failure the API's log tail (the filter logs every 5xx with its stack) shows where the error came from.
    expect({ other: [...new Set(other)], log: other.length ? p.api.output().slice(-4000) : '' }).toEqual({ other: [], log: '' });
    const unavailable = answers.filter((a) => a.status === 503);
    expect(unavailable.length).toBeGreaterThan(0);
    for (const a of unavailable) {
      expect(a.code).toBe('database_unavailable');
      expect(a.retryAfter).toMatch(/^\d+$/);
    }
    // Sign orders succeed again after the restart, answered by the same API process.
    expect(answers.filter((a) => a.status === 201 && a.at > upAt).length).toBeGreaterThan(0);
    expect(p.api.child.exitCode).toBeNull();
    expect(downAt).toBeGreaterThan(0);

    // Nothing answered 201 is lost, and usages match the stored orders.
    const rows = await operationRows(p, op.body.id);
    for (const a of answers.filter((x) => x.status === 201)) expect(rows.orders.get(a.digest)).toBe(a.result);
    expect(rows.usagesUsed).toBe(rows.orders.size);
    expect(rows.auditSuccesses).toBe(rows.orders.size);
  });
});
