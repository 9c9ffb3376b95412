import { mapPrismaError, type Db } from './db';

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

interface BffSessionRow {
  id: string;
  tid: string;
  oid: string;
  displayName: string | null;
  username: string | null;
  tokenCiphertext: Uint8Array;
  accessTokenExpiresAt: Date;
  createdAt: Date;
  lastSeenAt: Date;
  idleExpiresAt: Date;
  absoluteExpiresAt: Date;
}

function toRecord(row: BffSessionRow): BffSessionRecord {
  return {
    id: row.id,
    tid: row.tid,
    oid: row.oid,
    displayName: row.displayName,
    username: row.username,
    tokenCiphertext: Buffer.from(row.tokenCiphertext),
    accessTokenExpiresAt: row.accessTokenExpiresAt,
    createdAt: row.createdAt,
    lastSeenAt: row.lastSeenAt,
    idleExpiresAt: row.idleExpiresAt,
    absoluteExpiresAt: row.absoluteExpiresAt,
  };
}

/**
 * Storage of keyclient sessions in PostgreSQL, so several keyclient replicas share them.
 * Expiry is enforced in the queries: an expired session is never returned. Plain types in and out.
 */
export class BffSessionRepository {
  constructor(private readonly db: Db) {}

  /** Inserts a new session; DataAccessError `conflict` if the id already exists. */
  async create(session: NewBffSession): Promise<BffSessionRecord> {
    try {
      const row = await this.db.prisma.bffSession.create({
        data: {
          ...session,
          tokenCiphertext: new Uint8Array(session.tokenCiphertext),
          lastSeenAt: session.lastSeenAt ?? session.createdAt,
        },
      });
      return toRecord(row);
    } catch (err) {
      mapPrismaError(err, 'bff session');
    }
  }

  /** The session if it exists and neither its idle nor its absolute deadline has passed at `now`. */
  async findActive(id: string, now: Date): Promise<BffSessionRecord | null> {
    const row = await this.db.prisma.bffSession.findFirst({
      where: { id, idleExpiresAt: { gt: now }, absoluteExpiresAt: { gt: now } },
    });
    return row ? toRecord(row) : null;
  }

  /** Records activity: moves lastSeenAt and the idle deadline (callers cap it at the absolute deadline). */
  async touch(id: string, lastSeenAt: Date, idleExpiresAt: Date): Promise<boolean> {
    const { count } = await this.db.prisma.bffSession.updateMany({ where: { id }, data: { lastSeenAt, idleExpiresAt } });
    return count === 1;
  }

  /**
   * Replaces the encrypted tokens only if the stored ciphertext is still `expectedCiphertext`
   * (compare-and-set), so two replicas refreshing at once cannot overwrite each other.
   * Returns false when another writer got there first or the session is gone.
   */
  async replaceTokens(
    id: string,
    expectedCiphertext: Buffer,
    tokenCiphertext: Buffer,
    accessTokenExpiresAt: Date,
  ): Promise<boolean> {
    const { count } = await this.db.prisma.bffSession.updateMany({
      where: { id, tokenCiphertext: { equals: new Uint8Array(expectedCiphertext) } },
      data: { tokenCiphertext: new Uint8Array(tokenCiphertext), accessTokenExpiresAt },
    });
    return count === 1;
  }

  /** Overwrites deadlines; used by operators and tests to end or shorten sessions. */
  async setDeadlines(id: string, deadlines: { idleExpiresAt?: Date; absoluteExpiresAt?: Date }): Promise<boolean> {
    const { count } = await this.db.prisma.bffSession.updateMany({ where: { id }, data: deadlines });
    return count === 1;
  }

  /** Deletes the session; true if it existed. */
  async delete(id: string): Promise<boolean> {
    const { count } = await this.db.prisma.bffSession.deleteMany({ where: { id } });
    return count === 1;
  }

  /** Deletes every session past its idle or absolute deadline; returns how many. */
  async deleteExpired(now: Date): Promise<number> {
    const { count } = await this.db.prisma.bffSession.deleteMany({
      where: { OR: [{ idleExpiresAt: { lte: now } }, { absoluteExpiresAt: { lte: now } }] },
    });
    return count;
  }

  /** Cheap round trip for readiness probes. */
  async ping(): Promise<void> {
    await this.db.prisma.$queryRaw`SELECT 1`;
  }
}
