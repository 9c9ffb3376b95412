import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { apiAs, bffUserToken } from '../admin-helpers';
import { call, ciToken, operationBody } from '../operations-support';
import { operationRows, signOrderLoad, sleep } from './fault-support';

// Exactly-once usage across two healthy replicas racing on one operation is covered by concurrency.spec.ts;
// this test adds the crash: one replica dies by SIGKILL in the middle of the load.

describe('kill -9 of an API process during sign-order load', () => {
  let p: RunningPlatform;
  let ci: string;

  beforeAll(async () => {
    // A short usage lease so the survivor gives back, within the test, the usages the dead replica had reserved.
    p = await startPlatform({ replicas: 2, extraApiEnv: { USAGE_LEASE_SECONDS: '2' } });
    ci = await ciToken(p);
  });

  afterAll(async () => {
    await p?.stop();
  });

  it('keeps every 201 in the database and the audit log, counts each usage once and keeps a verifiable audit chain', async () => {
    const urls = p.apiReplicas.map((r) => r.url);
    const op = await call<{ id: string }>(urls[0], ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 100_000));
    expect(op.status).toBe(201);

    let stop = false;
    const load = signOrderLoad(urls, ci, op.body.id, 8, () => stop);
    await sleep(2_000);
    const victim = p.apiReplicas[1].service;
    victim.child.kill('SIGKILL');
    await victim.stop();
    await sleep(2_000);
    stop = true;
    const answers = await load;

    // The dead process fails requests at the connection level; nothing is a 5xx from the survivor.
    expect(victim.child.signalCode).toBe('SIGKILL');
    expect(answers.filter((a) => a.status === 0).length).toBeGreaterThan(0);
    expect(new Set(answers.map((a) => a.status))).toEqual(new Set([201, 0]));
    const ok = answers.filter((a) => a.status === 201);
    expect(ok.length).toBeGreaterThan(0);

    // Usages the dead replica had reserved but not stored come back once their lease (2 s) runs out.
    let rows = await operationRows(p, op.body.id);
    for (let i = 0; i < 40 && rows.usagesUsed !== rows.orders.size; i++) {
      await sleep(250);
      rows = await operationRows(p, op.body.id);
    }
    // Every answered order is stored with the signature the client got.
    for (const a of ok) expect(rows.orders.get(a.digest)).toBe(a.result);
    // Orders in flight at the kill either committed whole (row + usage + audit) or were given back.
    expect(rows.usagesUsed).toBe(rows.orders.size);
    expect(rows.openReservations).toBe(0);
    expect(rows.auditSuccesses).toBe(rows.orders.size);
    expect(rows.orders.size - ok.length).toBeLessThanOrEqual(answers.filter((a) => a.status === 0).length);

    const auditor = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    const verify = await auditor<{ ok: boolean; checked: number }>('GET', '/api/v1/audit/verify');
    expect(verify.status).toBe(200);
    expect(verify.body.ok).toBe(true);
    expect(verify.body.checked).toBeGreaterThanOrEqual(rows.orders.size);

    // The survivor still serves and still counts.
    let sent = 0;
    const after = await signOrderLoad([urls[0]], ci, op.body.id, 1, () => sent++ >= 1, 'after');
    expect(after.map((a) => a.status)).toEqual([201]);
    expect((await operationRows(p, op.body.id)).usagesUsed).toBe(rows.orders.size + 1);
  });
});
