// Medium tier: a restore of a database backup, as far as the CRLs see it (ADR 0029 addendum "CRL numbers survive a
// restore"): the key's CRL counter and its stored CRLs go back to the backup's, while the CRLs signed after the backup
// are already out there (relying parties, CDNs). On a real PostgreSQL and SoftHSM token, judged by the real openssl.
import { randomBytes } from 'node:crypto';
import { AuditRepository, crlNumberSecond, type Db } from '@keyserver/data-access';
import { toPem } from '@keyserver/pki';
import type { IssueCertificateResponse } from '@keyserver/api-contract';
import type { CertificatesService } from '../certificates/certificates.service';
import { deviceCsr, mediumCertificates, mediumDatabase, mediumIssuer, mediumOpenssl, mediumSigner, seedCaChain } from '../testing/medium';
import { CrlService } from './crl.service';

interface Published {
  crlNumber: bigint;
  thisUpdate: Date;
  der: Buffer;
}

describe(`${CrlService.name} after a restore of a database backup (medium: real PostgreSQL, SoftHSM, openssl)`, () => {
  const pg = mediumDatabase('ks_api_medium_crl_restore');
  const hsm = mediumSigner('medium-crl-restore');
  const openssl = mediumOpenssl('medium-crl-restore');
  let db: Db;
  let service: CrlService;
  let certificates: CertificatesService;
  let caKeyid: string;
  let chainFile: string;
  const devices: IssueCertificateResponse[] = [];
  const requestId = () => `req-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    db = pg.db;
    ({ crls: service, certificates } = mediumCertificates(db, hsm.signer));
    const chain = await seedCaChain(db, hsm.signer);
    caKeyid = chain.caKeyid;
    chainFile = openssl.write('chain.pem', `${chain.rootCertificatePem}${chain.caCertificatePem}`);
    const { provisioner, operationId } = await mediumIssuer(db, caKeyid, 3);
    for (const cn of ['device-a', 'device-b', 'device-c']) devices.push(await certificates.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr(cn) }, requestId()));
  });

  /** The CRL number as `openssl crl -crlnumber` prints it (hex), not as our code reads it. */
  function opensslNumber(der: Buffer): bigint {
    const out = openssl.run('crl', '-inform', 'DER', '-in', openssl.write(`n-${randomBytes(4).toString('hex')}.der`, der), '-noout', '-crlnumber').out;
    const hex = /crlNumber=(?:0x)?([0-9A-Fa-f]+)/.exec(out)?.[1];
    if (!hex) throw new Error(`no crlNumber in ${out}`);
    return BigInt(`0x${hex}`);
  }
  function verify(device: IssueCertificateResponse, crls: Buffer[], atSeconds: number): { status: number | null; out: string } {
    const leaf = openssl.write(`leaf-${device.serial}.pem`, device.certificate);
    const crlFile = openssl.write(`held-${randomBytes(4).toString('hex')}.pem`, crls.map((d) => toPem('X509 CRL', d)).join(''));
    return openssl.run('verify', '-attime', String(atSeconds), '-crl_check', '-CAfile', chainFile, '-CRLfile', crlFile, leaf);
  }
  const sql = <T>(text: string, ...values: unknown[]) => db.prisma.$queryRawUnsafe<T[]>(text, ...values);
  /** Runs `work` with this process's clock (Date.now and new Date) frozen at `ms`; timers stay real (pg, the HSM). */
  const at = async <T>(ms: number, work: () => Promise<T>): Promise<T> => {
    jest.useFakeTimers({ now: ms, doNotFake: ['nextTick', 'queueMicrotask', 'setImmediate', 'clearImmediate', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'hrtime', 'performance'] });
    try {
      return await work();
    } finally {
      jest.useRealTimers();
    }
  };

  it('ok CRLs signed after the backup, the backup restored, a different revocation: the new CRL has a larger number than every CRL published before the restore, a later thisUpdate, and openssl takes it as the newest (before: the number of a published CRL again, with another revoked set)', async () => {
    const t = Math.floor(Date.now() / 1000) * 1000;
    const { provisioner } = await mediumIssuer(db, caKeyid, 3);
    // Now: the CRL the backup holds.
    const backedUp = await service.currentCrl(caKeyid);
    const backup = {
      counter: (await sql<{ n: string }>(`SELECT "crlNumber"::text AS "n" FROM "key" WHERE "keyid" = $1`, caKeyid))[0].n,
      crl: await sql<{ row: unknown }>(`SELECT row_to_json(c) AS "row" FROM "crl" c JOIN "key_version" v ON v."id" = c."keyVersionId" JOIN "key" k ON k."id" = v."keyId" WHERE k."keyid" = $1`, caKeyid),
    };
    // After the backup, published: device A revoked 10 minutes later, then device B 20 minutes later.
    const published: Published[] = [];
    for (const [i, ms] of [[0, t + 600_000], [1, t + 1_200_000]] as const) {
      published.push(
        await at(ms, async () => {
          await certificates.revoke(provisioner, devices[i].id, { reason: 'keyCompromise' }, requestId());
          return service.currentCrl(caKeyid);
        }),
      );
    }
    // The disaster and the restore: the database as the backup holds it (the revocations after it are lost with it).
    await sql(`UPDATE "key" SET "crlNumber" = $2::bigint WHERE "keyid" = $1`, caKeyid, backup.counter);
    await sql(`DELETE FROM "crl" c USING "key_version" v, "key" k WHERE v."id" = c."keyVersionId" AND k."id" = v."keyId" AND k."keyid" = $1`, caKeyid);
    for (const r of backup.crl) await sql(`INSERT INTO "crl" SELECT * FROM json_populate_record(NULL::"crl", $1::json)`, JSON.stringify(r.row));
    await sql(`UPDATE "certificate" SET "revokedAt" = NULL, "revocationReason" = NULL WHERE "id" = ANY($1::uuid[])`, devices.slice(0, 2).map((d) => d.id));
    // Half an hour after the backup, on the restored system: device C revoked.
    const restored = await at(t + 1_800_000, async () => {
      expect((await service.currentCrl(caKeyid)).crlNumber).toBe(backedUp.crlNumber);
      await certificates.revoke(provisioner, devices[2].id, { reason: 'keyCompromise' }, requestId());
      return service.currentCrl(caKeyid);
    });
    const highest = published.reduce((m, p) => (p.crlNumber > m ? p.crlNumber : m), backedUp.crlNumber);
    expect({ larger: restored.crlNumber > highest, reused: published.some((p) => p.crlNumber === restored.crlNumber) }).toEqual({ larger: true, reused: false });
    // openssl reads the same numbers, and each CRL's number names its thisUpdate's second.
    expect([...published, restored].map((p) => opensslNumber(p.der))).toEqual([...published, restored].map((p) => p.crlNumber));
    expect([...published, restored].map((p) => crlNumberSecond(p.crlNumber).getTime())).toEqual([...published, restored].map((p) => p.thisUpdate.getTime()));
    expect(restored.thisUpdate.getTime()).toBeGreaterThan(Math.max(...published.map((p) => p.thisUpdate.getTime())));
    // A relying party that holds the CRLs published before the restore and the new one takes the new one, in either order.
    const last = published[published.length - 1];
    for (const held of [[last.der, restored.der], [restored.der, last.der]]) {
      const r = verify(devices[2], held, t / 1000 + 1_830);
      expect({ status: r.status, revoked: r.out.includes('certificate revoked') }).toEqual({ status: 2, revoked: true });
    }
  });

  it('ok a restored system whose clock is behind the newest restored CRL dates its CRL after that one, with a larger number', async () => {
    const stored = await service.currentCrl(caKeyid);
    const { provisioner, operationId } = await mediumIssuer(db, caKeyid, 2);
    const d = await certificates.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-d') }, requestId());
    const behind = stored.thisUpdate.getTime() - 120_000;
    const next = await at(behind, async () => {
      await certificates.revoke(provisioner, d.id, { reason: 'superseded' }, requestId());
      return service.currentCrl(caKeyid);
    });
    expect(next.crlNumber).toBeGreaterThan(stored.crlNumber);
    expect(next.thisUpdate.getTime()).toBeGreaterThan(stored.thisUpdate.getTime());
    expect(crlNumberSecond(next.crlNumber).getTime()).toBe(next.thisUpdate.getTime());
  });

  it('ok a restored system whose clock is behind the backup (its audit chain\'s head), with a CRL older than the head: the new CRL is dated no earlier than the head', async () => {
    const stored = await service.currentCrl(caKeyid);
    // The backup's newest moment: an audit entry written ten minutes after its newest CRL (by a clock that was right).
    const head = new Date(Math.floor(stored.thisUpdate.getTime() / 1000) * 1000 + 600_000);
    const { provisioner, operationId } = await mediumIssuer(db, caKeyid, 2);
    const d = await certificates.issue(provisioner, { operationid: operationId, keyid: caKeyid, csr: deviceCsr('device-e') }, requestId());
    await at(head.getTime(), () => new AuditRepository(db).append({ action: 'test.backup_head', outcome: 'SUCCESS', actorName: 'medium test' }));
    // The restored system's clock: a minute after the stored CRL, nine minutes before the backup's head.
    const next = await at(stored.thisUpdate.getTime() + 60_000, async () => {
      await certificates.revoke(provisioner, d.id, { reason: 'superseded' }, requestId());
      return service.currentCrl(caKeyid);
    });
    expect(next.thisUpdate.getTime()).toBeGreaterThanOrEqual(head.getTime());
    expect(crlNumberSecond(next.crlNumber).getTime()).toBe(next.thisUpdate.getTime());
  });
});
