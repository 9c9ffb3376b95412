import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, verify as verifySignature, X509Certificate } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { composeCommand, createDatabase, freePort, startPlatform, startService, waitForOk, type RunningPlatform, type Service } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken } from './admin-helpers';
import { call, ciToken, operationBody, run, signOrderBody, userToken } from './operations-support';

// Issue 15 item 4, the restore drill of docs/operations.md "Backup and disaster recovery": pg_dump the database,
// copy the SoftHSM token directory, restore both onto a new database and a new token directory, start a new API
// on them, and prove that every ACTIVE key still signs (FW keys: sign orders; ROOT and CA keys: a fresh CRL),
// every certificate still verifies (openssl) and the audit chain still verifies, head included.

/** A CRL as `openssl crl` reads it: its number (hex after 0x) and thisUpdate. */
function crlOf(file: string): { file: string; number: bigint; thisUpdate: number } {
  const out = run('openssl', ['crl', '-inform', 'DER', '-in', file, '-noout', '-crlnumber', '-lastupdate']);
  return { file, number: BigInt(/crlNumber=(0x[0-9A-Fa-f]+|[0-9]+)/.exec(out)?.[1] ?? 'x'), thisUpdate: Date.parse(/lastUpdate=(.+)/.exec(out)?.[1] ?? '') };
}

interface KeySummary {
  keyid: string;
  type: string;
  state: string;
  requiredApprovers: number;
}

describe('backup and restore (pg_dump + SoftHSM token copy)', () => {
  let p: RunningPlatform;
  let work: string;
  let restoredDb: { url: string; drop(): Promise<void> } | undefined;
  let restored: Service | undefined;
  let restoredUrl: string;
  const f = (name: string) => join(work, name);

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-restore-'));
  });
  afterAll(async () => {
    await restored?.stop();
    await restoredDb?.drop();
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  let before: { entries: number; lastHash: string };
  /** Device certificates of demo-ca-dev: A revoked on the original after the backup, B on the restored copy. */
  const devices: Record<'A' | 'B', { id: string; serial: string }> = {} as Record<'A' | 'B', { id: string; serial: string }>;
  /** The CRLs of demo-ca-dev the original published (relying parties and CDNs hold them): the backup's and one after it. */
  const published: ReturnType<typeof crlOf>[] = [];
  const fetchCrl = async (url: string, name: string) => {
    const r = await fetch(`${url}/api/v1/crl/demo-ca-dev`);
    expect(r.status).toBe(200);
    writeFileSync(f(name), Buffer.from(await r.arrayBuffer()));
    return crlOf(f(name));
  };
  const revoke = async (url: string, id: string) => {
    const r = await call(url, await bffUserToken(p, 'ada.admin@demo.test'), 'POST', `/api/v1/certificates/${id}/revocation`, { reason: 'keyCompromise' });
    expect(r.status).toBe(200);
  };

  it('ok backs up a Keyserver that has been used (a rotated key, sessions, audit entries): pg_dump and a copy of the token directory', async () => {
    const [ada, alan] = [apiAs(p, await bffUserToken(p, 'ada.admin@demo.test')), apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'))];
    const rotated = await ada('POST', '/api/v1/keys/demo-fw-dev/rotation', { body: { validityDays: 100 }, session: await activeSession(ada, alan, 'rotate before the backup') });
    expect(rotated.status).toBe(200);
    const auditor = await userToken(p, 'aude.auditor@demo.test');
    const v = await call<{ ok: boolean; total: number; lastHash: string }>(p.env.urls.api, auditor, 'GET', '/api/v1/audit/verify');
    expect(v.body.ok).toBe(true);
    before = { entries: v.body.total, lastHash: v.body.lastHash };
    // Two device certificates of demo-ca-dev and its CRL, before the backup.
    const ci = await ciToken(p);
    for (const name of ['A', 'B'] as const) {
      run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`dev-${name}.key`), '-subj', `/CN=restore-${name}/O=Demo Devices Ltd`, '-out', f(`dev-${name}.csr`)]);
      const op = await call<{ id: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-ca-dev', 1));
      const r = await call<{ id: string; serial: string; certificate: string; chain: string[] }>(p.env.urls.api, ci, 'POST', '/api/v1/certificates', { operationid: op.body.id, keyid: 'demo-ca-dev', csr: readFileSync(f(`dev-${name}.csr`), 'utf8') });
      expect(r.status).toBe(201);
      devices[name] = r.body;
      writeFileSync(f(`dev-${name}.pem`), r.body.certificate);
      writeFileSync(f('dev-chain.pem'), r.body.chain.join(''));
    }
    published.push(await fetchCrl(p.env.urls.api, 'published-0.crl'));
    // The backup: the database (custom format) and the token directory with its PIN file (docs/operations.md).
    execFileSync('pg_dump', ['--format=custom', '--file', f('keyserver.dump'), p.databaseUrl]);
    cpSync(join(p.hsmDir, 'tokens'), f('backup/tokens'), { recursive: true });
    cpSync(p.apiEnv['PKCS11_PIN_FILE'], f('backup/pin'));
    // After the backup the original goes on: device A revoked, its CRL published (then the disaster loses both).
    await revoke(p.env.urls.api, devices.A.id);
    published.push(await fetchCrl(p.env.urls.api, 'published-1.crl'));
    expect(published[1].number).toBeGreaterThan(published[0].number);
  });

  it('ok restores onto a new database and a new token directory and starts on them', async () => {
    restoredDb = await createDatabase('ks_restore');
    execFileSync('pg_restore', ['--no-owner', '--exit-on-error', '--dbname', restoredDb.url, f('keyserver.dump')]);
    const hsm = f('restored-hsm');
    cpSync(f('backup/tokens'), join(hsm, 'tokens'), { recursive: true });
    cpSync(f('backup/pin'), join(hsm, 'pin'));
    writeFileSync(join(hsm, 'softhsm2.conf'), `directories.tokendir = ${join(hsm, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    const port = await freePort();
    restoredUrl = `http://127.0.0.1:${port}`;
    restored = startService('keyserver-api-restored', composeCommand('keyserver-api'), {
      ...p.apiEnv,
      DATABASE_URL: restoredDb.url,
      KEYSERVER_HSM_DIR: hsm,
      SOFTHSM2_CONF: join(hsm, 'softhsm2.conf'),
      PKCS11_PIN_FILE: join(hsm, 'pin'),
      KEYSERVER_API_PORT: String(port),
      KEYSERVER_PUBLIC_URL: restoredUrl,
    });
    await waitForOk(`${restoredUrl}/readyz`).catch((e: Error) => {
      throw new Error(`${e.message}\n${restored?.output()}`);
    });
    // The original is stopped: from here on only the restored copy answers.
    await p.api.stop();
  });

  it('ok every ACTIVE key still signs with its HSM key: FW keys a sign order, ROOT and CA keys a CRL, TSA keys a timestamp (openssl verifies each)', async () => {
    const auditor = await userToken(p, 'aude.auditor@demo.test');
    const keys = (await call<{ items: KeySummary[] }>(restoredUrl, auditor, 'GET', '/api/v1/keys?state=ACTIVE')).body.items;
    expect(keys.map((k) => k.keyid).sort()).toEqual(['demo-ca-dev', 'demo-ca-prod', 'demo-fw-dev', 'demo-fw-prod', 'demo-root', 'demo-tsa']);
    const [otto, ci] = [await userToken(p, 'otto.orderer@demo.test'), await ciToken(p)];
    const approvers = [await userToken(p, 'ann.approver@demo.test'), await userToken(p, 'arno.approver@demo.test')];
    const tsaKeys: string[] = [];
    for (const k of keys) {
      const detail = (await call<{ certificate: string }>(restoredUrl, auditor, 'GET', `/api/v1/keys/${k.keyid}`)).body;
      writeFileSync(f(`${k.keyid}.pem`), detail.certificate);
      if (k.type === 'TSA') {
        tsaKeys.push(k.keyid); // stamped below, once the ROOT's certificate is on disk
      } else if (k.type === 'FW') {
        const op = await call<{ id: string }>(restoredUrl, otto, 'POST', '/api/v1/operations', operationBody(k.keyid, 1));
        expect(op.status).toBe(201);
        for (const a of approvers.slice(0, k.requiredApprovers)) expect((await call(restoredUrl, a, 'POST', `/api/v1/operations/${op.body.id}/approvals`)).status).toBe(201);
        const message = `firmware signed after the restore by ${k.keyid}`;
        const signed = await call<{ result: string }>(restoredUrl, ci, 'POST', '/api/signorders', signOrderBody(op.body.id, k.keyid, createHash('sha256').update(message).digest('hex')));
        expect({ keyid: k.keyid, status: signed.status }).toEqual({ keyid: k.keyid, status: 201 });
        expect(verifySignature('sha256', Buffer.from(message), new X509Certificate(detail.certificate).publicKey, Buffer.from(signed.body.result, 'hex'))).toBe(true);
      } else {
        const crl = await fetch(`${restoredUrl}/api/v1/crl/${k.keyid}`);
        expect({ keyid: k.keyid, status: crl.status }).toEqual({ keyid: k.keyid, status: 200 });
        writeFileSync(f(`${k.keyid}.crl`), Buffer.from(await crl.arrayBuffer()));
        const checked = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', f(`${k.keyid}.crl`), '-CAfile', f(`${k.keyid}.pem`), '-verify', '-noout'], { encoding: 'utf8' });
        expect({ keyid: k.keyid, status: checked.status, out: checked.stdout + checked.stderr }).toEqual({ keyid: k.keyid, status: 0, out: expect.stringContaining('verify OK') });
      }
    }
    // The TSA key stamps through the public RFC 3161 route; openssl ts -verify checks the reply up to the ROOT.
    expect(tsaKeys).toEqual(['demo-tsa']);
    writeFileSync(f('stamped.bin'), 'stamped after the restore');
    run('openssl', ['ts', '-query', '-data', f('stamped.bin'), '-sha256', '-cert', '-out', f('q.tsq')]);
    const reply = await fetch(`${restoredUrl}/api/v1/tsa`, { method: 'POST', headers: { 'content-type': 'application/timestamp-query' }, body: readFileSync(f('q.tsq')) });
    expect(reply.status).toBe(200);
    writeFileSync(f('r.tsr'), Buffer.from(await reply.arrayBuffer()));
    expect(run('openssl', ['ts', '-verify', '-in', f('r.tsr'), '-queryfile', f('q.tsq'), '-CAfile', f('demo-root.pem')])).toContain('Verification: OK');
  });

  it('ok a CRL the restored copy signs has a larger number than every CRL the original published, also those after the backup, and openssl takes it as the newest (ADR 0029 addendum "CRL numbers survive a restore")', async () => {
    // The restored copy's clock is past the last CRL published before the restore (a real restore takes minutes).
    await new Promise((res) => setTimeout(res, Math.max(0, published[1].thisUpdate + 1000 - Date.now())));
    await revoke(restoredUrl, devices.B.id);
    const after = await fetchCrl(restoredUrl, 'restored.crl');
    expect(published.map((x) => after.number > x.number)).toEqual([true, true]);
    expect(after.thisUpdate).toBeGreaterThan(published[1].thisUpdate);
    // A relying party holding the CRL published after the backup (A revoked) and the restored copy's (B revoked; A's
    // revocation was lost with the database and is recorded again by the operator, docs/operations.md).
    for (const held of [[published[1].file, after.file], [after.file, published[1].file]]) {
      writeFileSync(f('held.pem'), held.map((c) => run('openssl', ['crl', '-inform', 'DER', '-in', c])).join(''));
      const r = spawnSync('openssl', ['verify', '-crl_check', '-CRLfile', f('held.pem'), '-CAfile', f('dev-chain.pem'), f('dev-B.pem')], { encoding: 'utf8' });
      expect({ status: r.status, revoked: `${r.stdout}${r.stderr}`.includes('certificate revoked') }).toEqual({ status: 2, revoked: true });
    }
  });

  it('ok every key certificate (every version) still verifies up to the ROOT (openssl)', async () => {
    const auditor = await userToken(p, 'aude.auditor@demo.test');
    const keys = (await call<{ items: KeySummary[] }>(restoredUrl, auditor, 'GET', '/api/v1/keys')).body.items;
    for (const k of keys.filter((x) => x.type !== 'ROOT')) {
      const versions = (await call<{ items: { version: number; certificate: string }[] }>(restoredUrl, auditor, 'GET', `/api/v1/keys/${k.keyid}/versions`)).body.items;
      for (const v of versions) {
        writeFileSync(f(`${k.keyid}-v${v.version}.pem`), v.certificate);
        expect(run('openssl', ['verify', '-CAfile', f('demo-root.pem'), f(`${k.keyid}-v${v.version}.pem`)])).toContain(': OK');
      }
    }
    expect(keys.length).toBe(6);
  });

  it('ok the audit chain verifies and still holds the head it had before the backup', async () => {
    const auditor = await userToken(p, 'aude.auditor@demo.test');
    const v = await call<{ ok: boolean; total: number }>(restoredUrl, auditor, 'GET', '/api/v1/audit/verify');
    expect(v.body.ok).toBe(true);
    expect(v.body.total).toBeGreaterThan(before.entries);
    const exported = await fetch(`${restoredUrl}/api/v1/audit/export`, { headers: { authorization: `Bearer ${auditor}` } });
    const lines = (await exported.text()).trim().split('\n');
    expect(lines.some((l) => (JSON.parse(l) as { hash: string }).hash === before.lastHash)).toBe(true);
    writeFileSync(f('audit.jsonl'), lines.join('\n') + '\n');
    expect(execFileSync(process.execPath, [join(__dirname, '..', '..', '..', 'dist', 'apps', 'keyserver-api', 'main.js'), 'audit-verify', f('audit.jsonl')], { encoding: 'utf8' })).toMatch(/^audit-verify: OK/);
  });
});
