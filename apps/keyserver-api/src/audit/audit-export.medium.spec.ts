import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Permission } from '@keyserver/api-contract';
import { AuditCheckpointRepository, AuditRepository, type Db } from '@keyserver/data-access';
import { Audited } from '../common/audited';
import { mediumActor, mediumDatabase, seedKey } from '../testing/medium';
import type { AuditSeals } from './audit-seal';
import { AuditService } from './audit.service';

// The export's bytes for a fixed chain, as the in-memory export (commit f2185db, before the export streamed) wrote
// them: the streaming export must write exactly these.
const GOLDEN = join(__dirname, 'fixtures', 'audit-export-f2185db.jsonl');
const ENTRIES = 1203;
const CHECKPOINTS = ['400', '900', '1200'];

const hex64 = (n: number) => n.toString(16).padStart(64, '0');
const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

/**
 * A fixed chain of {@link ENTRIES} entries across three export batches (seq 1…, every column, text with line
 * breaks JSON keeps raw, astral and combining characters, nested details) and three checkpoints: the same rows, the
 * same bytes, in every run.
 */
async function sqlQuery<R>(db: Db, text: string, values: unknown[]): Promise<R[]> {
  return (await db.pool.query(text, values)).rows as R[];
}

async function fixture(db: Db): Promise<void> {
  const tsa = await seedKey(db, { type: 'CA', prefix: 'tsa' });
  await sqlQuery(db, `UPDATE "key" SET keyid = 'demo-tsa' WHERE keyid = $1`, [tsa]);
  const t0 = Date.parse('2026-12-01T08:00:00.123Z');
  for (let from = 1; from <= ENTRIES; from += 400) {
    const values: unknown[] = [];
    const rows: string[] = [];
    for (let i = from; i < Math.min(from + 400, ENTRIES + 1); i++) {
      const odd = i % 7 === 0;
      const row = [
        i, uuid(i), new Date(t0 + i * 1000), i % 5 === 0 ? 'sign.order' : 'key.update', i % 11 === 0 ? 'DENIED' : 'SUCCESS', i % 11 === 0 ? 'forbidden' : null,
        'tid-1', uuid(100_000 + (i % 3)), odd ? 'Ada\u2028Lovelace \u0085 \u2029 🦄 é' : 'Grace Hopper', 'keyclient', odd ? null : uuid(200_000 + i),
        i % 5 === 0 ? 'demo-fw-dev' : null, i % 13 === 0 ? uuid(300_000 + i) : null, null, i % 5 === 0 ? hex64(i) : null, `req-${i}`,
        JSON.stringify({ n: i, note: odd ? 'line\u2028break\u2029and\u0085next "quoted" \\ back\tslash' : 'x'.repeat(i % 50), nested: { list: [1, 'two', null, true], empty: {} } }),
        hex64(i - 1), hex64(i),
      ];
      rows.push(`(${row.map((v) => `$${values.push(v)}`).join(', ')})`);
    }
    await sqlQuery(
      db,
      `INSERT INTO audit_event (seq, id, at, action, outcome, "errorCode", "actorTid", "actorOid", "actorName", "actorClient", "actorSubjectId", keyid, "operationId", "adminSessionId", digest, "requestId", details, "prevHash", hash)
       VALUES ${rows.join(', ')}`,
      values,
    );
  }
  for (const [i, seq] of CHECKPOINTS.entries()) {
    await sqlQuery(
      db,
      `INSERT INTO audit_checkpoint (seq, "entryHash", "tokenDer", "genTime", "tsaKeyId", "tsaKeyVersion", "serialHex")
       SELECT $1::bigint, $2, $3, $4::timestamptz, k.id, $5, $6 FROM "key" k WHERE k.keyid = 'demo-tsa'`,
      [seq, hex64(Number(seq)), Buffer.from(`token ${i} \u0000\u00ff`, 'latin1'), new Date(t0 + Number(seq) * 1000 + 500), i + 1, `serial-${i}`],
    );
  }
  await sqlQuery(db, `SELECT setval(pg_get_serial_sequence('audit_event', 'seq'), $1::bigint)`, [ENTRIES]);
}

async function text(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

describe(`${AuditService.name} export (medium: real PostgreSQL)`, () => {
  const pg = mediumDatabase('ks_api_medium_audit_export');
  let audit: AuditRepository;
  let service: AuditService;

  beforeAll(async () => {
    await fixture(pg.db);
    audit = new AuditRepository(pg.db);
    const checkpoints = new AuditCheckpointRepository(pg.db);
    service = new AuditService(audit, new Audited(audit), { list: () => checkpoints.list() } as unknown as AuditSeals);
  });

  it('ok writes byte for byte what the in-memory export wrote for the same chain', async () => {
    const auditor = await mediumActor(pg.db, { natures: ['AUDITOR'] }, Permission.AuditRead);
    const out = await text(await service.export(auditor, 'req-export-golden'));
    expect(out).toBe(readFileSync(GOLDEN, 'utf8'));
    const [event] = (await audit.list({ action: 'audit.export', requestId: 'req-export-golden' })).items;
    expect(event.details).toEqual({ entries: ENTRIES, lastSeq: String(ENTRIES), checkpoints: CHECKPOINTS.length });
  });

  it('ok exports the chain as it stood when the export began: entries and checkpoints stored while it streams are left out', async () => {
    const auditor = await mediumActor(pg.db, { natures: ['AUDITOR'] }, Permission.AuditRead);
    const [{ head }] = await sqlQuery<{ head: string }>(pg.db, `SELECT max(seq)::text AS head FROM audit_event`, []);
    const stream = await service.export(auditor, 'req-export-snapshot');
    const it = stream[Symbol.asyncIterator]();
    const first = Buffer.from((await it.next()).value as Buffer).toString('utf8');
    // Stored while the export streams: an entry, and a checkpoint sealing it (with its record).
    const later = await audit.append({ action: 'key.update', outcome: 'SUCCESS', requestId: 'req-during-export' });
    await sqlQuery(
      pg.db,
      `INSERT INTO audit_checkpoint (seq, "entryHash", "tokenDer", "genTime", "tsaKeyId", "tsaKeyVersion", "serialHex")
       SELECT $1::bigint, $2, '\\x00'::bytea, now(), k.id, 1, 'serial-during' FROM "key" k WHERE k.keyid = 'demo-tsa'`,
      [later.seq, later.hash],
    );
    let rest = '';
    for (let r = await it.next(); !r.done; r = await it.next()) rest += Buffer.from(r.value as Buffer).toString('utf8');
    const lines = (first + rest).trimEnd().split('\n');
    const entries = lines.filter((l) => !l.startsWith('{"checkpoint":')).map((l) => JSON.parse(l) as { seq: string });
    const checkpoints = lines.filter((l) => l.startsWith('{"checkpoint":')).map((l) => (JSON.parse(l) as { checkpoint: { seq: string } }).checkpoint.seq);
    expect([entries.at(-1)?.seq, checkpoints]).toEqual([head, CHECKPOINTS]);
    expect(lines.some((l) => l.includes('req-during-export'))).toBe(false);
  });
});
