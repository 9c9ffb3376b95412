import { AUDIT_CHECKPOINT_ACTION, auditCheckpointRecordDetails, type AuditCheckpoint } from '@keyserver/audit-chain';
import { sqlQuery, type Db } from '../db';
import { DataAccessError } from '../errors';
import { appendAuditTx, auditCheckpointsBetween } from './audit.repository';

/** Advisory lock key serializing checkpoint inserts across replicas ("ks-c"): taken only for the short insert, never while the HSM signs. */
export const AUDIT_CHECKPOINT_LOCK = 0x6b732d63;

/** The audit chain's head: the entry with the highest seq. */
export interface AuditHead {
  seq: string;
  hash: string;
  at: Date;
}

/** A checkpoint to store: the token the TSA signed over (sha256, entryHash) and what the register keeps of it. */
export interface NewAuditCheckpoint {
  seq: string;
  entryHash: string;
  tokenDer: Uint8Array;
  genTime: Date;
  tsaKeyid: string;
  tsaKeyVersion: number;
  serialHex: string;
  policy: string;
  /** The MessageImprint (DER) the token asserts, lower-case hex, as the register keeps every token's. */
  messageImprintHex: string;
}

/**
 * Signed checkpoints of the audit chain (docs/adr/0048-signed-audit-checkpoints.md): the table audit_checkpoint and
 * their tokens' rows in the TSA's register (timestamp_token, source "audit"), written together.
 */
export class AuditCheckpointRepository {
  constructor(private readonly db: Db) {}

  /** The current head of the chain, or null for an empty chain (ordered by the column: `seq` alone would be the text alias). */
  async head(): Promise<AuditHead | null> {
    const rows = await sqlQuery<{ seq: string; hash: string; at: Date }>(this.db, `SELECT seq::text AS seq, hash, at FROM audit_event ORDER BY audit_event.seq DESC LIMIT 1`, []);
    return rows[0] ?? null;
  }

  /**
   * The head when there is something to seal: an entry after the last checkpoint other than a checkpoint record (the
   * {@link AUDIT_CHECKPOINT_ACTION} entry written with it, which alone must not cause a checkpoint: that would cause
   * another record, and so on every pass). The head itself may be that record: entries written while the last
   * checkpoint was signed come before it, and sealing it seals them. null otherwise.
   */
  async headToSeal(): Promise<AuditHead | null> {
    const rows = await sqlQuery<{ seq: string; hash: string; at: Date }>(
      this.db,
      `SELECT e.seq::text AS seq, e.hash, e.at FROM (SELECT seq, hash, at FROM audit_event ORDER BY audit_event.seq DESC LIMIT 1) e
       WHERE EXISTS (SELECT 1 FROM audit_event a WHERE a.seq > COALESCE((SELECT max(seq) FROM audit_checkpoint), 0) AND a.action <> $1)`,
      [AUDIT_CHECKPOINT_ACTION],
    );
    return rows[0] ?? null;
  }

  /** The seq of the last checkpoint, or null when none. */
  async lastSealedSeq(): Promise<string | null> {
    const rows = await sqlQuery<{ seq: string | null }>(this.db, `SELECT max(seq)::text AS seq FROM audit_checkpoint`, []);
    return rows[0]?.seq ?? null;
  }

  /**
   * Stores a checkpoint and registers its token, in one transaction under {@link AUDIT_CHECKPOINT_LOCK} (held for the
   * inserts only: the token was signed before). Exactly one checkpoint per seq across replicas, and checkpoints stay
   * increasing in seq and genTime: false (nothing stored, the token is discarded unissued) when a checkpoint at this or
   * a later seq, or one with a later genTime, exists, or when the last checkpoint record comes after seq (this one would
   * not seal it: docs/adr/0048 addendum). With the checkpoint it appends its {@link AUDIT_CHECKPOINT_ACTION} entry
   * (seq and the token's SHA-256), so the next checkpoint seals it. `invalid_state` when the entry at seq does not have entryHash
   * (the head moved under a rewrite); `not_found` for an unknown TSA key.
   */
  async record(cp: NewAuditCheckpoint): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${AUDIT_CHECKPOINT_LOCK})`);
      const later = await tx.$queryRawUnsafe<{ n: bigint }[]>(
        `SELECT count(*) AS n FROM audit_checkpoint WHERE seq >= $1::bigint OR "genTime" > $2::timestamptz`,
        cp.seq,
        cp.genTime,
      );
      if (Number(later[0].n) > 0) return false;
      const record = await tx.$queryRawUnsafe<{ seq: bigint | null }[]>(`SELECT max(seq) AS seq FROM audit_event WHERE action = $1`, AUDIT_CHECKPOINT_ACTION);
      if (record[0].seq !== null && BigInt(record[0].seq) > BigInt(cp.seq)) return false;
      const entry = await tx.$queryRawUnsafe<{ hash: string }[]>(`SELECT hash FROM audit_event WHERE seq = $1::bigint`, cp.seq);
      if (entry[0]?.hash !== cp.entryHash) throw new DataAccessError('invalid_state', `audit entry seq ${cp.seq} does not have the hash to seal`);
      const key = await tx.$queryRawUnsafe<{ id: string }[]>(`SELECT id::text AS id FROM "key" WHERE keyid = $1 AND type = 'TSA'`, cp.tsaKeyid);
      if (!key[0]) throw new DataAccessError('not_found', `no TSA key ${cp.tsaKeyid}`);
      await tx.$executeRawUnsafe(
        `INSERT INTO audit_checkpoint (seq, "entryHash", "tokenDer", "genTime", "tsaKeyId", "tsaKeyVersion", "serialHex")
         VALUES ($1::bigint, $2, $3, $4::timestamptz, $5::uuid, $6, $7)`,
        cp.seq,
        cp.entryHash,
        Buffer.from(cp.tokenDer),
        cp.genTime,
        key[0].id,
        cp.tsaKeyVersion,
        cp.serialHex,
      );
      await tx.$executeRawUnsafe(
        `INSERT INTO timestamp_token ("serialHex", "keyId", "genTime", policy, "hashAlgorithm", "messageImprint", "nonceHex", source, "requestId")
         VALUES ($1, $2::uuid, $3::timestamptz, $4, 'SHA-256', $5, NULL, 'audit', NULL)`,
        cp.serialHex,
        key[0].id,
        cp.genTime,
        cp.policy,
        cp.messageImprintHex,
      );
      // In the chain itself: a deleted checkpoint row is then checkpoint_missing (its record names it, the next checkpoint seals the record).
      await appendAuditTx(tx, {
        action: AUDIT_CHECKPOINT_ACTION,
        outcome: 'SUCCESS',
        actorClient: 'keyserver-api audit sealer',
        keyid: cp.tsaKeyid,
        details: auditCheckpointRecordDetails(cp),
      });
      return true;
    });
  }

  /** Every checkpoint in seq order, as a verifier and an export line take it. */
  list(): Promise<AuditCheckpoint[]> {
    return auditCheckpointsBetween(this.db, null, null);
  }
}
