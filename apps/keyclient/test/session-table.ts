// Test-only view of the keyclient's session table, as the database owner sees it (the tests read and tamper
// with rows the keyclient wrote). It offers the small Prisma-shaped subset (`prisma.bffSession`) the tests were
// written against when the sessions lived in the Keyserver's Prisma schema; they now live in the keyclient's own
// schema (docs/adr/0018-keyclient-off-the-keyserver-tables.md), outside any Prisma client.
import { Pool } from 'pg';
import type { BffSessionRecord } from '../src/session/bff-session.repository';

type Where = { where?: { id?: string } };
const TABLE = '"keyclient"."bff_session"';
const COLUMNS = new Set(['tid', 'oid', 'displayName', 'username', 'tokenCiphertext', 'accessTokenExpiresAt', 'lastSeenAt', 'idleExpiresAt', 'absoluteExpiresAt']);

export class SessionTable {
  private readonly pool: Pool;

  constructor(url: string) {
    this.pool = new Pool({ connectionString: url, max: 2 });
  }

  readonly prisma = {
    bffSession: {
      findMany: async (): Promise<BffSessionRecord[]> => (await this.pool.query<BffSessionRecord>(`SELECT * FROM ${TABLE}`)).rows,
      findUnique: async (q: Where): Promise<BffSessionRecord | null> => (await this.select(q))[0] ?? null,
      findUniqueOrThrow: async (q: Where): Promise<BffSessionRecord> => {
        const row = (await this.select(q))[0];
        if (!row) throw new Error(`no session ${q.where?.id}`);
        return row;
      },
      count: async (q: Where = {}): Promise<number> => (await this.select(q)).length,
      update: async (q: Required<Where> & { data: Record<string, unknown> }): Promise<void> => {
        const names = Object.keys(q.data).filter((k) => COLUMNS.has(k));
        const values = names.map((k) => (q.data[k] instanceof Uint8Array ? Buffer.from(q.data[k] as Uint8Array) : q.data[k]));
        const set = names.map((k, i) => `"${k}" = $${i + 2}`).join(', ');
        const r = await this.pool.query(`UPDATE ${TABLE} SET ${set} WHERE "id" = $1`, [q.where.id, ...values]);
        if (r.rowCount !== 1) throw new Error(`no session ${q.where.id}`);
      },
    },
  };

  async close(): Promise<void> {
    await this.pool.end();
  }

  private async select(q: Where): Promise<BffSessionRecord[]> {
    const id = q.where?.id;
    const r = id === undefined ? await this.pool.query<BffSessionRecord>(`SELECT * FROM ${TABLE}`) : await this.pool.query<BffSessionRecord>(`SELECT * FROM ${TABLE} WHERE "id" = $1`, [id]);
    return r.rows;
  }
}

/** The same database, connecting as the keyclient's own role (what the keyclient process uses). */
export function asKeyclientRole(url: string): string {
  const u = new URL(url);
  u.username = 'keyserver_keyclient';
  u.password = '';
  return u.href;
}
