import { sqlQuery, type Db } from '../db';
import { DataAccessError } from '../errors';

/** One issued RFC 3161 token as the TSA's register keeps it. */
export interface TimestampRecord {
  /** Serial number, lower-case hex of the DER INTEGER content. */
  serialHex: string;
  /** keyid of the TSA key that signed it. */
  tsaKeyid: string;
  genTime: Date;
  policy: string;
  hashAlgorithm: string;
  /** The hashed message the requester sent, lower-case hex. */
  messageImprint: string;
  nonceHex: string | null;
  source: 'public' | 'firmware';
  requestId: string | null;
}

/** The register of timestamp tokens (docs/adr/0024): one row per token, written before the token is returned. */
export class TimestampRepository {
  constructor(private readonly db: Db) {}

  /**
   * Records a token; a serial already in the register is `conflict` (the caller draws another serial and
   * signs again, so no two tokens ever share a serial), an unknown TSA key is `not_found`.
   */
  async record(r: TimestampRecord): Promise<void> {
    const rows = await sqlQuery(
      this.db,
      `INSERT INTO timestamp_token ("serialHex", "keyId", "genTime", policy, "hashAlgorithm", "messageImprint", "nonceHex", source, "requestId")
         SELECT $1, k.id, $3, $4, $5, $6, $7, $8, $9 FROM "key" k WHERE k.keyid = $2 AND k.type = 'TSA'
       ON CONFLICT ("serialHex") DO NOTHING RETURNING 1 AS ok`,
      [r.serialHex, r.tsaKeyid, r.genTime, r.policy, r.hashAlgorithm, r.messageImprint, r.nonceHex, r.source, r.requestId],
    );
    if (rows.length === 1) return;
    const known = await sqlQuery(this.db, `SELECT 1 AS ok FROM "key" WHERE keyid = $1 AND type = 'TSA'`, [r.tsaKeyid]);
    if (known.length === 0) throw new DataAccessError('not_found', `no TSA key ${r.tsaKeyid}`);
    throw new DataAccessError('conflict', `timestamp serial ${r.serialHex} already issued`);
  }

  /** A token of the register by serial (lower-case hex), or null. */
  async find(serialHex: string): Promise<TimestampRecord | null> {
    const rows = await sqlQuery<TimestampRecord & Record<string, unknown>>(
      this.db,
      `SELECT t."serialHex", k.keyid AS "tsaKeyid", t."genTime", t.policy, t."hashAlgorithm", t."messageImprint", t."nonceHex", t.source, t."requestId"
       FROM timestamp_token t JOIN "key" k ON k.id = t."keyId" WHERE t."serialHex" = $1`,
      [serialHex.toLowerCase()],
    );
    return rows[0] ?? null;
  }
}
