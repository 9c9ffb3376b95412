// Does a busy notification dispatcher slow the sign path? (bundled and run by scripts/bench-notify.mjs)
// One real API process with a webhook endpoint (a local receiver answering at once): sign orders (P-256,
// closed loop) measured idle, then while the dispatcher drains a backlog of events, then idle again.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { Agent, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from 'pg';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { call, ciToken, operationBody, userToken } from '../../apps/keyserver-e2e/src/operations-support';

export interface Phase {
  phase: string;
  perSecond: number;
  p50ms: number;
  p99ms: number;
  requests: number;
  errors: number;
  /** Deliveries the dispatcher finished during the phase. */
  deliveriesPerSecond: number;
}

const pct = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN);

function post(agent: Agent, url: string, token: string, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${token}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function sql<R extends Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<R[]> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<R>(text, params)).rows;
  } finally {
    await c.end();
  }
}

export async function runNotifyBench(o: { seconds: number; backlog: number; concurrency: number }, log: (m: string) => void): Promise<Phase[]> {
  let received = 0;
  const receiver: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  let p: RunningPlatform | undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: o.concurrency });
  try {
    p = await startPlatform({
      extraApiEnv: {
        NOTIFY_WEBHOOKS: JSON.stringify([{ name: 'sink', url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, secret: 'b'.repeat(40) }]),
        NOTIFY_POLL_MS: '100',
        LOG_LEVEL: 'error',
      },
    });
    const url = p.env.urls.api;
    const dbUrl = p.databaseUrl;
    const [ada, alan] = [await userToken(p, 'ada.admin@demo.test'), await userToken(p, 'alan.admin@demo.test')];
    const session = await call<{ id: string }>(url, ada, 'POST', '/api/v1/admin-sessions', { description: 'notify bench: raise key limits' });
    await call(url, alan, 'POST', `/api/v1/admin-sessions/${session.body.id}/authorizations`);
    const limits = { maxWindowSeconds: 86_400, maxUsagesPerOperation: 1_000_000, maxBackdateSeconds: 300, maxStartAheadSeconds: 3_600 };
    const l = await call(url, ada, 'PUT', '/api/v1/keys/demo-fw-dev/limits', limits, { 'x-admin-session': session.body.id });
    if (l.status !== 200) throw new Error(`limits: ${l.status}`);
    const ci = await ciToken(p);
    const op = await call<{ id: string }>(url, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1_000_000));
    if (op.status !== 201) throw new Error(`operation: ${op.status} ${JSON.stringify(op.body)}`);
    // One real approval request: its payload is the template of the backlog.
    const otto = await userToken(p, 'otto.orderer@demo.test');
    const asked = await call<{ id: string }>(url, otto, 'POST', '/api/v1/operations', operationBody('demo-fw-prod', 1));
    if (asked.status !== 201) throw new Error(`approval request: ${asked.status}`);
    const bodies = Array.from({ length: 256 }, (_, i) =>
      Buffer.from(
        JSON.stringify({
          operationid: op.body.id,
          keyid: 'demo-fw-dev',
          inputdata: createHash('sha256').update(`notify bench ${i}`).digest('hex'),
          inputformat: 'hex',
          inputpadding: 'none',
          signatureformat: 'asn1',
          description: 'notify bench',
        }),
      ),
    );
    const sent = async () => Number((await sql<{ n: string }>(dbUrl, `SELECT count(*) AS n FROM "notification_delivery" WHERE "state" = 'SENT'`))[0].n);
    const phase = async (name: string): Promise<Phase> => {
      const lat: number[] = [];
      let errors = 0;
      let n = 0;
      const sent0 = await sent();
      const start = performance.now();
      const end = start + o.seconds * 1000;
      await Promise.all(
        Array.from({ length: o.concurrency }, async () => {
          while (performance.now() < end) {
            const t = performance.now();
            const status = await post(agent, `${url}/api/signorders`, ci, bodies[n++ % bodies.length]);
            if (status === 201) lat.push(performance.now() - t);
            else errors++;
          }
        }),
      );
      const elapsed = (performance.now() - start) / 1000;
      const sent1 = await sent();
      lat.sort((a, b) => a - b);
      const r = { phase: name, perSecond: lat.length / elapsed, p50ms: pct(lat, 0.5), p99ms: pct(lat, 0.99), requests: lat.length, errors, deliveriesPerSecond: (sent1 - sent0) / elapsed };
      log(JSON.stringify(r));
      return r;
    };
    const out: Phase[] = [];
    out.push(await phase('idle (before)'));
    // Events of operations that do not exist, as 'operation.approved' (an approval request of a missing operation would be skipped, not sent).
    log(`writing a backlog of ${o.backlog} events`);
    await sql(
      p.databaseUrl,
      `INSERT INTO "notification_outbox" ("id", "event", "operationId", "recipientIds", "payload")
       SELECT gen_random_uuid(), 'operation.approved', gen_random_uuid(), t."recipientIds", t."payload"
         FROM "notification_outbox" t, generate_series(1, $1) WHERE t."operationId" = $2`,
      [o.backlog, asked.body.id],
    );
    out.push(await phase('dispatcher busy'));
    const pending = async () => Number((await sql<{ n: string }>(dbUrl, `SELECT (SELECT count(*) FROM "notification_outbox" WHERE "expandedAt" IS NULL) + (SELECT count(*) FROM "notification_delivery" WHERE "state" = 'PENDING') AS n`))[0].n);
    const left = await pending();
    log(`backlog left after the busy phase: ${left} (0 means the dispatcher finished early and the phase was partly idle)`);
    for (let i = 0; i < 600 && (await pending()) > 0; i++) await new Promise((r) => setTimeout(r, 500));
    out.push(await phase('idle (after)'));
    log(`webhook calls received: ${received}`);
    return out;
  } finally {
    agent.destroy();
    await p?.stop();
    receiver.closeAllConnections();
    await new Promise<void>((r) => receiver.close(() => r()));
  }
}
