import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { demoTenant, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, type Api } from './admin-helpers';
import { call, ciToken, operationBody, run, signOrderBody } from './operations-support';

// docs/adr/0041-revocation-below-a-revoked-ca.md: revoking a CA revokes every key below it, through the real API,
// SoftHSM and the demo CI client; relying parties' openssl reads the CRLs from the certificates' distribution points.

interface RevokedBelow {
  keyid: string;
  type: string;
  issuer: string;
  previousState: string;
  versions: number[];
  reason: string;
}
interface Detail {
  state: string;
  certificate: string;
  chain: string[];
  code?: string;
  revokedBelow?: RevokedBelow[];
}

/** openssl's exit status and output (a refusal is an answer here, not an error). */
const openssl = (...args: string[]) => {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};
const cdpOf = (pemFile: string) => /URI:(\S+)/.exec(run('openssl', ['x509', '-in', pemFile, '-noout', '-ext', 'crlDistributionPoints']))?.[1] ?? '';
const serialOf = (pemFile: string) => run('openssl', ['x509', '-in', pemFile, '-noout', '-serial']).trim().replace(/^serial=/, '');

describe('revoking a CA revokes every key below it', () => {
  let p: RunningPlatform;
  let work: string;
  let ada: Api;
  let alan: Api;
  let ci: string;
  let session: string;
  const f = (name: string) => join(work, name);
  const ciCall = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) => call<T & { code?: string }>(p.env.urls.api, ci, method, path, body);
  const [CA, SUB, FW] = ['cascade-ca', 'cascade-sub', 'cascade-fw'];
  /** Operations the CI client opened before the revocation, with usages left. */
  const open: Record<string, string> = {};

  /** The CRLs of the ROOT, the CA and the sub-CA, fetched anonymously from the distribution points the certificates name, in one PEM file. */
  async function crls(tag: string): Promise<{ all: string; ca: string; sub: string }> {
    const out: Record<string, string> = {};
    for (const [name, url] of [['root', cdpOf(f('ca.pem'))], ['ca', cdpOf(f('sub.pem'))], ['sub', cdpOf(f('device.pem'))]]) {
      const r = await fetch(url);
      expect([name, r.status, r.headers.get('content-type')]).toEqual([name, 200, 'application/pkix-crl']);
      writeFileSync(f(`${tag}-${name}.der`), Buffer.from(await r.arrayBuffer()));
      run('openssl', ['crl', '-inform', 'DER', '-in', f(`${tag}-${name}.der`), '-out', f(`${tag}-${name}.crl.pem`)]);
      out[name] = f(`${tag}-${name}.crl.pem`);
    }
    writeFileSync(f(`${tag}-all.crl.pem`), ['root', 'ca', 'sub'].map((n) => readFileSync(out[n], 'utf8')).join(''));
    return { all: f(`${tag}-all.crl.pem`), ca: out['ca'], sub: out['sub'] };
  }
  const verify = (file: string, crlArgs: string[]) => openssl('verify', ...crlArgs, '-CAfile', f('root.pem'), '-untrusted', f('intermediates.pem'), f(file));

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-revocation-below-'));
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    ci = await ciToken(p);
    session = await activeSession(ada, alan, 'a CA with a sub-CA and a firmware key below it');
  });
  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ok ROOT -> CA -> sub-CA -> FW made in a four-eyes session; the CI client signs with the FW key and gets a device certificate from the sub-CA', async () => {
    const mk = async (keyid: string, type: 'CA' | 'FW', issuer: string, validityDays: number, extra: Record<string, unknown> = {}) => {
      const r = await ada<Detail>('POST', '/api/v1/keys', { session, body: { keyid, type, algorithm: 'EC_P256', requiredApprovers: 0, validityDays, commonName: `Cascade ${keyid}`, issuer, ...extra } });
      expect({ keyid, status: r.status }).toEqual({ keyid, status: 201 });
      return r.body;
    };
    await mk(CA, 'CA', 'demo-root', 300, { pathLen: 1 });
    await mk(SUB, 'CA', CA, 200);
    const fw = await mk(FW, 'FW', SUB, 100, { product: 'cascade' });
    writeFileSync(f('fw.pem'), fw.chain[0]);
    writeFileSync(f('sub.pem'), fw.chain[1]);
    writeFileSync(f('ca.pem'), fw.chain[2]);
    writeFileSync(f('root.pem'), fw.chain[3]);
    writeFileSync(f('intermediates.pem'), fw.chain[1] + fw.chain[2]);

    const role = await ada('POST', '/api/v1/roles', { session, body: { name: 'cascade-ci', natures: ['ORDERER', 'SIGNER', 'PROVISIONER'], keys: [{ keyid: FW, permissions: ['ORDER', 'SIGN'] }, { keyid: SUB, permissions: ['ORDER', 'ISSUE'] }] } });
    expect(role.status).toBe(201);
    const demoCi = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
    const subject = (await ada<{ items: { id: string; oid: string; roles: string[] }[] }>('GET', '/api/v1/subjects')).body.items.find((s) => s.oid === demoCi?.servicePrincipalOid);
    if (!subject) throw new Error('demo-ci subject missing');
    expect((await ada('PATCH', `/api/v1/subjects/${subject.id}`, { session, body: { roles: [...subject.roles, 'cascade-ci'] } })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 300)); // the access cache hears of the new role (ADR 0028)

    for (const keyid of [FW, SUB]) {
      const op = await ciCall<{ id: string }>('POST', '/api/v1/operations', operationBody(keyid, 3));
      expect({ keyid, status: op.status }).toEqual({ keyid, status: 201 });
      open[keyid] = op.body.id;
    }
    const signed = await ciCall('POST', '/api/signorders', signOrderBody(open[FW], FW, createHash('sha256').update('firmware 1.0').digest('hex')));
    expect(signed.status).toBe(201);
    run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('device.key'), '-subj', '/CN=cascade-device-1', '-out', f('device.csr')]);
    const device = await ciCall<{ certificate: string; chain: string[] }>('POST', '/api/v1/certificates', { operationid: open[SUB], keyid: SUB, csr: readFileSync(f('device.csr'), 'utf8') });
    expect(device.status).toBe(201);
    writeFileSync(f('device.pem'), device.body.certificate);
    expect(device.body.chain.slice(0, 2)).toEqual([fw.chain[1], fw.chain[2]]);
    // Before the revocation every chain verifies with every CRL checked.
    const before = await crls('before');
    for (const file of ['sub.pem', 'fw.pem', 'device.pem']) expect({ file, ...verify(file, ['-crl_check_all', '-CRLfile', before.all]) }).toEqual({ file, status: 0, out: expect.stringContaining(': OK') });
  });

  let revoked: Detail;
  it('ok revoking the CA answers with the keys revoked with it, each revoked for cACompromise, every version; the ROOT stays ACTIVE', async () => {
    const r = await ada<Detail>('POST', `/api/v1/keys/${CA}/revocation`, { session, body: { reason: 'keyCompromise' } });
    expect(r.status).toBe(200);
    revoked = r.body;
    expect(revoked.state).toBe('REVOKED');
    expect(revoked.revokedBelow).toEqual([
      { keyid: SUB, type: 'CA', issuer: CA, previousState: 'ACTIVE', versions: [1], reason: 'cACompromise' },
      { keyid: FW, type: 'FW', issuer: SUB, previousState: 'ACTIVE', versions: [1], reason: 'cACompromise' },
    ]);
    for (const keyid of [SUB, FW]) {
      const v = await ada<{ state: string; items: { state: string; revocationReason: string | null }[] }>('GET', `/api/v1/keys/${keyid}/versions`);
      expect({ keyid, state: v.body.state, items: v.body.items.map((i) => [i.state, i.revocationReason]) }).toEqual({ keyid, state: 'REVOKED', items: [['REVOKED', 'cACompromise']] });
    }
    expect((await ada<Detail>('GET', '/api/v1/keys/demo-root')).body.state).toBe('ACTIVE');
    const events = await sql<{ action: string; keyid: string; details: Record<string, unknown> }>(p, `SELECT "action", "keyid", "details" FROM "audit_event" WHERE "action" IN ('key.revoke', 'key.revoke_cascade') AND "outcome" = 'SUCCESS' ORDER BY "seq"`);
    expect(events.map((e) => [e.action, e.keyid, e.details['cascade'] ?? null, e.details['reason']])).toEqual([
      ['key.revoke', CA, null, 'keyCompromise'],
      ['key.revoke_cascade', SUB, CA, 'cACompromise'],
      ['key.revoke_cascade', FW, CA, 'cACompromise'],
    ]);
    expect(events[0].details['revokedBelow']).toEqual([SUB, FW]);
    expect((await ada('GET', '/api/v1/audit/verify')).body['ok']).toBe(true);
  });

  it.each([
    ['fail a sign order with the FW key under the operation opened before', 409, 'key_not_usable', () => ciCall('POST', '/api/signorders', signOrderBody(open[FW], FW, createHash('sha256').update('firmware 1.1').digest('hex')))],
    ['fail a new operation on the FW key', 409, 'key_revoked', () => ciCall('POST', '/api/v1/operations', operationBody(FW, 1))],
    ['fail a device certificate from the sub-CA under the operation opened before', 409, 'key_not_usable', () => ciCall('POST', '/api/v1/certificates', { operationid: open[SUB], keyid: SUB, csr: readFileSync(f('device.csr'), 'utf8') })],
    ['fail a new operation on the sub-CA', 409, 'key_revoked', () => ciCall('POST', '/api/v1/operations', operationBody(SUB, 1))],
    ['fail a key created under the sub-CA', 409, 'issuer_not_usable', () => ada('POST', '/api/v1/keys', { session, body: { keyid: 'cascade-late', type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 10, commonName: 'late', issuer: SUB } })],
    ['fail a renewal of the FW key', 409, 'key_not_active', () => ada('POST', `/api/v1/keys/${FW}/renewal`, { session, body: { validityDays: 10 } })],
    ['fail revoking the sub-CA again', 409, 'key_already_revoked', () => ada('POST', `/api/v1/keys/${SUB}/revocation`, { session, body: { reason: 'keyCompromise' } })],
  ] as const)('%s: %d %s, problem+json', async (_n, status, code, act) => {
    const r = await act();
    expect({ status: r.status, code: (r.body as { code?: string }).code, type: r.headers.get('content-type') }).toEqual({ status, code, type: expect.stringContaining('application/problem+json') });
  });

  it('ok the PKCS#11 module\'s key list no longer offers them', async () => {
    const keys = await ciCall<{ keyid: string }[]>('GET', '/api/keys');
    expect(keys.status).toBe(200);
    const offered = keys.body.map((k) => k.keyid);
    expect([offered.includes(FW), offered.includes(SUB), offered.includes('demo-fw-dev')]).toEqual([false, false, true]);
  });

  it('ok openssl crl and openssl verify -crl_check_all agree: the sub-CA\'s certificate is revoked (the CA\'s CRL lists it), and so is every chain through it', async () => {
    const after = await crls('after');
    // The CA's CRL (signed by the CA's key pair) lists the sub-CA's serial, for the CA's compromise.
    const caCrl = openssl('crl', '-in', after.ca, '-CAfile', f('ca.pem'), '-noout', '-verify', '-text');
    expect(caCrl.out).toContain('verify OK');
    expect(caCrl.out.replace(/\s/g, '')).toContain(`SerialNumber:${serialOf(f('sub.pem'))}`);
    expect(caCrl.out).toContain('CA Compromise');
    // The sub-CA's CRL lists the FW key; the device certificate is on no CRL (the revoked sub-CA covers it).
    const subCrl = openssl('crl', '-in', after.sub, '-CAfile', f('sub.pem'), '-noout', '-verify', '-text').out.replace(/\s/g, '');
    expect(subCrl).toContain(`SerialNumber:${serialOf(f('fw.pem'))}`);
    expect(subCrl).not.toContain(`SerialNumber:${serialOf(f('device.pem'))}`);
    // The sub-CA's own certificate, checked against the CA's CRL alone and with every CRL of its chain.
    expect(verify('sub.pem', ['-crl_check', '-CRLfile', after.ca])).toEqual({ status: 2, out: expect.stringMatching(/error 23 at 0 depth lookup: certificate revoked/) });
    expect(verify('sub.pem', ['-crl_check_all', '-CRLfile', after.all])).toEqual({ status: 2, out: expect.stringContaining('certificate revoked') });
    for (const file of ['fw.pem', 'device.pem']) expect({ file, ...verify(file, ['-crl_check_all', '-CRLfile', after.all]) }).toEqual({ file, status: 2, out: expect.stringContaining('certificate revoked') });
  });
});
