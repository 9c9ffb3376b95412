import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import type { RunningPlatform } from '@keyserver/testing';
import { apiAs, bffUserToken } from '../admin-helpers';
import { operationRows } from '../faults/fault-support';
import { call, ciToken, operationBody } from '../operations-support';
import {
  asPlatform,
  certificateLoad,
  type CertificateAnswer,
  idempotentLoad,
  plainLoad,
  plainSignOrder,
  PATRONI_TIMING,
  recordMeasurement,
  REQUEST_BOUND_MS,
  sleep,
  startBed,
  until,
  type Answer,
  type HaBed,
  type IdempotentRequest,
  KeyclientBrowser,
} from './ha-support';

// PostgreSQL failover under sign-order load, on the bed of `npm run ha:up`: three nodes under Patroni with synchronous
// replication, the API's two replicas reaching the primary through HAProxy's Patroni-checked port.
// While there is no primary the API answers 503 database_unavailable + Retry-After (never 500, never a hang past
// REQUEST_BOUND_MS), recovers without a restart, and nothing it answered 201 is lost.

interface Outcome {
  plain: Answer[];
  certificates: CertificateAnswer[];
  idempotent: IdempotentRequest[];
  disruptedAt: number;
  newLeaderAt: number;
  oldLeader: number;
  newLeader: number;
}

describe('PostgreSQL failover under sign-order load (Patroni, HAProxy, 2 API replicas)', () => {
  let bed: HaBed;
  let p: RunningPlatform;
  let ci: string;
  // Device CSRs made by openssl (the device side we did not write), one per certificate request.
  const csrs: string[] = [];

  beforeAll(async () => {
    const work = mkdtempSync(join(tmpdir(), 'ks-ha-csr-'));
    try {
      for (let i = 0; i < 160; i++) {
        const cn = `ha-device-${String(i).padStart(4, '0')}`;
        execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(work, 'k.pem'), '-subj', `/CN=${cn}/O=Demo Devices Ltd`, '-addext', `subjectAltName=DNS:${cn}.demo.test`, '-out', join(work, 'r.csr')], { stdio: 'pipe' });
        csrs.push(readFileSync(join(work, 'r.csr'), 'utf8'));
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    bed = await startBed();
    p = asPlatform(bed);
    ci = await ciToken(p);
  }, 300_000);

  afterAll(async () => {
    await bed?.down();
  }, 120_000);

  /**
   * Runs plain, idempotent and certificate clients through HAProxy, disrupts the primary, waits until the cluster has
   * a primary again (`recovered`; default: a leader other than the old one) and for fresh 201s.
   */
  async function underLoad(
    operationId: string,
    certOperationId: string,
    csrBatch: string[],
    tag: string,
    disrupt: (leader: number) => Promise<void>,
    recovered: (leader: number, oldLeader: number) => boolean = (leader, oldLeader) => leader >= 0 && leader !== oldLeader,
  ): Promise<Outcome> {
    let stop = false;
    const plain = plainLoad(bed.urls.api, ci, operationId, 4, () => stop, tag);
    const certificates = certificateLoad(bed.urls.api, ci, certOperationId, csrBatch, () => stop);
    const idempotent = idempotentLoad(bed.urls.api, ci, operationId, 2, () => stop, tag);
    let plainAnswers: Answer[] = [];
    try {
      await sleep(2_000);
      const oldLeader = await bed.leader();
      expect(oldLeader).toBeGreaterThanOrEqual(0);
      const disruptedAt = Date.now();
      await disrupt(oldLeader);
      let newLeader = -1;
      const newLeaderAt = await until(
        'a Patroni leader again',
        async () => {
          newLeader = await bed.leader();
          return recovered(newLeader, oldLeader);
        },
        60_000,
      );
      // Fresh successes through HAProxy after the promotion: the pools recovered by themselves.
      const probe: Answer[] = [];
      await until(
        'a 201 after the promotion',
        async () => {
          const a = await plainSignOrder(bed.urls.api, ci, operationId, `${tag}-probe`);
          probe.push(a);
          return a.status === 201 && a.sentAt > newLeaderAt;
        },
        60_000,
      );
      await sleep(2_000);
      stop = true;
      plainAnswers = [...(await plain), ...probe];
      return { plain: plainAnswers, certificates: await certificates, idempotent: await idempotent, disruptedAt, newLeaderAt, oldLeader, newLeader };
    } finally {
      stop = true;
      await Promise.allSettled([plain, idempotent, certificates]);
    }
  }

  /** Every invariant the issue names, read from the primary with SQL and through the audit verifier. */
  async function expectNothingLost(operationId: string, certOperationId: string, o: Outcome) {
    // Answers: successes and 503 + Retry-After only; no 500, no cut connection, no hang.
    const other = [...o.plain, ...o.certificates].filter((a) => a.status !== 201 && a.status !== 503).map((a) => `${a.status} ${a.code ?? ''}`);
    expect({ other: [...new Set(other)], log: other.length ? `${bed.log('api1').slice(-3000)}\n${bed.log('api2').slice(-3000)}` : '' }).toEqual({ other: [], log: '' });
    // 503 reservation_expired is the documented retry answer when the finish finds its reservation gone: reservations
    // commit without waiting for their WAL flush (ADR 0028), so a kill -9 of the primary may lose one; nothing is
    // stored or counted for it (the counts below).
    for (const a of [...o.plain, ...o.certificates].filter((x) => x.status === 503)) {
      expect(['database_unavailable', 'reservation_expired']).toContain(a.code);
      expect(a.retryAfter).toMatch(/^\d+$/);
    }
    const slowest = Math.max(...[...o.plain, ...o.certificates].map((a) => a.at - a.sentAt), ...o.idempotent.flatMap((r) => r.attempts.map((a) => a.at - a.sentAt)));
    expect(slowest).toBeLessThan(REQUEST_BOUND_MS);
    // Idempotent clients: every request ends 201 after its retries.
    expect(o.idempotent.filter((r) => r.final.status !== 201).map((r) => r.attempts.map((a) => `${a.status} ${a.code ?? ''}`))).toEqual([]);

    // Reservations of requests cut by the failover come back (lease 5 s) and the counts settle.
    let rows = await operationRows(p, operationId);
    for (let i = 0; i < 80 && (rows.openReservations > 0 || rows.usagesUsed !== rows.orders.size); i++) {
      await sleep(250);
      rows = await operationRows(p, operationId);
    }
    const ok = [...o.plain.filter((a) => a.status === 201), ...o.idempotent.map((r) => r.final)];
    const lost = ok.filter((a) => rows.orders.get(a.digest) !== a.result);
    expect(lost).toEqual([]);
    expect(rows.openReservations).toBe(0);
    expect(rows.usagesUsed).toBe(rows.orders.size);
    expect(rows.auditSuccesses).toBe(rows.orders.size);
    // One stored order per Idempotency-Key, whatever the number of attempts.
    const c = new Client({ connectionString: bed.urls.database });
    await c.connect();
    try {
      const keys = o.idempotent.map((r) => r.key);
      const per = await c.query<{ n: string }>(`SELECT count(*) AS n FROM sign_order WHERE "idempotencyKey" = ANY($1::text[]) GROUP BY "idempotencyKey" HAVING count(*) > 1`, [keys]);
      expect(per.rows).toEqual([]);
      // Every certificate answered 201 is stored as it was returned; certificate usages = certificates = audit successes.
      const certs = await c.query<{ serial: string; pem: string }>(`SELECT "serialHex" AS serial, pem FROM certificate WHERE "operationId" = $1::uuid`, [certOperationId]);
      const stored = new Map(certs.rows.map((r) => [r.serial.toLowerCase(), r.pem.trim()]));
      const issued = o.certificates.filter((a) => a.status === 201);
      expect(issued.length).toBeGreaterThan(0);
      expect(issued.filter((a) => stored.get(String(a.serial).toLowerCase()) !== a.certificate?.trim()).map((a) => a.serial)).toEqual([]);
      let certRows = await operationRows(p, certOperationId);
      for (let i = 0; i < 80 && (certRows.openReservations > 0 || certRows.usagesUsed !== stored.size); i++) {
        await sleep(250);
        certRows = await operationRows(p, certOperationId);
      }
      const certAudit = await c.query<{ n: string }>(`SELECT count(*) AS n FROM audit_event WHERE "operationId" = $1::uuid AND action = 'certificate.issue' AND outcome = 'SUCCESS'`, [certOperationId]);
      expect({ usages: certRows.usagesUsed, open: certRows.openReservations, audit: Number(certAudit.rows[0].n) }).toEqual({ usages: stored.size, open: 0, audit: stored.size });
    } finally {
      await c.end();
    }

    // Both API processes rode through it (no crash, no restart): the same pids still serve.
    for (const name of ['api1', 'api2']) expect(() => process.kill(bed.state.pids[name], 0)).not.toThrow();

    const auditor = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    const verify = await auditor<{ ok: boolean; checked: number }>('GET', '/api/v1/audit/verify');
    expect(verify.status).toBe(200);
    expect(verify.body.ok).toBe(true);
    return { rows, ok };
  }

  function summary(o: Outcome) {
    const failed = o.plain.filter((a) => a.status !== 201 && a.sentAt >= o.disruptedAt);
    const lastFailure = failed.length ? Math.max(...failed.map((a) => a.at)) : o.disruptedAt;
    return {
      patroniPromotionMs: o.newLeaderAt - o.disruptedAt,
      clientOutageMs: lastFailure - o.disruptedAt,
      plainRequests: o.plain.length,
      plain201: o.plain.filter((a) => a.status === 201).length,
      plain503: o.plain.filter((a) => a.status === 503).length,
      slowestAnswerMs: Math.max(...o.plain.map((a) => a.at - a.sentAt)),
      idempotentRequests: o.idempotent.length,
      idempotentRetried: o.idempotent.filter((r) => r.attempts.length > 1).length,
      idempotentAttempts: o.idempotent.reduce((n, r) => n + r.attempts.length, 0),
      idempotentFailed: o.idempotent.filter((r) => r.final.status !== 201).length,
      certificates201: o.certificates.filter((a) => a.status === 201).length,
      certificates503: o.certificates.filter((a) => a.status === 503).length,
    };
  }

  it('kill -9 of the primary node: Patroni promotes the synchronous standby, 503 + Retry-After meanwhile, no 201 lost', async () => {
    const op = await call<{ id: string }>(bed.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 100_000));
    expect(op.status).toBe(201);
    const certOp = await call<{ id: string }>(bed.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-ca-dev', 1_000));
    expect(certOp.status).toBe(201);
    const syncBefore = (await bed.cluster()).members.find((m) => m.role === 'sync_standby')?.name;
    // An approver logged in through the keyclient before the failover (her session row is in PostgreSQL).
    const ann = new KeyclientBrowser(bed);
    await ann.login('ann.approver@demo.test');
    expect((await ann.fetch('/me')).status).toBe(200);

    let killed: number[] = [];
    const o = await underLoad(op.body.id, certOp.body.id, csrs.slice(0, 60), 'kill', async (leader) => {
      killed = bed.killNode(leader);
    });
    expect(killed.length).toBeGreaterThanOrEqual(2);
    // Synchronous mode: only the synchronous standby may take over.
    expect(bed.nodeName(o.newLeader)).toBe(syncBefore);
    // The API said "retry" while there was no primary.
    expect(o.plain.filter((a) => a.status === 503 && a.sentAt >= o.disruptedAt).length).toBeGreaterThan(0);
    const { rows } = await expectNothingLost(op.body.id, certOp.body.id, o);

    // The dead node comes back as a replica of the new leader (pg_rewind) and the cluster is whole again.
    bed.startNode(o.oldLeader);
    await bed.waitHealthy(180_000);
    expect(await bed.leader()).toBe(o.newLeader);
    // The keyclient's pool recovered too, and the session made before the failover is still valid (synchronous
    // replication kept its row): the approver is still signed in and reaches the API through the keyclient.
    expect((await fetch(`${bed.urls.keyclient}/readyz`)).status).toBe(200);
    const me = await ann.fetch('/me');
    expect({ status: me.status, body: await me.json() }).toMatchObject({ status: 200, body: { displayName: 'Ann Approver' } });

    const s = summary(o);
    recordMeasurement('postgres-kill-9', { ...s, ordersStored: rows.orders.size, patroniTtlS: PATRONI_TIMING.ttl, loopWaitS: PATRONI_TIMING.loop_wait });
    // The promotion waits for the leader key to expire: at most ttl + loop_wait (+ a detection margin).
    expect(s.patroniPromotionMs).toBeLessThan((PATRONI_TIMING.ttl + PATRONI_TIMING.loop_wait + 10) * 1000);
  });

  it('clean switchover under load: the old primary steps down, the API rides through, no 201 lost', async () => {
    bed.ensureNodes();
    await bed.waitHealthy(180_000);
    const op = await call<{ id: string }>(bed.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 100_000));
    expect(op.status).toBe(201);
    const certOp = await call<{ id: string }>(bed.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-ca-dev', 1_000));
    expect(certOp.status).toBe(201);
    const o = await underLoad(op.body.id, certOp.body.id, csrs.slice(60, 120), 'switchover', async () => {
      await bed.switchover();
    });
    const { rows } = await expectNothingLost(op.body.id, certOp.body.id, o);
    await bed.waitHealthy(120_000);
    const s = summary(o);
    recordMeasurement('postgres-switchover', { ...s, ordersStored: rows.orders.size });
    expect(s.patroniPromotionMs).toBeLessThan(30_000);
  });
  it('kill -9 of the primary PostgreSQL only (Patroni lives): Patroni restarts it, 503 + Retry-After meanwhile, no 201 lost', async () => {
    bed.ensureNodes();
    await bed.waitHealthy(180_000);
    const op = await call<{ id: string }>(bed.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 100_000));
    expect(op.status).toBe(201);
    const certOp = await call<{ id: string }>(bed.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-ca-dev', 1_000));
    expect(certOp.status).toBe(201);
    let killedPostmaster: number | undefined;
    const o = await underLoad(
      op.body.id,
      certOp.body.id,
      csrs.slice(120),
      'postmaster',
      async (leader) => {
        killedPostmaster = bed.postmaster(leader);
        expect(bed.killPostmaster(leader).length).toBeGreaterThan(0);
      },
      // Patroni keeps the leader key and starts PostgreSQL again (crash recovery); or, had that failed, fails over.
      (leader, oldLeader) => leader >= 0 && (leader !== oldLeader || (bed.postmaster(leader) ?? killedPostmaster) !== killedPostmaster),
    );
    const { rows } = await expectNothingLost(op.body.id, certOp.body.id, o);
    await bed.waitHealthy(120_000);
    const s = summary(o);
    recordMeasurement('postgres-postmaster-kill-9', { ...s, sameLeader: o.newLeader === o.oldLeader, ordersStored: rows.orders.size });
  });
});
