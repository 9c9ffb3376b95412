import { sqlQuery, type Db } from '../db';

/** Operations waiting for approvals, as a scrape reports them. */
export interface AwaitingApproval {
  count: number;
  /** Age of the oldest one in seconds (0 when none). */
  oldestSeconds: number;
}

/** The few reads a metrics scrape makes (each one indexed statement; nothing on the request path). */
export class MetricsRepository {
  constructor(private readonly db: Db) {}

  /**
   * Operations someone must still approve: REQUESTED, inside their window, and with at least one key that needs
   * approvers (an ungated operation is usable at once and waits for no one): the operation policy's
   * `effectiveState(op, now) === 'REQUESTED' && needsApproval(op.keys)` (../policy/operation-policy.ts) in SQL.
   */
  async awaitingApproval(): Promise<AwaitingApproval> {
    const rows = await sqlQuery<{ count: number; oldest: number }>(
      this.db,
      `SELECT count(*)::int AS "count", COALESCE(EXTRACT(EPOCH FROM now() - min(o."createdAt")), 0)::float8 AS "oldest"
       FROM "operation" o
       WHERE o."state" = 'REQUESTED' AND o."validTo" > now()
         AND EXISTS (SELECT 1 FROM "operation_key" k WHERE k."operationId" = o."id" AND k."requiredApprovers" > 0)`,
    );
    return { count: rows[0]?.count ?? 0, oldestSeconds: Math.max(0, rows[0]?.oldest ?? 0) };
  }

  /** Every keyid (the values a `key` label may take). */
  async keyids(limit: number): Promise<string[]> {
    const rows = await sqlQuery<{ keyid: string }>(this.db, `SELECT "keyid" FROM "key" ORDER BY "createdAt" LIMIT $1`, [limit]);
    return rows.map((r) => r.keyid);
  }
}
