import { Client } from 'pg';
import type { RunningPlatform } from '@keyserver/testing';
import { apiAs, bffUserToken } from '../admin-helpers';
import { operationRows } from '../faults/fault-support';
import { call, ciToken, operationBody, signOrderBody } from '../operations-support';
import { asPlatform, idempotentLoad, recordMeasurement, sleep, startBed, until, type HaBed, type IdempotentRequest } from './ha-support';

// API replicas behind HAProxy (the bed of `npm run ha:up`): one dies by SIGKILL, then every replica is restarted one
// after the other, under sign orders from clients that retry with the same Idempotency-Key. The clients get the
// signature that is stored, each key is stored and counted once, and no client request fails.

describe('API replicas behind HAProxy: crash and rolling restart under idempotent clients', () => {
  let bed: HaBed;
  let p: RunningPlatform;
  let ci: string;

  beforeAll(async () => {
    bed = await startBed({ apiReplicas: 2, keyclient: false });
    p = asPlatform(bed);
    ci = await ciToken(p);
  }, 300_000);

  afterAll(async () => {
    await bed?.down();
  }, 120_000);

  /** HAProxy's view of one API server (runtime API `show stat`): UP, DOWN, MAINT... */
  async function serverStatus(name: string): Promise<string> {
    const csv = await bed.haproxyCommand('show stat');
    const header = csv.split('\n')[0].replace(/^# /, '').split(',');
    const col = header.indexOf('status');
    const row = csv.split('\n').find((l) => l.startsWith(`api,${name},`));
    return row ? row.split(',')[col] : 'missing';
  }

  /** Every invariant: stored signature = the one the client got, one order and one usage per key, audit intact. */
  async function expectExactlyOnce(operationId: string, done: IdempotentRequest[]) {
    expect(done.filter((r) => r.final.status !== 201).map((r) => r.attempts.map((a) => `${a.status} ${a.code ?? ''}`))).toEqual([]);
    let rows = await operationRows(p, operationId);
    for (let i = 0; i < 80 && (rows.openReservations > 0 || rows.usagesUsed !== rows.orders.size); i++) {
      await sleep(250);
      rows = await operationRows(p, operationId);
    }
    const c = new Client({ connectionString: bed.urls.database });
    await c.connect();
    let byKey: Map<string, string>;
    try {
      const stored = await c.query<{ key: string; result: string }>(`SELECT "idempotencyKey" AS key, result FROM sign_order WHERE "operationId" = $1::uuid`, [operationId]);
      byKey = new Map(stored.rows.map((r) => [r.key, r.result]));
    } finally {
      await c.end();
    }
    expect(done.filter((r) => byKey.get(r.key) !== r.final.result).map((r) => r.key)).toEqual([]);
    expect(rows.orders.size).toBe(done.length);
    expect(rows.usagesUsed).toBe(done.length);
    expect(rows.openReservations).toBe(0);
    expect(rows.auditSuccesses).toBe(done.length);

    // A late retry of any of them gets the same signature and uses nothing.
    const sample = done.slice(0, 20);
    for (const r of sample) {
      const again = await call<{ result: string }>(bed.urls.api, ci, 'POST', '/api/signorders', signOrderBody(operationId, 'demo-fw-dev', r.digest), { 'idempotency-key': r.key });
      expect({ status: again.status, result: again.body.result }).toEqual({ status: 201, result: r.final.result });
    }
    expect((await operationRows(p, operationId)).usagesUsed).toBe(done.length);

    const auditor = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    const verify = await auditor<{ ok: boolean }>('GET', '/api/v1/audit/verify');
    expect({ status: verify.status, ok: verify.body.ok }).toEqual({ status: 200, ok: true });
  }

  const stats = (done: IdempotentRequest[]) => ({
    requests: done.length,
    retried: done.filter((r) => r.attempts.length > 1).length,
    attempts: done.reduce((n, r) => n + r.attempts.length, 0),
    failed: done.filter((r) => r.final.status !== 201).length,
    attemptStatuses: Object.fromEntries(
      [...new Set(done.flatMap((r) => r.attempts.map((a) => `${a.status}${a.code ? ` ${a.code}` : ''}`)))].map((s) => [
        s,
        done.flatMap((r) => r.attempts).filter((a) => `${a.status}${a.code ? ` ${a.code}` : ''}` === s).length,
      ]),
    ),
  });

  it('kill -9 of an API replica: retries with the same Idempotency-Key get the stored signature, no usage counted twice', async () => {
    const op = await call<{ id: string }>(bed.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 100_000));
    expect(op.status).toBe(201);
    let stop = false;
    const load = idempotentLoad(bed.urls.api, ci, op.body.id, 6, () => stop, 'crash');
    try {
      await sleep(2_000);
      const killedAt = Date.now();
      await bed.stopApi(1, 'SIGKILL');
      await until('HAProxy marks the dead replica down', async () => (await serverStatus('api2')).startsWith('DOWN'), 10_000);
      const downAfterMs = Date.now() - killedAt;
      // Long enough for the dead replica's reservations to run out (lease 5 s) and their retries to finish.
      await sleep(8_000);
      stop = true;
      const done = await load;
      await expectExactlyOnce(op.body.id, done);
      // The kill cut requests in flight: their clients retried with the same key.
      expect(done.filter((r) => r.attempts.length > 1).length).toBeGreaterThan(0);
      recordMeasurement('api-replica-kill-9', { ...stats(done), haproxyDownAfterMs: downAfterMs });
    } finally {
      stop = true;
      await load.catch(() => undefined);
    }
    bed.startApi(1);
    await bed.waitApiReady(1);
    await until('HAProxy takes the replica back', async () => (await serverStatus('api2')) === 'UP', 15_000);
  });

  it('rolling restart of every replica: zero failed requests for clients that retry idempotently', async () => {
    const op = await call<{ id: string }>(bed.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 100_000));
    expect(op.status).toBe(201);
    let stop = false;
    const load = idempotentLoad(bed.urls.api, ci, op.body.id, 6, () => stop, 'rolling');
    const started = Date.now();
    try {
      await sleep(1_500);
      for (let i = 0; i < bed.ports.apiReplicas.length; i++) {
        // What a Deployment's rolling update does: SIGTERM (in-flight requests finish), a new process, ready, next.
        await bed.stopApi(i, 'SIGTERM');
        bed.startApi(i);
        await bed.waitApiReady(i);
        await until(`HAProxy takes api${i + 1} back`, async () => (await serverStatus(`api${i + 1}`)) === 'UP', 15_000);
      }
      await sleep(1_500);
      stop = true;
      const done = await load;
      await expectExactlyOnce(op.body.id, done);
      recordMeasurement('api-rolling-restart', { ...stats(done), durationMs: Date.now() - started });
    } finally {
      stop = true;
      await load.catch(() => undefined);
    }
  });
});
