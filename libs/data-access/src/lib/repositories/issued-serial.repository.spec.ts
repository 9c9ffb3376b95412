import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hex, outcome, seedSubject, twoReplicas, window } from '../../spec/fixtures';
import { createEmptyDatabase, sql, type TempDatabase } from '../../spec/temp-database';
import { defaultMigrationsDir, migrateDatabase } from '../migrate/migrator';
import type { AuditInput, Key } from '../types';
import { CertificateIssuanceRepository, SERIAL_ATTEMPTS, type IssuedCertificateRecord } from './certificate-issuance.repository';
import { KeyLifecycleRepository } from './key-lifecycle.repository';

const PEM = '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n';
const event = (action: string): AuditInput => ({ action, outcome: 'SUCCESS', actorName: 'test' });

/** Serials are unique per issuer across device certificates and key certificates, on two replicas (ADR 0020 addendum). */
describe('issued serials', () => {
  const r = twoReplicas('serials', 5);
  const issuance = [new CertificateIssuanceRepository(r.dbA), new CertificateIssuanceRepository(r.dbB)];

  const day = 86_400_000;
  const caKey = (): Promise<Key> =>
    r.a.keys.create({ keyid: `ca-${hex(4)}`, type: 'CA', algorithm: 'EC_P256', hash: 'SHA256', hsmKeyId: hex(8), certificatePem: PEM, certificateSerial: hex(8), notBefore: new Date(Date.now() - day), notAfter: new Date(Date.now() + 365 * day) });
  const below = (ca: Key, serial: string, type: 'FW' | 'CA' | 'TSA' = 'FW') =>
    r.b.keys.create({ keyid: `${type.toLowerCase()}-${hex(4)}`, type, algorithm: 'EC_P256', hash: 'SHA256', hsmKeyId: hex(8), parentKeyid: ca.keyid, certificatePem: PEM, certificateSerial: serial, notBefore: new Date(), notAfter: new Date(Date.now() + day) });
  const record = (serialHex: string): IssuedCertificateRecord => ({ serialHex, subjectDn: 'CN=device', sans: [], notBefore: new Date(), notAfter: new Date(Date.now() + day), pem: PEM });

  async function operation(ca: Key, usages: number) {
    const requester = await seedSubject(r.a);
    const op = await r.a.operations.create({ description: 'devices', ordererId: requester.id, ...window(), keys: [{ keyid: ca.keyid, usagesAllowed: usages }] });
    return { requester, op, request: { operationId: op.id, issuerKeyid: ca.keyid, issuerVersion: 1, requesterId: requester.id, digest: null, audit: { action: 'certificate.issue', outcome: 'SUCCESS' as const } } };
  }
  const registered = async (ca: Key) =>
    (await sql<{ serialHex: string }>(r.tmp.url, `SELECT s."serialHex" FROM "issued_serial" s JOIN "key" k ON k."id" = s."issuerKeyId" WHERE k."keyid" = $1 ORDER BY 1`, [ca.keyid])).map((x) => x.serialHex);

  it('ok two replicas issuing device certificates with one forced serial at once: one signs again with a fresh serial, one usage each', async () => {
    const ca = await caKey();
    const { op, request } = await operation(ca, 2);
    const forced = hex(16);
    const attempts: number[] = [];
    const issued = await Promise.all(
      issuance.map((repo) =>
        repo.issueWithUsage(request, async (attempt) => {
          attempts.push(attempt);
          return record(attempt === 0 ? forced : hex(16));
        }),
      ),
    );
    const serials = issued.map((x) => x.certificate.serialHex);
    expect(new Set(serials).size).toBe(2);
    expect(serials).toContain(forced);
    expect(attempts.sort()).toEqual([0, 0, 1]);
    expect((await r.a.operations.get(op.id)).keys[0].usagesUsed).toBe(2);
    expect(await registered(ca)).toEqual([...serials].sort());
  });

  it('fail a serial that collides on every attempt: serial_in_use, the usage given back, nothing stored', async () => {
    const ca = await caKey();
    const { op, request } = await operation(ca, 2);
    const forced = hex(16);
    await issuance[0].issueWithUsage(request, async () => record(forced));
    let calls = 0;
    expect(
      await outcome(
        issuance[1].issueWithUsage(request, async () => {
          calls++;
          return record(forced);
        }),
      ),
    ).toBe('serial_in_use');
    expect(calls).toBe(SERIAL_ATTEMPTS);
    expect((await r.a.operations.get(op.id)).keys[0].usagesUsed).toBe(1);
    expect(await sql(r.tmp.url, `SELECT count(*)::int AS n FROM "certificate" WHERE "operationId" = $1`, [op.id])).toEqual([{ n: 1 }]);
  });

  it.each([
    ['FW', 'FW'],
    ['CA', 'CA'],
    ['TSA', 'TSA'],
  ] as const)('fail a %s key certificate with a serial its issuer gave a device certificate: serial_in_use, no key stored', async (_name, type) => {
    const ca = await caKey();
    const { request } = await operation(ca, 1);
    const forced = hex(16);
    await issuance[0].issueWithUsage(request, async () => record(forced));
    expect(await outcome(below(ca, forced, type))).toBe('serial_in_use');
    expect(await sql(r.tmp.url, `SELECT count(*)::int AS n FROM "key" WHERE "parentId" = $1::uuid`, [ca.id])).toEqual([{ n: 0 }]);
  });

  it('fail a device certificate with a serial its issuer gave a key certificate (upper case too): serial_in_use', async () => {
    const ca = await caKey();
    const forced = hex(16);
    await below(ca, forced);
    const { request } = await operation(ca, 1);
    expect(await outcome(issuance[1].issueWithUsage(request, async () => record(forced.toUpperCase())))).toBe('serial_in_use');
  });

  it('fail two key certificates of one issuer with one serial, created at once on two replicas: one stored, the other serial_in_use', async () => {
    const ca = await caKey();
    const forced = hex(16);
    const mk = (repos: typeof r.a) => repos.keys.create({ keyid: `fw-${hex(4)}`, type: 'FW', algorithm: 'EC_P256', hash: 'SHA256', hsmKeyId: hex(8), parentKeyid: ca.keyid, certificatePem: PEM, certificateSerial: forced, notBefore: new Date(), notAfter: new Date(Date.now() + day) });
    expect((await Promise.all([outcome(mk(r.a)), outcome(mk(r.b))])).sort()).toEqual(['ok', 'serial_in_use']);
  });

  it('fail a renewal whose certificate reuses a serial of its issuer: serial_in_use, the version not added', async () => {
    const ca = await caKey();
    const fw = await below(ca, hex(16));
    const taken = (await below(ca, hex(16))).certificateSerial;
    const life = new KeyLifecycleRepository(r.dbA);
    const renewal = { hsmKeyId: fw.hsmKeyId, certificatePem: PEM, certificateSerial: taken, notBefore: new Date(), notAfter: new Date(Date.now() + day), issuerKeyid: ca.keyid, issuerVersion: 1 };
    expect(await outcome(life.addVersion(fw.keyid, 1, renewal, event('key.renew')))).toBe('serial_in_use');
    expect(await outcome(life.addVersion(fw.keyid, 1, { ...renewal, certificateSerial: hex(16) }, event('key.renew')))).toBe('ok');
  });

  it('ok one serial under two issuers', async () => {
    const [x, y] = [await caKey(), await caKey()];
    const forced = hex(16);
    await below(x, forced);
    expect(await outcome(below(y, forced))).toBe('ok');
  });
});

describe('migration 20261214000_issuer_serials', () => {
  const NAME = '20261214000_issuer_serials';
  let tmp: TempDatabase;
  let before: string;
  beforeEach(async () => {
    tmp = await createEmptyDatabase('serials_mig');
    // Every migration before this one, then rows written the way the old schema allowed.
    before = mkdtempSync(join(tmpdir(), 'mig-'));
    for (const d of readdirSync(defaultMigrationsDir())) if (d < NAME) cpSync(join(defaultMigrationsDir(), d), join(before, d), { recursive: true });
    await migrateDatabase(tmp.url, undefined, { migrationsDir: before });
    await sql(tmp.url, `INSERT INTO "key" ("id", "keyid", "type", "algorithm", "hash", "hsmKeyId", "certificatePem", "certificateSerial", "notBefore", "notAfter") VALUES
      ('00000000-0000-4000-8000-000000000001', 'ca-1', 'CA', 'EC_P256', 'SHA256', 'aa', 'x', '01', now(), now() + interval '1 day'),
      ('00000000-0000-4000-8000-000000000002', 'fw-1', 'FW', 'EC_P256', 'SHA256', 'bb', 'x', '0a0b', now(), now() + interval '1 day')`);
    await sql(tmp.url, `INSERT INTO "key_version" ("id", "keyId", "version", "hsmKeyId", "certificatePem", "certificateSerial", "notBefore", "notAfter", "issuerKeyid", "issuerVersion")
      VALUES (gen_random_uuid(), '00000000-0000-4000-8000-000000000002', 1, 'bb', 'x', '0a0b', now(), now() + interval '1 day', 'ca-1', 1)`);
  });
  afterEach(async () => {
    if (before) rmSync(before, { recursive: true, force: true });
    await tmp?.drop();
  });
  const device = (serial: string) =>
    sql(tmp.url, `INSERT INTO "certificate" ("id", "issuerKeyId", "issuerVersion", "serialHex", "subjectDn", "notBefore", "notAfter", "pem") VALUES (gen_random_uuid(), '00000000-0000-4000-8000-000000000001', 1, $1, 'CN=d', now(), now() + interval '1 day', 'x')`, [serial]);

  it('ok existing serials registered: a later reuse of one is refused', async () => {
    await device('0c');
    expect(await outcome(migrateDatabase(tmp.url))).toBe('ok');
    expect(await sql(tmp.url, `SELECT "serialHex" FROM "issued_serial" ORDER BY 1`)).toEqual([{ serialHex: '0a0b' }, { serialHex: '0c' }]);
    await expect(device('0A0B')).rejects.toMatchObject({ code: '23505', constraint: 'issued_serial_pkey' });
  });

  it('fail an issuer that used a serial twice (a device certificate and a key certificate): the migration stops, nothing registered', async () => {
    await device('0a0b');
    await expect(migrateDatabase(tmp.url)).rejects.toMatchObject({ code: 'migration_failed', message: expect.stringContaining('ca-1/0a0b (2 times)') });
    expect(await sql(tmp.url, `SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'issued_serial'`)).toEqual([{ n: 0 }]);
  });
});
