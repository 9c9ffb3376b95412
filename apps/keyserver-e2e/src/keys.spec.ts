import { X509Certificate } from 'node:crypto';
import { clientCredentialsToken, demoTenant, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, type Api } from './admin-helpers';

interface KeySummary {
  keyid: string;
  type: string;
  algorithm: string;
  hash: string;
  requiredApprovers: number;
  state: string;
  product: string | null;
  parentKeyid: string | null;
  notBefore: string;
  notAfter: string;
  revokedAt: string | null;
  revocationReason: string | null;
  certificate: string;
}
interface KeyList {
  items: KeySummary[];
}
interface Problem {
  code: string;
}

const DEMO_KEYS = ['demo-root', 'demo-ca-dev', 'demo-ca-prod', 'demo-fw-dev', 'demo-fw-prod', 'demo-tsa'];

describe('GET /api/v1/keys', () => {
  let p: RunningPlatform;
  let ada: Api;
  let aude: Api;
  let ci: Api;

  beforeAll(async () => {
    p = await startPlatform();
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    const alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    aude = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    const demoCi = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
    if (!demoCi?.clientSecret) throw new Error('demo-ci missing');
    ci = apiAs(p, await clientCredentialsToken(p.facts, demoCi.clientId, demoCi.clientSecret));

    // One more CA and a FW key that is revoked: the list must show it where the legacy list drops it.
    const session = await activeSession(ada, alan, 'keys for the list');
    for (const spec of [
      { keyid: 'e2e-list-ca', type: 'CA', algorithm: 'EC_P256', commonName: 'List CA' },
      { keyid: 'e2e-list-fw', type: 'FW', algorithm: 'EC_P256', commonName: 'List Firmware', product: 'list-gadget' },
    ]) {
      const r = await ada('POST', '/api/v1/keys', { session, body: { ...spec, requiredApprovers: 1, validityDays: 30 } });
      if (r.status !== 201) throw new Error(`create ${spec.keyid}: ${r.status} ${r.text}`);
    }
    const revoked = await ada('POST', '/api/v1/keys/e2e-list-fw/revocation', { session, body: { reason: 'superseded' } });
    if (revoked.status !== 200) throw new Error(`revoke: ${revoked.status} ${revoked.text}`);
  });

  afterAll(async () => {
    await p?.stop();
  });

  const ids = (r: { body: KeyList }) => r.body.items.map((k) => k.keyid);
  const everyKey = ['demo-root', 'demo-ca-dev', 'demo-ca-prod', 'e2e-list-ca', 'demo-fw-dev', 'demo-fw-prod', 'e2e-list-fw', 'demo-tsa'];

  it('shows an administrator every key in every state, ROOT first, then CAs, then FW keys, then TSA keys, each with its issuer', async () => {
    const r = await ada<KeyList>('GET', '/api/v1/keys');
    expect(r.status).toBe(200);
    expect(ids(r)).toEqual(everyKey);
    const byId = new Map(r.body.items.map((k) => [k.keyid, k]));
    expect(byId.get('demo-root')).toMatchObject({ type: 'ROOT', parentKeyid: null, state: 'ACTIVE', revokedAt: null, revocationReason: null });
    expect(byId.get('e2e-list-ca')).toMatchObject({ type: 'CA', parentKeyid: 'demo-root', state: 'ACTIVE', algorithm: 'EC_P256', hash: 'SHA256', requiredApprovers: 1 });
    const fw = byId.get('e2e-list-fw');
    expect(fw).toMatchObject({ type: 'FW', parentKeyid: 'demo-root', state: 'REVOKED', revocationReason: 'superseded', product: 'list-gadget' });
    expect(Date.now() - Date.parse(fw?.revokedAt ?? '')).toBeLessThan(600_000);
    expect(Object.keys(fw ?? {}).sort()).toEqual(
      ['algorithm', 'certificate', 'hash', 'keyid', 'notAfter', 'notBefore', 'parentKeyid', 'product', 'requiredApprovers', 'revocationReason', 'revokedAt', 'state', 'type'].sort(),
    );
    // Each certificate is the key's own (the detail route's), issued by its parent's, with the listed validity.
    const root = new X509Certificate(byId.get('demo-root')?.certificate ?? '');
    for (const k of r.body.items) {
      const cert = new X509Certificate(k.certificate);
      const detail = await ada<{ certificate: string }>('GET', `/api/v1/keys/${k.keyid}`);
      expect(new X509Certificate(detail.body.certificate).fingerprint256).toBe(cert.fingerprint256);
      expect(cert.checkIssued(root)).toBe(true);
      expect(Math.abs(Date.parse(k.notAfter) - Date.parse(cert.validTo))).toBeLessThan(1000);
    }
    // The legacy list keeps its shape and drops the revoked key.
    const legacy = await ada<{ keyid: string }[]>('GET', '/api/keys');
    expect(legacy.body.map((k) => k.keyid).sort()).toEqual(everyKey.filter((k) => k !== 'e2e-list-fw').sort());
  });

  it('shows an auditor every key too', async () => {
    const r = await aude<KeyList>('GET', '/api/v1/keys');
    expect(r.status).toBe(200);
    expect(ids(r)).toEqual(everyKey);
    expect(r.body.items.find((k) => k.keyid === 'e2e-list-fw')?.state).toBe('REVOKED');
  });

  it('shows the demo CI client only the keys it holds a permission on', async () => {
    const r = await ci<KeyList>('GET', '/api/v1/keys');
    expect(r.status).toBe(200);
    expect(ids(r)).toEqual(['demo-ca-dev', 'demo-fw-dev', 'demo-fw-prod']);
    expect(ids(await ci<KeyList>('GET', '/api/v1/keys?type=ROOT'))).toEqual([]);
    // A key it may not see stays invisible on the detail route as well.
    expect((await ci<Problem>('GET', '/api/v1/keys/demo-ca-prod')).body.code).toBe('key_not_found');
  });

  it.each([
    ['ok revoked keys only', '?state=REVOKED', ['e2e-list-fw']],
    ['ok active keys only', '?state=ACTIVE', everyKey.filter((k) => k !== 'e2e-list-fw')],
    ['ok CAs only', '?type=CA', ['demo-ca-dev', 'demo-ca-prod', 'e2e-list-ca']],
    ['ok the ROOT only', '?type=ROOT', ['demo-root']],
    ['ok active FW keys', '?state=ACTIVE&type=FW', ['demo-fw-dev', 'demo-fw-prod']],
    ['ok the TSA key only', '?type=TSA', ['demo-tsa']],
    ['ok revoked CAs (none)', '?type=CA&state=REVOKED', []],
  ] as const)('%s', async (_name, query, expected) => {
    const r = await ada<KeyList>('GET', `/api/v1/keys${query}`);
    expect(r.status).toBe(200);
    expect(ids(r)).toEqual(expected);
  });

  it.each([
    ['fail unknown state', '?state=bogus'],
    ['fail lower-case state', '?state=revoked'],
    ['fail unknown type', '?type=SUB'],
    ['fail state given twice', '?state=ACTIVE&state=REVOKED'],
    ['fail unknown parameter', '?product=demo-gadget'],
  ] as const)('%s', async (_name, query) => {
    const r = await ada<Problem>('GET', `/api/v1/keys${query}`);
    expect([r.status, r.body.code]).toEqual([400, 'validation_failed']);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });

  it('rejects a request without a token with 401', async () => {
    const r = await fetch(`${p.env.urls.api}/api/v1/keys`);
    expect(r.status).toBe(401);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await r.json()) as Problem).code).toBe('invalid_token');
  });

  it('lists every demo key with the algorithms the seed gave them', async () => {
    const r = await ada<KeyList>('GET', '/api/v1/keys');
    const demo = r.body.items.filter((k) => DEMO_KEYS.includes(k.keyid)).map((k) => [k.keyid, k.type, k.algorithm, k.requiredApprovers, k.product]);
    expect(demo).toEqual([
      ['demo-root', 'ROOT', 'EC_P384', 2, null],
      ['demo-ca-dev', 'CA', 'EC_P256', 0, null],
      ['demo-ca-prod', 'CA', 'EC_P256', 2, null],
      ['demo-fw-dev', 'FW', 'EC_P256', 0, 'demo-gadget'],
      ['demo-fw-prod', 'FW', 'RSA_3072', 2, 'demo-gadget'],
      ['demo-tsa', 'TSA', 'EC_P256', 0, null],
    ]);
  });
});
