import { createHash } from 'node:crypto';
import { Client } from 'pg';
import type { RunningPlatform } from '@keyserver/testing';
import { call, signOrderBody } from '../operations-support';

// Helpers of the fault-injection tests: a bounded sign-order load and the database's view of one operation.

export interface LoadAnswer {
  /** HTTP status, or 0 when the connection failed (refused, reset). */
  status: number;
  digest: string;
  code?: string;
  result?: string;
  retryAfter: string | null;
  at: number;
}

/**
 * Sends sign orders on `keyid` with `workers` closed-loop workers over `urls` (round robin) until `stop()` says so;
 * every digest is unique, so each answer can be matched with its database row.
 */
export async function signOrderLoad(urls: string[], token: string, operationid: string, workers: number, stop: () => boolean, tag = 'load', keyid = 'demo-fw-dev'): Promise<LoadAnswer[]> {
  const answers: LoadAnswer[] = [];
  let n = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (!stop()) {
        const i = n++;
        const digest = createHash('sha256').update(`fault ${tag} ${operationid} ${i}`).digest('hex');
        try {
          const r = await call<{ code?: string; result?: string }>(urls[i % urls.length], token, 'POST', '/api/signorders', signOrderBody(operationid, keyid, digest));
          answers.push({ status: r.status, digest, code: r.body.code, result: r.body.result, retryAfter: r.headers.get('retry-after'), at: Date.now() });
        } catch {
          answers.push({ status: 0, digest, retryAfter: null, at: Date.now() });
          // A dead process refuses at once; do not spin.
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }),
  );
  return answers;
}

export interface OperationRows {
  /** Usage reservations still open (taken, neither stored nor given back). */
  openReservations: number;
  usagesUsed: number;
  /** inputdata (hex digest) -> result of every stored sign order of the operation. */
  orders: Map<string, string>;
  /** SUCCESS signorder.create audit events of the operation. */
  auditSuccesses: number;
}

/** What the database holds for one operation, read directly with SQL. */
export async function operationRows(p: RunningPlatform, operationId: string): Promise<OperationRows> {
  const c = new Client({ connectionString: p.databaseUrl });
  await c.connect();
  try {
    const used = await c.query<{ usagesUsed: number }>(`SELECT "usagesUsed" FROM operation_key WHERE "operationId" = $1`, [operationId]);
    const orders = await c.query<{ inputdata: string; result: string }>(`SELECT inputdata, result FROM sign_order WHERE "operationId" = $1`, [operationId]);
    const audit = await c.query<{ n: string }>(
      `SELECT count(*) AS n FROM audit_event WHERE "operationId" = $1 AND action = 'signorder.create' AND outcome = 'SUCCESS'`,
      [operationId],
    );
    const open = await c.query<{ n: string }>(`SELECT count(*) AS n FROM usage_reservation WHERE "operationId" = $1`, [operationId]);
    return {
      openReservations: Number(open.rows[0]?.n ?? -1),
      usagesUsed: used.rows[0]?.usagesUsed ?? -1,
      orders: new Map(orders.rows.map((r) => [r.inputdata.toLowerCase(), r.result])),
      auditSuccesses: Number(audit.rows[0]?.n ?? -1),
    };
  } finally {
    await c.end();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
