import { Pool, type PoolClient, type QueryResult, type QueryResultRow } from 'pg';
import { errorClass, isPostgresUnavailable } from '@keyserver/errors';

// The keyclient's own storage: its sessions live in the `keyclient` schema, which its database role
// (keyserver_keyclient) is the only one besides the owner to reach, and that role has no right on the
// Keyserver's tables (docs/adr/0018-keyclient-off-the-keyserver-tables.md). No Prisma and no @keyserver/data-access
// here: lint forbids the keyclient that library (scope:bff).

/** One server-side keyclient (BFF) session as plain data. Tokens stay encrypted in `tokenCiphertext`. */
export interface BffSessionRecord {
  /** sha256 hex of the session cookie value; the cookie value itself is never stored. */
  id: string;
  tid: string;
  oid: string;
  displayName: string | null;
  username: string | null;
  tokenCiphertext: Buffer;
  accessTokenExpiresAt: Date;
  createdAt: Date;
  lastSeenAt: Date;
  idleExpiresAt: Date;
  absoluteExpiresAt: Date;
}

export type NewBffSession = Omit<BffSessionRecord, 'lastSeenAt'> & { lastSeenAt?: Date };

/**
 * A storage refusal with a stable code: `conflict` (the id exists), `session_store_unavailable` (the database cannot
 * be reached or is failing over: the request may be retried; 503 + Retry-After, never a 500).
 */
export class SessionStoreError extends errorClass({ conflict: 409, session_store_unavailable: 503 }) {}

/**
 * True when `err` means "the session database is not reachable right now" rather than a fault of the request:
 * the same classes as the API's (@keyserver/errors `isPostgresUnavailable`).
 */
export function isSessionStoreUnavailable(err: unknown, depth = 0): boolean {
  if (err instanceof SessionStoreError) return err.code === 'session_store_unavailable';
  if (isPostgresUnavailable(err)) return true;
  // Our own refusal may travel as the cause of another error.
  return depth < 5 && typeof err === 'object' && err !== null && isSessionStoreUnavailable((err as { cause?: unknown }).cause, depth + 1);
}

/** A connection refused by {@link verifyPrimary}: SQLSTATE 25006 like a write on a standby. */
class ReadOnlyServerError extends Error {
  readonly code = '25006';
  constructor() {
    super('the database server is read-only (not the primary)');
    this.name = 'ReadOnlyServerError';
  }
}

/**
 * pg-pool's check of every new connection (libpq's target_session_attrs=read-write, as the API's pool does): a
 * standby, or an old primary that came back as one, is never kept; the request gets 503 and the next one connects
 * again, to whatever the primary endpoint leads to by then.
 */
function verifyPrimary(client: PoolClient, done: (err?: Error) => void): void {
  client.query<{ transaction_read_only: string }>('SHOW transaction_read_only').then(
    (r) => done(r.rows[0]?.transaction_read_only === 'off' ? undefined : new ReadOnlyServerError()),
    (err: Error) => done(err),
  );
}

const TABLE = '"keyclient"."bff_session"';
const COLUMNS = `"id", "tid", "oid", "displayName", "username", "tokenCiphertext", "accessTokenExpiresAt", "createdAt", "lastSeenAt", "idleExpiresAt", "absoluteExpiresAt"`;

function toRecord(row: BffSessionRecord): BffSessionRecord {
  return { ...row, tokenCiphertext: Buffer.from(row.tokenCiphertext) };
}

/**
 * Storage of keyclient sessions in PostgreSQL, so several keyclient replicas share them.
 * Expiry is enforced in the queries: an expired session is never returned. Plain types in and out.
 */
export class BffSessionRepository {
  /** The connection pool (its gauges are the keyclient's database metrics). */
  readonly pool: Pool;

  /** `databaseUrl` connects as the keyclient's role (DATABASE_URL of the keyclient). */
  constructor(databaseUrl: string, options: { poolSize?: number } = {}) {
    // Bounded like the API's pool (ADR 0026): a database failover is an error within seconds, never a hang.
    this.pool = new Pool({
      connectionString: databaseUrl,
      max: options.poolSize ?? 5,
      connectionTimeoutMillis: 5_000,
      keepAlive: true,
      statement_timeout: 10_000,
      query_timeout: 15_000,
      lock_timeout: 5_000,
      verify: verifyPrimary,
    });
    // An idle client losing its connection must not crash the process; the next query reconnects.
    this.pool.on('error', () => undefined);
  }

  /**
   * Inserts a new session; `conflict` if the id already exists. With `keepPerIdentity`, the same user's (tid, oid)
   * oldest sessions beyond that many are deleted (never the new one).
   */
  async create(session: NewBffSession, options: { keepPerIdentity?: number } = {}): Promise<BffSessionRecord> {
    const created = await this.insert(session);
    if (options.keepPerIdentity !== undefined) {
      await this.run(
        `DELETE FROM ${TABLE} WHERE "id" IN (SELECT "id" FROM ${TABLE} WHERE "tid" = $1 AND "oid" = $2 AND "id" <> $3 ORDER BY "createdAt" DESC, "id" DESC OFFSET $4)`,
        [created.tid, created.oid, created.id, Math.max(0, options.keepPerIdentity - 1)],
      );
    }
    return created;
  }

  private async insert(session: NewBffSession): Promise<BffSessionRecord> {
    const s = { ...session, lastSeenAt: session.lastSeenAt ?? session.createdAt };
    try {
      const r = await this.run<BffSessionRecord>(
        `INSERT INTO ${TABLE} (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ${COLUMNS}`,
        [s.id, s.tid, s.oid, s.displayName, s.username, s.tokenCiphertext, s.accessTokenExpiresAt, s.createdAt, s.lastSeenAt, s.idleExpiresAt, s.absoluteExpiresAt],
      );
      return toRecord(r.rows[0]);
    } catch (err) {
      if ((err as { code?: string }).code === '23505') throw new SessionStoreError('conflict', 'a session with this id exists', { cause: err });
      throw err;
    }
  }

  /** The session if it exists and neither its idle nor its absolute deadline has passed at `now`. */
  async findActive(id: string, now: Date): Promise<BffSessionRecord | null> {
    const r = await this.run<BffSessionRecord>(
      `SELECT ${COLUMNS} FROM ${TABLE} WHERE "id" = $1 AND "idleExpiresAt" > $2 AND "absoluteExpiresAt" > $2`,
      [id, now],
    );
    return r.rows[0] ? toRecord(r.rows[0]) : null;
  }

  /** Records activity: moves lastSeenAt and the idle deadline (callers cap it at the absolute deadline). */
  async touch(id: string, lastSeenAt: Date, idleExpiresAt: Date): Promise<boolean> {
    return this.changed(`UPDATE ${TABLE} SET "lastSeenAt" = $2, "idleExpiresAt" = $3 WHERE "id" = $1`, [id, lastSeenAt, idleExpiresAt]);
  }

  /**
   * Replaces the encrypted tokens only if the stored ciphertext is still `expectedCiphertext`
   * (compare-and-set), so two replicas refreshing at once cannot overwrite each other.
   * Returns false when another writer got there first or the session is gone.
   */
  async replaceTokens(id: string, expectedCiphertext: Buffer, tokenCiphertext: Buffer, accessTokenExpiresAt: Date): Promise<boolean> {
    return this.changed(`UPDATE ${TABLE} SET "tokenCiphertext" = $3, "accessTokenExpiresAt" = $4 WHERE "id" = $1 AND "tokenCiphertext" = $2`, [
      id,
      expectedCiphertext,
      tokenCiphertext,
      accessTokenExpiresAt,
    ]);
  }

  /** Overwrites deadlines; used by operators and tests to end or shorten sessions. */
  async setDeadlines(id: string, deadlines: { idleExpiresAt?: Date; absoluteExpiresAt?: Date }): Promise<boolean> {
    return this.changed(
      `UPDATE ${TABLE} SET "idleExpiresAt" = COALESCE($2, "idleExpiresAt"), "absoluteExpiresAt" = COALESCE($3, "absoluteExpiresAt") WHERE "id" = $1`,
      [id, deadlines.idleExpiresAt ?? null, deadlines.absoluteExpiresAt ?? null],
    );
  }

  /** Deletes the session; true if it existed. */
  async delete(id: string): Promise<boolean> {
    return this.changed(`DELETE FROM ${TABLE} WHERE "id" = $1`, [id]);
  }

  /** Deletes every session past its idle or absolute deadline; returns how many. */
  async deleteExpired(now: Date): Promise<number> {
    const r = await this.run(`DELETE FROM ${TABLE} WHERE "idleExpiresAt" <= $1 OR "absoluteExpiresAt" <= $1`, [now]);
    return r.rowCount ?? 0;
  }

  /** Cheap round trip for readiness probes. */
  async ping(): Promise<void> {
    await this.run('SELECT 1');
  }

  /** Closes the pool (shutdown). */
  async close(): Promise<void> {
    await this.pool.end();
  }

  private async changed(text: string, params: unknown[]): Promise<boolean> {
    const r = await this.run(text, params);
    return r.rowCount === 1;
  }

  /** Every statement: a database that cannot be reached is SessionStoreError session_store_unavailable (503). */
  private async run<R extends QueryResultRow = QueryResultRow>(text: string, params: unknown[] = []): Promise<QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, params);
    } catch (err) {
      if (!(err instanceof SessionStoreError) && isSessionStoreUnavailable(err)) {
        throw new SessionStoreError('session_store_unavailable', 'the session database is not reachable; retry shortly', { cause: err });
      }
      throw err;
    }
  }
}
