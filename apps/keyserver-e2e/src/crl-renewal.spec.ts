import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, type Api } from './admin-helpers';
import { call, ciToken, operationBody, run } from './operations-support';

// A renewed CA is one CRL issuer (docs/adr/0029-crl-per-key-version.md, addendum "one CRL issuer per key pair"): its
// versions keep the name and the key pair, so their CRLs carry one issuer name and one AKI. Two API processes on one
// database; a relying party fetches each version's distribution point from either and keeps every CRL it fetched, as
// `openssl verify -CRLfile` does with a file of them (it takes the one with the latest thisUpdate).

interface Issued {
  id: string;
  certificate: string;
  serial: string;
}

const openssl = (...args: string[]) => {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};

describe('CRLs of a renewed CA', () => {
  let p: RunningPlatform;
  let work: string;
  let ada: Api;
  let alan: Api;
  let adaToken: string;
  let ci: string;
  const f = (name: string) => join(work, name);
  const devices: Record<string, Issued> = {};
  let caV1: string;
  let caV2: string;

  /** A device certificate from demo-ca-dev for an openssl CSR, written to NAME.pem. */
  async function issue(name: string): Promise<Issued> {
    run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-subj', `/CN=${name}/O=Demo Devices Ltd`, '-out', f(`${name}.csr`)]);
    const op = await call<{ id: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-ca-dev', 1));
    expect(op.status).toBe(201);
    const r = await call<Issued & { chain: string[] }>(p.env.urls.api, ci, 'POST', '/api/v1/certificates', { operationid: op.body.id, keyid: 'demo-ca-dev', csr: readFileSync(f(`${name}.csr`), 'utf8') });
    expect(r.status).toBe(201);
    writeFileSync(f(`${name}.pem`), r.body.certificate);
    writeFileSync(f('trust.pem'), r.body.chain[r.body.chain.length - 1]);
    writeFileSync(f('ca-v1.pem'), r.body.chain[0]);
    return r.body;
  }

  /** The CRL of `version` from API process `replica`, as a relying party fetches it: DER, ETag, number, thisUpdate. */
  async function fetchCrl(replica: number, version: number) {
    const r = await fetch(`${p.apiReplicas[replica].url}/api/v1/crl/demo-ca-dev/versions/${version}`);
    expect([r.status, r.headers.get('content-type')]).toEqual([200, 'application/pkix-crl']);
    const der = Buffer.from(await r.arrayBuffer());
    const file = f(`crl-${replica}-${version}-${Date.now()}-${Math.random().toString(36).slice(2)}.der`);
    writeFileSync(file, der);
    const pem = `${file}.pem`;
    run('openssl', ['crl', '-inform', 'DER', '-in', file, '-out', pem]);
    const text = openssl('crl', '-in', pem, '-noout', '-text').out;
    return {
      pem,
      etag: r.headers.get('etag'),
      // openssl prints the number in decimal, or in hex after 0x when it is long (CRL numbers are bound to time, ADR 0029).
      number: BigInt(/X509v3 CRL Number:\s*\n\s*(0x[0-9A-Fa-f]+|[0-9]+)/.exec(text)?.[1] ?? 'x'),
      thisUpdate: Date.parse(/Last Update: (.+)/.exec(text)?.[1] ?? ''),
      issuer: /Issuer: (.+)/.exec(text)?.[1],
      aki: /Authority Key Identifier:\s*\n?\s*(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1],
    };
  }
  const revoke = async (replica: number, name: string) => {
    const r = await call(p.apiReplicas[replica].url, adaToken, 'POST', `/api/v1/certificates/${devices[name].id}/revocation`, { reason: 'keyCompromise' });
    expect(r.status).toBe(200);
  };
  /** openssl verify -crl_check of a device holding `crls` (one file, in this order). */
  const verify = (name: string, crls: string[]) => {
    writeFileSync(f('held.pem'), crls.map((c) => readFileSync(c, 'utf8')).join(''));
    return openssl('verify', '-crl_check', '-CRLfile', f('held.pem'), '-CAfile', f('trust.pem'), '-untrusted', f('ca-v1.pem'), f(`${name}.pem`));
  };

  beforeAll(async () => {
    p = await startPlatform({ replicas: 2 });
    work = mkdtempSync(join(tmpdir(), 'ks-crl-renewal-'));
    adaToken = await bffUserToken(p, 'ada.admin@demo.test');
    ada = apiAs(p, adaToken);
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    ci = await ciToken(p);
    for (const name of ['dev-a', 'dev-b', 'dev-c', 'dev-d']) devices[name] = await issue(name);
    const session = await activeSession(ada, alan, 'crl renewal e2e');
    const renewed = await ada<{ certificate: string }>('POST', '/api/v1/keys/demo-ca-dev/renewal', { body: { validityDays: 300 }, session });
    expect(renewed.status).toBe(200);
    caV1 = readFileSync(f('ca-v1.pem'), 'utf8');
    caV2 = renewed.body.certificate;
  });
  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ok the renewal keeps the name and the key pair: both versions\' CRLs carry one issuer and one AKI (one CRL issuer to a relying party)', async () => {
    const [v1, v2] = [new X509Certificate(caV1), new X509Certificate(caV2)];
    expect([v2.subject, v2.serialNumber === v1.serialNumber]).toEqual([v1.subject, false]);
    expect(v2.publicKey.export({ type: 'spki', format: 'der' }).equals(v1.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
    const [a, b] = [await fetchCrl(0, 1), await fetchCrl(1, 2)];
    expect([b.issuer, b.aki]).toEqual([a.issuer, a.aki]);
    expect(a.aki).toMatch(/^[0-9A-F]{2}(:[0-9A-F]{2})+$/);
  });

  it('ok after a revocation both distribution points on both API processes serve one CRL (one ETag) listing it', async () => {
    await revoke(0, 'dev-a');
    const all = await Promise.all([[0, 1], [0, 2], [1, 1], [1, 2]].map(([r, v]) => fetchCrl(r, v)));
    expect(new Set(all.map((c) => c.etag)).size).toBe(1);
    expect(new Set(all.map((c) => c.number)).size).toBe(1);
    expect(verify('dev-a', [all[0].pem])).toEqual({ status: 2, out: expect.stringContaining('certificate revoked') });
    const rows = await sql<{ n: string }>(p, `SELECT DISTINCT c."crlNumber"::text AS n FROM "crl" c JOIN "key_version" v ON v."id" = c."keyVersionId" JOIN "key" k ON k."id" = v."keyId" WHERE k."keyid" = 'demo-ca-dev'`);
    expect(rows).toHaveLength(1);
  });

  it('ok a relying party fetching version 1\'s CRL, then after another revocation in the same second version 2\'s from the other process: a larger number, a later thisUpdate, and openssl refuses the device revoked last whichever order it holds them in', async () => {
    await new Promise((res) => setTimeout(res, 1000 - (Date.now() % 1000) + 20));
    await revoke(0, 'dev-b');
    const older = await fetchCrl(0, 1);
    await revoke(1, 'dev-c');
    const newer = await fetchCrl(1, 2);
    expect(newer.number).toBeGreaterThan(older.number);
    expect(newer.thisUpdate).toBeGreaterThan(older.thisUpdate);
    for (const held of [[older.pem, newer.pem], [newer.pem, older.pem]]) expect(verify('dev-c', held)).toEqual({ status: 2, out: expect.stringContaining('certificate revoked') });
    expect(verify('dev-d', [older.pem, newer.pem])).toEqual({ status: 0, out: expect.stringContaining(': OK') });
  });

  it('ok revocations on both processes at once: every CRL number is handed out once, and each distribution point then serves the newest, listing them all', async () => {
    const before = await fetchCrl(0, 1);
    await Promise.all([revoke(0, 'dev-d'), fetchCrl(1, 2), fetchCrl(0, 2), fetchCrl(1, 1)]);
    const after = await Promise.all([[0, 1], [1, 2]].map(([r, v]) => fetchCrl(r, v)));
    expect(after[0].etag).toBe(after[1].etag);
    expect(after[0].number).toBeGreaterThan(before.number);
    for (const name of ['dev-a', 'dev-b', 'dev-c', 'dev-d']) expect(verify(name, [before.pem, after[0].pem])).toEqual({ status: 2, out: expect.stringContaining('certificate revoked') });
  });
});
