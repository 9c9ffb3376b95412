import { createHash } from 'node:crypto';
import { hex, outcome, seedKey, twoReplicas } from '../../spec/fixtures';
import { AuditCheckpointRepository, type NewAuditCheckpoint } from './audit-checkpoint.repository';

// Signed audit checkpoints (docs/adr/0048): one per sealed seq across replicas, increasing, append-only, each token in
// the TSA's register. The tokens' cryptography is @keyserver/audit-chain's and the e2e spec's; here the storage.

const { dbA, dbB, a } = twoReplicas('auditcp');

describe(AuditCheckpointRepository.name, () => {
  const tsaKey = async () => {
    const k = await seedKey(a, { keyid: `tsa-${hex(3)}` });
    await dbA.pool.query(`UPDATE "key" SET type = 'TSA' WHERE keyid = $1`, [k.keyid]);
    return k.keyid;
  };
  const appendEntry = () => a.audit.append({ action: 'test.event', outcome: 'SUCCESS', details: { n: hex(4) } });
  // Every test's checkpoints after the ones before (the table is shared and refuses a genTime going backwards).
  let clock = Math.floor(Date.now() / 1000) * 1000;
  const later = () => new Date((clock += 10_000));
  const checkpoint = async (tsaKeyid: string, genTime = later()): Promise<NewAuditCheckpoint> => {
    const head = await new AuditCheckpointRepository(dbA).head();
    if (!head) throw new Error('empty chain');
    return { seq: head.seq, entryHash: head.hash, tokenDer: new Uint8Array(Buffer.from(hex(200), 'hex')), genTime, tsaKeyid, tsaKeyVersion: 1, serialHex: hex(16), policy: '2.25.1', messageImprintHex: hex(49) };
  };

  it('stores one checkpoint when two replicas seal the same head at once; the winner\'s token alone is in the register (source audit)', async () => {
    const tsa = await tsaKey();
    await appendEntry();
    const genTime = later();
    const [x, y] = [await checkpoint(tsa, genTime), await checkpoint(tsa, genTime)];
    const stored = await Promise.all([new AuditCheckpointRepository(dbA).record(x), new AuditCheckpointRepository(dbB).record(y)]);
    expect(stored.sort()).toEqual([false, true]);
    const rows = await dbA.pool.query(`SELECT c."serialHex", t.source FROM audit_checkpoint c JOIN timestamp_token t ON t."serialHex" = c."serialHex" WHERE c.seq = $1`, [x.seq]);
    expect(rows.rows).toEqual([{ serialHex: expect.any(String), source: 'audit' }]);
    const lost = [x, y].find((c) => c.serialHex !== rows.rows[0].serialHex) as NewAuditCheckpoint;
    expect((await dbA.pool.query(`SELECT 1 FROM timestamp_token WHERE "serialHex" = $1`, [lost.serialHex])).rowCount).toBe(0);
    expect(await new AuditCheckpointRepository(dbB).lastSealedSeq()).toBe(x.seq);
  });

  it('stores nothing for a seq at or below the last checkpoint, or with a genTime before the last one (checkpoints stay increasing)', async () => {
    const tsa = await tsaKey();
    await appendEntry();
    const older = await checkpoint(tsa);
    await appendEntry();
    const newer = await checkpoint(tsa);
    const repo = new AuditCheckpointRepository(dbA);
    expect(await repo.record(newer)).toBe(true);
    expect(await repo.record(older)).toBe(false);
    await appendEntry();
    expect(await repo.record(await checkpoint(tsa, new Date(newer.genTime.getTime() - 1000)))).toBe(false);
  });

  it('appends an audit.checkpoint entry naming the checkpoint (seq, token sha256) in the transaction that stores it; that entry alone leaves nothing to seal', async () => {
    const tsa = await tsaKey();
    await appendEntry();
    const cp = await checkpoint(tsa);
    const repo = new AuditCheckpointRepository(dbA);
    expect((await repo.headToSeal())?.seq).toBe(cp.seq);
    expect(await repo.record(cp)).toBe(true);
    const [rec] = (await dbA.pool.query(`SELECT seq::text AS seq, action, outcome, keyid, details FROM audit_event WHERE seq > $1::bigint ORDER BY audit_event.seq`, [cp.seq])).rows;
    expect(rec).toMatchObject({
      action: 'audit.checkpoint',
      outcome: 'SUCCESS',
      keyid: tsa,
      details: { checkpointSeq: cp.seq, entryHash: cp.entryHash, tokenSha256: createHash('sha256').update(cp.tokenDer).digest('hex'), serialHex: cp.serialHex },
    });
    // The record is the head, but sealing it alone would make a checkpoint every pass, forever.
    expect(await repo.headToSeal()).toBeNull();
    const next = await appendEntry();
    expect((await repo.headToSeal())?.seq).toBe(next.seq);
    expect(await a.audit.verifyChain()).toMatchObject({ ok: true });
  });

  it('seals entries written while the last checkpoint was signed, through its record (they come before the record)', async () => {
    const tsa = await tsaKey();
    await appendEntry();
    const cp = await checkpoint(tsa);
    const during = await appendEntry();
    const repo = new AuditCheckpointRepository(dbA);
    expect(await repo.record(cp)).toBe(true);
    const head = await repo.headToSeal();
    expect(BigInt(head?.seq ?? '0')).toBeGreaterThan(BigInt(during.seq));
    expect(await repo.record(await checkpoint(tsa))).toBe(true);
    expect(await repo.headToSeal()).toBeNull();
  });

  it('stores nothing before the last checkpoint record (a checkpoint signed earlier, stored after another was): each checkpoint seals the record of the one before', async () => {
    const tsa = await tsaKey();
    await appendEntry();
    const first = await checkpoint(tsa);
    await appendEntry();
    const second = await checkpoint(tsa);
    const repo = new AuditCheckpointRepository(dbB);
    expect(await repo.record(first)).toBe(true);
    // first's record now follows second's seq: second would not seal it.
    expect(await repo.record(second)).toBe(false);
    expect((await dbA.pool.query(`SELECT 1 FROM audit_checkpoint WHERE seq = $1`, [second.seq])).rowCount).toBe(0);
  });

  it('reads the head by seq as a number: seq 10 comes after seq 9 (it was ordered as text)', async () => {
    let last = await appendEntry();
    while (Number(last.seq) < 10) last = await appendEntry();
    expect((await new AuditCheckpointRepository(dbB).head())?.seq).toBe(last.seq);
  });

  it.each([
    ['fail an entry hash that is not the stored one at that seq (the head was rewritten)', 'invalid_state', (c: NewAuditCheckpoint) => ({ ...c, entryHash: 'f'.repeat(64) })],
    ['fail an unknown TSA key', 'not_found', (c: NewAuditCheckpoint) => ({ ...c, tsaKeyid: 'no-such-tsa' })],
  ])('%s: %s, nothing stored', async (_n, code, change) => {
    const tsa = await tsaKey();
    await appendEntry();
    const cp = change(await checkpoint(tsa));
    expect(await outcome(new AuditCheckpointRepository(dbA).record(cp))).toBe(code);
    expect((await dbA.pool.query(`SELECT 1 FROM audit_checkpoint WHERE seq = $1`, [cp.seq])).rowCount).toBe(0);
  });

  it('keeps checkpoints append-only: UPDATE and DELETE refused even for the owner, the application role may only read and add', async () => {
    const tsa = await tsaKey();
    await appendEntry();
    const cp = await checkpoint(tsa);
    await new AuditCheckpointRepository(dbA).record(cp);
    await expect(dbA.pool.query(`UPDATE audit_checkpoint SET "entryHash" = $2 WHERE seq = $1`, [cp.seq, 'a'.repeat(64)])).rejects.toMatchObject({ code: '42501' });
    await expect(dbA.pool.query(`DELETE FROM audit_checkpoint WHERE seq = $1`, [cp.seq])).rejects.toMatchObject({ code: '42501' });
    const grants = await dbA.pool.query(`SELECT privilege_type FROM information_schema.role_table_grants WHERE table_name = 'audit_checkpoint' AND grantee = 'keyserver_app' ORDER BY 1`);
    expect(grants.rows.map((g: { privilege_type: string }) => g.privilege_type)).toEqual(['INSERT', 'SELECT']);
    const listed = (await new AuditCheckpointRepository(dbB).list()).find((c) => c.seq === cp.seq);
    expect(listed).toEqual({ seq: cp.seq, entryHash: cp.entryHash, token: Buffer.from(cp.tokenDer).toString('base64'), genTime: cp.genTime.toISOString(), tsaKeyid: tsa, tsaKeyVersion: 1 });
  });
});
