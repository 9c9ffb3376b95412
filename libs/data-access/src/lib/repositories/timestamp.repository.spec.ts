import { hex, outcome, seedKey, twoReplicas } from '../../spec/fixtures';
import { TimestampRepository, type TimestampRecord } from './timestamp.repository';

const { dbA, dbB, a } = twoReplicas('tsreg');

describe(TimestampRepository.name, () => {
  const record = (tsaKeyid: string, serialHex = hex(16)): TimestampRecord => ({
    serialHex,
    tsaKeyid,
    genTime: new Date('2026-12-06T10:00:00Z'),
    policy: '2.25.1',
    hashAlgorithm: 'SHA-256',
    messageImprint: hex(40),
    nonceHex: hex(10),
    source: 'public',
    requestId: 'req-1',
  });
  const tsaKey = async () => {
    const k = await seedKey(a, { keyid: `tsa-${hex(3)}` });
    await dbA.pool.query(`UPDATE "key" SET type = 'TSA' WHERE keyid = $1`, [k.keyid]);
    return k.keyid;
  };

  it('registers a token once: the same serial from two replicas at once is one row and one conflict', async () => {
    const tsa = await tsaKey();
    const r = record(tsa);
    const results = await Promise.all([outcome(new TimestampRepository(dbA).record(r)), outcome(new TimestampRepository(dbB).record(r))]);
    expect(results.sort()).toEqual(['conflict', 'ok']);
    expect(await new TimestampRepository(dbB).find(r.serialHex)).toMatchObject({ tsaKeyid: tsa, source: 'public', nonceHex: r.nonceHex });
  });

  it.each([
    ['fail an unknown key', 'no-such-key', 'not_found'],
    ['fail a key that is not a TSA key', 'fw', 'not_found'],
  ])('%s', async (_n, which, code) => {
    const keyid = which === 'fw' ? (await seedKey(a)).keyid : which;
    expect(await outcome(new TimestampRepository(dbA).record(record(keyid)))).toBe(code);
  });

  it('keeps the register append-only for the application role', async () => {
    const tsa = await tsaKey();
    const r = record(tsa);
    await new TimestampRepository(dbA).record(r);
    const grants = await dbA.pool.query(`SELECT privilege_type FROM information_schema.role_table_grants WHERE table_name = 'timestamp_token' AND grantee = 'keyserver_app' ORDER BY 1`);
    expect(grants.rows.map((g: { privilege_type: string }) => g.privilege_type)).toEqual(['INSERT', 'SELECT']);
  });
});
