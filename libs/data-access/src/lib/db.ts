import { PrismaPg } from '@prisma/adapter-pg';
import { Pool, type PoolClient, type QueryResult, type QueryResultRow } from 'pg';
import { Prisma, PrismaClient } from '../generated/prisma/client';
import { armReadTimeout, poolConfig, readTimeoutOf, type ConnectionOptions } from './connection';
import { isPostgresUnavailable, isUnavailableSqlState } from '@keyserver/errors';
import { DataAccessError } from './errors';
import { UUID_PATTERN } from '@keyserver/api-contract';
import { AccessCache } from './access-cache';

/** Transaction isolation levels accepted by {@link Db.transaction}. */
export type Isolation = 'ReadCommitted' | 'RepeatableRead' | 'Serializable';

/** Prisma transaction client; only repositories see it. */
export type Tx = Prisma.TransactionClient;

/** A database handle: one connection pool and its Prisma client. */
export interface Db {
  readonly prisma: PrismaClient;
  /**
   * The pg pool under Prisma. Only repositories use it, for the per-request hot path (authorization, usage
   * reservation, sign-order and audit writes) where Prisma's per-query overhead dominated the CPU profile.
   */
  readonly pool: Pool;
  /** Runs `fn` in one transaction (default READ COMMITTED, 60 s timeout). */
  transaction<T>(fn: (tx: Tx) => Promise<T>, options?: { isolation?: Isolation; timeoutMs?: number }): Promise<T>;
  /**
   * The hot path's subject and key lookups cached with invalidation on every change (access-cache.ts, ADR 0028);
   * a pass-through until `access.listen()` (the API calls it at boot).
   */
  readonly access: AccessCache;
  /**
   * False behind a transaction-pooling PgBouncer (`pooler: 'transaction'`): a statement prepared in one server session
   * is missing from the next, so {@link sqlPrepared} runs unnamed and group commits inline their values.
   */
  readonly preparedStatements: boolean;
  /** Closes the pool. */
  close(): Promise<void>;
}

const PRISMA_READS = new Set(['findUnique', 'findUniqueOrThrow', 'findFirst', 'findFirstOrThrow', 'findMany', 'count', 'aggregate', 'groupBy']);

/**
 * Creates a database handle over `@prisma/adapter-pg`. `options` bound the pool (size, connect, statement and lock
 * timeouts) and keep only connections to a writable server (connection.ts, ADR 0026).
 * Run {@link migrateDatabase} first; the handle never changes the schema.
 */
export function createDb(databaseUrl: string, options: ConnectionOptions = {}): Db {
  const pool = new Pool(poolConfig(databaseUrl, options));
  // An idle connection dropped by a restarting server must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  // Nor one a transaction holds between two statements (the server's FATAL arrives as an 'error' event when no
  // query runs, and pg-pool listens only on idle connections): the next statement on it fails (503) and the pool
  // destroys it on release.
  pool.on('connect', (client) => client.on('error', () => undefined));
  armReadTimeout(pool, readTimeoutOf(options));
  const preparedStatements = options.pooler !== 'transaction';
  if (!preparedStatements) pool.on('connect', (client) => unprepared.add(client));
  const adapter = new PrismaPg(pool);
  const base = new PrismaClient({ adapter });
  const access = new AccessCache();
  // Every query, raw or not: a lost database becomes 503 database_unavailable, never a 500.
  const prisma = base.$extends({
    query: {
      async $allOperations({ operation, args, query }) {
        try {
          return await query(args);
        } catch (err) {
          throw asUnavailable(err);
        } finally {
          // Anything but a model read may have changed access (raw SQL included): this replica reads its own writes.
          if (!PRISMA_READS.has(operation)) access.flush();
        }
      },
    },
  }) as unknown as PrismaClient;
  return {
    prisma,
    pool,
    transaction: async (fn, opts = {}) => {
      try {
        return await base.$transaction(fn, {
          isolationLevel: opts.isolation ? Prisma.TransactionIsolationLevel[opts.isolation] : undefined,
          // Callers may hold a row lock while an HSM signs; waiting for a pooled connection under load is normal.
          timeout: opts.timeoutMs ?? 60_000,
          maxWait: 60_000,
        });
      } catch (err) {
        throw asUnavailable(err);
      } finally {
        // Committed or not, whatever it changed is not served from the cache to this replica's next request.
        access.flush();
      }
    },
    access,
    preparedStatements,
    close: async () => {
      await access.close();
      await base.$disconnect();
      if (!pool.ended) await pool.end();
    },
  };
}

const UNAVAILABLE_PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2028']);
const UNAVAILABLE_CAUSES = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections', 'DatabaseDoesNotExist']);
// Prisma's own messages; node-postgres' codes and messages are @keyserver/errors' isPostgresUnavailable.
const UNAVAILABLE_MESSAGE = /Can't reach database server/i;

/**
 * True when an error means the database cannot be reached or dropped the connection: Prisma's connection codes,
 * driver-adapter cause kinds and messages, and whatever `isPostgresUnavailable` says of node-postgres' errors.
 */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (depth > 5 || typeof err !== 'object' || err === null) return false;
  if (err instanceof DataAccessError) return err.code === 'database_unavailable';
  if (err instanceof Prisma.PrismaClientInitializationError) return true;
  const e = err as Record<string, unknown>;
  const code = typeof e['code'] === 'string' ? e['code'] : undefined;
  if (code && UNAVAILABLE_PRISMA_CODES.has(code)) return true;
  const kind = typeof e['kind'] === 'string' ? e['kind'] : undefined;
  if (kind && UNAVAILABLE_CAUSES.has(kind)) return true;
  const original = typeof e['originalCode'] === 'string' ? e['originalCode'] : undefined;
  if (original && isUnavailableSqlState(original)) return true;
  const message = typeof e['message'] === 'string' ? e['message'] : '';
  if (UNAVAILABLE_MESSAGE.test(message) || isPostgresUnavailable({ code, message, errors: e['errors'] })) return true;
  return isDatabaseUnavailable(e['cause'], depth + 1) || isDatabaseUnavailable((e['meta'] as Record<string, unknown> | undefined)?.['driverAdapterError'], depth + 1);
}

function asUnavailable(err: unknown): unknown {
  return !(err instanceof DataAccessError) && isDatabaseUnavailable(err)
    ? new DataAccessError('database_unavailable', 'the database is not reachable; retry shortly', { cause: err })
    : err;
}

/** True when `err` carries SQLSTATE `state`, wherever the driver put it (Prisma's meta, the adapter's error, a cause). */
function hasSqlState(err: unknown, state: string, depth = 0): boolean {
  if (depth > 5 || typeof err !== 'object' || err === null) return false;
  const e = err as Record<string, unknown>;
  const meta = e['meta'] as Record<string, unknown> | undefined;
  if ([e['code'], e['originalCode'], meta?.['code']].includes(state)) return true;
  return hasSqlState(e['cause'], state, depth + 1) || hasSqlState(meta?.['driverAdapterError'], state, depth + 1);
}

/** True when PostgreSQL aborted the transaction to break a deadlock (SQLSTATE 40P01), wherever the driver put it. */
export function isDeadlock(err: unknown): boolean {
  return hasSqlState(err, '40P01');
}

/**
 * Runs `transaction` again when PostgreSQL chose it as a deadlock's victim (ADR 0045), at most `attempts` times in
 * all: it was rolled back whole, so a new attempt reads and decides everything again. For transactions whose locks
 * cannot always be taken in one order (a revocation's second round of key locks); the last deadlock is thrown.
 */
export async function retryDeadlocks<T>(transaction: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await transaction();
    } catch (err) {
      if (attempt >= attempts || !isDeadlock(err)) throw err;
    }
  }
}

/** Attempts of {@link retryBusyRows} and the pause before each further one (ms, growing by the attempt). */
export const BUSY_ROW_ATTEMPTS = 20;
const BUSY_ROW_PAUSE_MS = 10;

/**
 * Runs `transaction` again, after a short pause, when a row lock it asked for with NOWAIT was held (SQLSTATE 55P03):
 * for a lock that must not be waited for while the audit append lock is held (a rotation's key row, ADR 0045
 * addendum "the lock-order review"). The attempt was rolled back whole, so the next one reads and decides everything
 * again. Still busy after `attempts`: `conflict` (nothing was changed).
 */
export async function retryBusyRows<T>(transaction: () => Promise<T>, what: string, attempts = BUSY_ROW_ATTEMPTS): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await transaction();
    } catch (err) {
      if (!hasSqlState(err, '55P03')) throw err;
      if (attempt >= attempts) throw new DataAccessError('conflict', `${what} is busy; try again`, { cause: err });
      await new Promise((r) => setTimeout(r, BUSY_ROW_PAUSE_MS * attempt));
    }
  }
}

/** The unique constraints of a serial per issuer (ADR 0020 addendum "serial numbers per issuer"). */
const SERIAL_CONSTRAINTS = ['issued_serial_pkey', 'certificate_issuerKeyId_serialHex_key'];

function mentionsSerialConstraint(err: unknown, depth = 0): boolean {
  if (depth > 6 || typeof err !== 'object' || err === null) return false;
  return Object.values(err as Record<string, unknown>).some((v) =>
    typeof v === 'string' ? SERIAL_CONSTRAINTS.some((c) => v.includes(c)) : mentionsSerialConstraint(v, depth + 1),
  );
}

/** True when a statement failed because the issuer already used the serial (23505 on a serial constraint). */
export function isSerialInUse(err: unknown): boolean {
  const unique = hasSqlState(err, '23505') || (err instanceof Prisma.PrismaClientKnownRequestError && err.code === 'P2002');
  return unique && (mentionsSerialConstraint(err) || (err instanceof Error && SERIAL_CONSTRAINTS.some((c) => err.message.includes(c))));
}

/** Maps Prisma's known request errors to stable data-access codes. */
export function mapPrismaError(err: unknown, what: string): never {
  if (err instanceof DataAccessError) throw err;
  if (isDatabaseUnavailable(err)) throw asUnavailable(err);
  if (isSerialInUse(err)) throw new DataAccessError('serial_in_use', `the issuer of ${what} already used this serial number`, { cause: err });
  if (err instanceof Prisma.PrismaClientKnownRequestError) {
    if (err.code === 'P2002') throw new DataAccessError('conflict', `${what} already exists`, { cause: err });
    if (err.code === 'P2025') throw new DataAccessError('not_found', `${what} not found`, { cause: err });
    if (err.code === 'P2003') throw new DataAccessError('invalid_input', `${what} references a missing row`, { cause: err });
  }
  throw err;
}

/** One SQL statement on the pool; errors mapped like Prisma's (503 when the database is gone). */
export async function sqlQuery<R extends QueryResultRow>(db: Db | PoolClient, text: string, values: unknown[] = []): Promise<R[]> {
  try {
    return (await runQuery<R>('pool' in db ? db.pool : db, text, values)).rows;
  } catch (err) {
    throw asUnavailable(err);
  }
}

/**
 * `EXECUTE` of a {@link PreparedStatement} with `values` as literals (each the text node-postgres would bind, as
 * {@link inlineParams}), for a script of {@link sqlScriptTransaction} given the same statement in `prepared`;
 * undefined when a value has no literal form (the caller then runs it on its own).
 */
export function executeSql(statement: PreparedStatement, values: readonly unknown[]): string | undefined {
  const literals: string[] = [];
  for (const v of values) {
    const literal = sqlLiteral(v);
    if (literal === undefined) return undefined;
    literals.push(literal);
  }
  return `EXECUTE ${scriptName(statement)}(${literals.join(', ')})`;
}

/**
 * A {@link PreparedStatement} with `values` as one statement of a {@link sqlScriptTransaction} script on `db`: its
 * {@link executeSql} (give the script the statement in `prepared`), or behind a transaction pooler its text with the
 * same literals inlined ({@link inlineParams}: no PREPARE, nothing left in the session). Undefined as they are.
 */
export function scriptSql(db: Db, statement: PreparedStatement, values: readonly unknown[]): string | undefined {
  return db.preparedStatements ? executeSql(statement, values) : inlineParams(statement.text, values);
}

/**
 * The SQL-level name of a statement prepared for scripts: not the protocol-level name node-postgres uses, since both
 * share the session's namespace and node-postgres knows only of the statements it prepared itself.
 */
const scriptName = (statement: PreparedStatement): string => `"${statement.name}__script"`;

/** Per pooled connection, the statements prepared with SQL PREPARE for scripts. */
const preparedForScripts = new WeakMap<PoolClient, Set<string>>();

/** Prepares what a script needs and this connection lacks: once per connection and statement, on its own round trip. */
async function prepareInScripts(client: PoolClient, prepared: readonly PreparedStatement[]): Promise<void> {
  let done = preparedForScripts.get(client);
  for (const statement of prepared) {
    if (done?.has(statement.name)) continue;
    try {
      await runQuery(client, `PREPARE ${scriptName(statement)} AS ${statement.text}`);
    } catch (err) {
      // 42P05: this session has it already (prepared before this map saw the connection).
      if (sqlState(err) !== '42P05') throw err;
    }
    if (!done) preparedForScripts.set(client, (done = new Set()));
    done.add(statement.name);
  }
}

/** A hot-path statement that each connection parses and plans once (a named statement), then only binds and runs. */
export interface PreparedStatement {
  readonly name: string;
  readonly text: string;
}

const preparedNames = new Map<string, string>();

/**
 * Declares a {@link PreparedStatement} (once, at module load). PostgreSQL spent more CPU parsing and planning the
 * sign order's statements than running them (issue 20: 1.59 ms per order's SQL re-planned vs 0.58 ms prepared,
 * pgbench in the same run; docs/adr/0036-prepared-statements.md). Parameter types are inferred at the first Parse,
 * as for an unnamed statement; a name declared twice must have the same text.
 */
export function preparedStatement(name: string, text: string): PreparedStatement {
  const known = preparedNames.get(name);
  if (known !== undefined && known !== text) throw new Error(`prepared statement ${name} declared twice with different text`);
  preparedNames.set(name, text);
  return { name, text };
}

/** The connections of pools whose {@link Db.preparedStatements} is false (a client does not know its pool). */
const unprepared = new WeakSet<PoolClient>();

/** {@link sqlQuery} of a {@link PreparedStatement}: a named statement, or an unnamed one behind a transaction pooler. */
export async function sqlPrepared<R extends QueryResultRow>(db: Db | PoolClient, statement: PreparedStatement, values: unknown[]): Promise<R[]> {
  const named = 'pool' in db ? db.preparedStatements : !unprepared.has(db);
  try {
    return (await runQuery<R>('pool' in db ? db.pool : db, named ? { name: statement.name, text: statement.text } : statement.text, values)).rows;
  } catch (err) {
    throw asUnavailable(err);
  }
}

/**
 * Every query of this module, in node-postgres' callback form. Its promise form (`client.query(text)` without a
 * callback) stores on the query a callback created inside pg's `query()`, whose context holds the query itself; under
 * load V8 then kept every query's objects (rows, buffers, promises) through young-generation GCs and promoted them,
 * to die in the old generation (issue 20: ~2.3 MB promoted per scavenge and 9-24 ms pauses in a loop of 1,000
 * queries/s on a pooled client, against nothing promoted and 0.3 ms with a callback; docs/benchmarks.md).
 * `pool.query` hands pg a callback of its own, so it is safe either way.
 */
function runQuery<R extends QueryResultRow>(q: Pool | PoolClient, text: string | { name: string; text: string }, values: unknown[] = []): Promise<QueryResult<R>> {
  return new Promise((resolve, reject) =>
    typeof text === 'string'
      ? q.query<R>(text, values, (err: Error | undefined, r: QueryResult<R>) => (err ? reject(err) : resolve(r)))
      : q.query<R>({ ...text, values }, (err: Error | undefined, r: QueryResult<R>) => (err ? reject(err) : resolve(r))),
  );
}

/** node-postgres' own conversion of a bound parameter to its text form (a Buffer stays binary). */
const { prepareValue } = require('pg/lib/utils') as { prepareValue: (v: unknown) => string | Buffer | null };

/** One parameter value as a SQL literal of the same text node-postgres would bind; undefined when it cannot be one. */
function sqlLiteral(v: unknown): string | undefined {
  const text = prepareValue(v);
  if (text === null) return 'NULL';
  // A binary value has no text form here, and a NUL would end the Query message's string early.
  if (typeof text !== 'string' || text.includes('\0')) return undefined;
  return quoteLiteral(text);
}

/**
 * node-postgres' `escapeLiteral`, the same output for every string (db-script.spec holds them equal with fast-check),
 * in two regular-expression passes instead of one string concatenation per character: a finish's literals (a
 * certificate's PEM, the audit event's canonical JSON) took ~18 us each that way, on the event loop (issue 20).
 */
export function quoteLiteral(text: string): string {
  const quoted = `'${text.replace(/'/g, "''")}'`;
  return text.includes('\\') ? ` E${quoted.replace(/\\/g, '\\\\')}` : quoted;
}

/**
 * The statement `sql` with its `$n` placeholders replaced by `values` as quoted literals (each the text
 * node-postgres binds for it, escaped as `escapeLiteral` does: {@link quoteLiteral}; the casts written after a
 * placeholder stay), for a batch sent as ONE simple-protocol message ({@link sqlScriptTransaction}). Placeholders
 * inside quoted strings, quoted identifiers and line comments are left alone. Returns undefined (callers then bind
 * parameters as usual) for what this scanner does not read: dollar quoting, E'' strings, block comments, a
 * placeholder without a value, a binary value or a NUL character.
 */
export function inlineParams(sql: string, values: readonly unknown[]): string | undefined {
  let out = '';
  let from = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i];
    if (c === "'" || c === '"') {
      if (c === "'" && i > 0 && /[eE]/.test(sql[i - 1]) && !/[\w$]/.test(sql[i - 2] ?? ' ')) return undefined;
      let j = i + 1;
      for (;;) {
        j = sql.indexOf(c, j);
        if (j < 0) return undefined;
        if (sql[j + 1] !== c) break;
        j += 2;
      }
      i = j + 1;
    } else if (c === '-' && sql[i + 1] === '-') {
      const j = sql.indexOf('\n', i);
      i = j < 0 ? sql.length : j + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      return undefined;
    } else if (c === '$') {
      const m = /^\$(\d+)/.exec(sql.slice(i, i + 12));
      // Dollar quoting, or a $ inside an identifier.
      if (!m || (i > 0 && /[\w$]/.test(sql[i - 1]))) return undefined;
      const n = Number(m[1]);
      if (!Number.isSafeInteger(n) || n < 1 || n > values.length) return undefined;
      const literal = sqlLiteral(values[n - 1]);
      if (literal === undefined) return undefined;
      out += sql.slice(from, i) + literal;
      i += m[0].length;
      from = i;
    } else i++;
  }
  return out + sql.slice(from);
}

/** What {@link sqlScriptTransaction} did: the rows of each statement, or where it failed. */
export type ScriptOutcome =
  | { ok: true; rows: QueryResultRow[][] }
  /** `statements`: a statement failed and the transaction was rolled back (nothing committed); `commit`: unknown. */
  | { ok: false; phase: 'statements' | 'commit'; error: unknown };

/** SQLSTATE of a statement refused because the transaction block already failed. */
const IN_FAILED_TRANSACTION = '25P02';

/**
 * Runs complete statements (no parameters, see {@link inlineParams}) as ONE READ COMMITTED transaction in ONE round
 * trip: BEGIN, the statements and COMMIT in one simple-protocol message (PostgreSQL runs them in order and skips the
 * rest after an error). A group commit thus costs one round trip instead of one per statement plus two; on the loaded
 * 2-core machine of issue 20 each round trip waits for the backend and then the event loop to get a core.
 * After an error one probe tells the two cases apart: a statement failed (the block is aborted, the probe is refused
 * with 25P02, nothing was committed, it is rolled back) or COMMIT itself failed or the connection broke (unknown
 * outcome; the connection is destroyed).
 */
export async function sqlScriptTransaction(db: Db, statements: readonly string[], prepared: readonly PreparedStatement[] = []): Promise<ScriptOutcome> {
  let client: PoolClient;
  try {
    client = await db.pool.connect();
  } catch (err) {
    return { ok: false, phase: 'statements', error: asUnavailable(err) };
  }
  let broken: unknown;
  try {
    try {
      // A session-level PREPARE would land in whichever server session the pooler picks (scriptSql inlines instead).
      if (prepared.length > 0 && !db.preparedStatements) throw new Error('prepared statements are off for this pool (DATABASE_POOLER=transaction)');
      await prepareInScripts(client, prepared);
    } catch (err) {
      // Nothing of the script ran; the connection is as it was (PREPARE outside a transaction).
      return { ok: false, phase: 'statements', error: asUnavailable(err) };
    }
    try {
      const r = (await runQuery(client, `BEGIN;\n${statements.join(';\n')};\nCOMMIT`)) as unknown as QueryResult[];
      return { ok: true, rows: r.slice(1, -1).map((x) => x.rows) };
    } catch (err) {
      try {
        await runQuery(client, 'SELECT 1');
      } catch (probe) {
        if (sqlState(probe) === IN_FAILED_TRANSACTION) {
          try {
            await runQuery(client, 'ROLLBACK');
          } catch (rollbackErr) {
            broken = rollbackErr;
          }
          return { ok: false, phase: 'statements', error: asUnavailable(err) };
        }
      }
      broken = err instanceof Error ? err : new Error(String(err));
      return { ok: false, phase: 'commit', error: asUnavailable(err) };
    }
  } finally {
    // A connection whose transaction state is unknown is destroyed instead of going back to the pool.
    client.release(broken instanceof Error ? broken : undefined);
  }
}

/** Runs `fn` in one READ COMMITTED transaction on a pooled connection; rolls back on any throw. */
export async function sqlTransaction<T>(db: Db, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  let client: PoolClient;
  try {
    client = await db.pool.connect();
  } catch (err) {
    throw asUnavailable(err);
  }
  let broken: unknown;
  try {
    await runQuery(client, 'BEGIN');
    const result = await fn(client);
    await runQuery(client, 'COMMIT');
    return result;
  } catch (err) {
    try {
      await runQuery(client, 'ROLLBACK');
    } catch (rollbackErr) {
      broken = rollbackErr;
    }
    throw asUnavailable(err);
  } finally {
    // A connection that failed to roll back is destroyed instead of going back to the pool.
    client.release(broken instanceof Error ? broken : undefined);
  }
}

/** PostgreSQL SQLSTATE of a pg error (e.g. 23505 unique violation), if any. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A UUID as PostgreSQL's uuid type reads it: checked before a `::uuid` cast, which would fail on anything else. */
/** The one UUID pattern (@keyserver/api-contract ids.ts). */
export const UUID = UUID_PATTERN;
