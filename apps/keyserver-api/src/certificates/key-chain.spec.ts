import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { externalChainValidity, type Key, type KeyLifecycleRepository, type KeyRepository } from '@keyserver/data-access';
import type { HsmKeyInfo, HsmSigner } from '@keyserver/pki';
import { ApiError } from '../common/api-error';
import { assertCertificateValidNow, externalChainAbove, KeyChainCache } from './key-chain';

/** A root and a CA under it made by openssl, as the keys table would hold them. */
function opensslCa(dir: string): { root: string; ca: string } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const caExt = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  run(['req', '-x509', ...ec, '-keyout', 'root.key', '-out', 'root.pem', '-subj', '/CN=Root', '-days', '3650', ...caExt]);
  run(['req', '-new', ...ec, '-keyout', 'ca.key', '-out', 'ca.csr', '-subj', '/CN=Device CA', ...caExt]);
  run(['x509', '-req', '-in', 'ca.csr', '-CA', 'root.pem', '-CAkey', 'root.key', '-days', '365', '-copy_extensions', 'copyall', '-out', 'ca.pem']);
  return { root: readFileSync(join(dir, 'root.pem'), 'utf8'), ca: readFileSync(join(dir, 'ca.pem'), 'utf8') };
}

const spkiOf = (pem: string) => new Uint8Array(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }));

describe(KeyChainCache.name, () => {
  let dir: string;
  let pems: { root: string; ca: string };
  let rows: Map<string, Key>;
  let queries: number;
  let getKeys: number;
  let failNextGetKey: boolean;
  let versions: Map<string, string[]>;
  // findByKeyidCached: the access cache the sign path warmed before (usableKey), not counted as a query.
  const keys = { findByKeyid: async (keyid: string) => (queries++, rows.get(keyid) ?? null), findByKeyidCached: async (keyid: string) => rows.get(keyid) ?? null } as unknown as KeyRepository;
  // The published certificates of a key's versions, oldest first (its current one when no other is set).
  const lifecycle = { versions: async (keyid: string) => (versions.get(keyid) ?? [rows.get(keyid)?.certificatePem ?? '']).map((certificatePem) => ({ certificatePem })) } as unknown as KeyLifecycleRepository;
  const signer = {
    getKey: async (hsmKeyId: string): Promise<HsmKeyInfo> => {
      getKeys++;
      if (failNextGetKey) {
        failNextGetKey = false;
        throw new Error('token busy');
      }
      const row = [...rows.values()].find((k) => k.hsmKeyId === hsmKeyId) as Key;
      return { hsmKeyId, label: row.keyid, algorithm: 'EC-P256', spki: spkiOf(row.certificatePem) };
    },
  } as unknown as HsmSigner;
  const key = (keyid: string, certificatePem: string, parentKeyid: string | null) => ({ keyid, hsmKeyId: `${keyid}-hsm`, certificatePem, parentKeyid }) as Key;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'key-chain-'));
    pems = opensslCa(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => {
    rows = new Map([
      ['root', key('root', pems.root, null)],
      ['ca', key('ca', pems.ca, 'root')],
    ]);
    versions = new Map();
    queries = 0;
    getKeys = 0;
    failNextGetKey = false;
  });

  it('parses a CA and loads its chain once, then answers from memory', async () => {
    const cache = new KeyChainCache(keys, lifecycle, signer);
    const first = await cache.deviceIssuer(rows.get('ca') as Key);
    expect(first.chainPems).toEqual([pems.ca, pems.root]);
    expect({ queries, getKeys }).toEqual({ queries: 1, getKeys: 1 });
    const again = await Promise.all([cache.deviceIssuer({ ...(rows.get('ca') as Key) }), cache.deviceIssuer({ ...(rows.get('ca') as Key) })]);
    expect(again.every((i) => i === first)).toBe(true);
    expect({ queries, getKeys }).toEqual({ queries: 1, getKeys: 1 });
  });

  it('builds again when the same key id comes with another certificate', async () => {
    const cache = new KeyChainCache(keys, lifecycle, signer);
    await cache.deviceIssuer(rows.get('ca') as Key);
    const other = opensslCa(dir);
    rows.set('ca', key('ca', other.ca, 'root'));
    rows.set('root', key('root', other.root, null));
    const rebuilt = await cache.deviceIssuer(rows.get('ca') as Key);
    expect(rebuilt.chainPems[1]).toBe(other.root);
    expect(getKeys).toBe(2);
  });

  it('builds again when the external chain above the ROOT was replaced, the CA unchanged (ADR 0020 addendum "the renewed external chain")', async () => {
    const [first, renewed] = [opensslCa(dir).root, opensslCa(dir).root];
    rows.set('root', { ...key('root', pems.root, null), currentVersion: 1, issuerChainPem: first } as Key);
    const cache = new KeyChainCache(keys, lifecycle, signer);
    const fp = (list: string[]) => list.map((p) => new X509Certificate(p).fingerprint256);
    expect(fp((await cache.deviceIssuer(rows.get('ca') as Key)).chainPems)).toEqual(fp([pems.ca, pems.root, first]));
    expect((await cache.cmsSigner(rows.get('ca') as Key)).certs).toHaveLength(3);
    rows.set('root', { ...key('root', pems.root, null), currentVersion: 1, issuerChainPem: renewed } as Key);
    expect(fp((await cache.deviceIssuer(rows.get('ca') as Key)).chainPems)).toEqual(fp([pems.ca, pems.root, renewed]));
    const cms = await cache.cmsSigner(rows.get('ca') as Key);
    expect(new X509Certificate(Buffer.from(cms.certs[2].toSchema().toBER(false))).fingerprint256).toBe(new X509Certificate(renewed).fingerprint256);
  });

  it('builds again when the issuer got a new version (a re-issued certificate for the same key pair chains in its place)', async () => {
    const cache = new KeyChainCache(keys, lifecycle, signer);
    await cache.deviceIssuer(rows.get('ca') as Key);
    rows.set('root', { ...key('root', pems.root, null), currentVersion: 2 } as Key);
    await cache.deviceIssuer(rows.get('ca') as Key);
    expect(getKeys).toBe(2);
  });

  it("chains to the root version that signed the CA, not to a root rotated since (Node's X509Certificate verifies)", async () => {
    const rotated = opensslCa(dir).root;
    rows.set('root', key('root', rotated, null));
    versions.set('root', [pems.root, rotated]);
    const cache = new KeyChainCache(keys, lifecycle, signer);
    const issuer = await cache.deviceIssuer(rows.get('ca') as Key);
    expect(issuer.chainPems).toEqual([pems.ca, pems.root]);
    const cms = await cache.cmsSigner(rows.get('ca') as Key);
    expect(cms.certs.map((c) => new X509Certificate(Buffer.from(c.toSchema().toBER(false))).toString())).toEqual([pems.ca, pems.root].map((p) => new X509Certificate(p).toString()));
    expect(new X509Certificate(issuer.chainPems[0]).verify(new X509Certificate(issuer.chainPems[1]).publicKey)).toBe(true);
  });

  it('does not keep a failed build', async () => {
    const cache = new KeyChainCache(keys, lifecycle, signer);
    failNextGetKey = true;
    await expect(cache.deviceIssuer(rows.get('ca') as Key)).rejects.toThrow('token busy');
    await expect(cache.deviceIssuer(rows.get('ca') as Key)).resolves.toMatchObject({ key: { hsmKeyId: 'ca-hsm' } });
    expect(getKeys).toBe(2);
  });

  it('keeps at most its size, dropping the oldest entry', async () => {
    const cache = new KeyChainCache(keys, lifecycle, signer, 1);
    await cache.deviceIssuer(rows.get('ca') as Key);
    await cache.cmsSigner(rows.get('ca') as Key);
    await cache.deviceIssuer(rows.get('ca') as Key);
    expect(getKeys).toBe(3);
  });

  it('rejects a certificate that is not the HSM key\'s, and keeps nothing', async () => {
    const cache = new KeyChainCache(keys, lifecycle, signer);
    const mismatched = { ...(rows.get('ca') as Key), hsmKeyId: 'root-hsm' };
    await expect(cache.deviceIssuer(mismatched)).rejects.toMatchObject({ code: 'invalid_certificate' });
    await expect(cache.deviceIssuer(mismatched)).rejects.toMatchObject({ code: 'invalid_certificate' });
    expect(getKeys).toBe(2);
  });
});

describe(assertCertificateValidNow.name, () => {
  const key = { keyid: 'fw', notBefore: new Date('2026-12-01T00:00:00Z'), notAfter: new Date('2027-12-01T00:00:00Z') };
  const codeAt = (iso: string): string => {
    try {
      assertCertificateValidNow(key, Date.parse(iso));
      return 'ok';
    } catch (e) {
      if (e instanceof ApiError) return e.code;
      throw e;
    }
  };

  it.each([
    ['fail a millisecond before notBefore', '2026-11-30T23:59:59.999Z', 'key_not_usable'],
    ['ok at notBefore', '2026-12-01T00:00:00.000Z', 'ok'],
    ['ok a millisecond before notAfter', '2027-11-30T23:59:59.999Z', 'ok'],
    ['fail at notAfter (as the TSA picks its keys)', '2027-12-01T00:00:00.000Z', 'key_not_usable'],
    ['fail a year after notAfter', '2028-12-01T00:00:00.000Z', 'key_not_usable'],
  ] as const)('%s', (_n, at, code) => {
    expect(codeAt(at)).toBe(code);
  });
});

describe(`${assertCertificateValidNow.name} with the external chain above the ROOT`, () => {
  const key = { keyid: 'fw', notBefore: new Date('2026-12-01T00:00:00Z'), notAfter: new Date('2030-12-01T00:00:00Z') };
  // An offline intermediate that starts after the key and ends years before it.
  const above = { notBefore: new Date('2026-12-02T00:00:00Z'), notAfter: new Date('2027-06-01T00:00:00Z'), bound: 'CN=Intermediate until 2027-06-01T00:00:00.000Z' };
  const codeAt = (iso: string): string => {
    try {
      assertCertificateValidNow(key, Date.parse(iso), above);
      return 'ok';
    } catch (e) {
      if (e instanceof ApiError) return e.code;
      throw e;
    }
  };

  it.each([
    ['fail inside the key\'s certificate, a millisecond before the chain starts', '2026-12-01T23:59:59.999Z', 'key_not_usable'],
    ['ok when the chain starts', '2026-12-02T00:00:00.000Z', 'ok'],
    ['ok a millisecond before the chain ends', '2027-05-31T23:59:59.999Z', 'ok'],
    ['fail when the chain ends, years before the key\'s certificate', '2027-06-01T00:00:00.000Z', 'key_not_usable'],
  ] as const)('%s', (_n, at, code) => {
    expect(codeAt(at)).toBe(code);
  });
});

describe(externalChainValidity.name, () => {
  let dir: string;
  let pems: { root: string; ca: string };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'key-chain-external-'));
    pems = opensslCa(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('ok the intersection of every certificate, the one ending first named, in either order', () => {
    const ca = new X509Certificate(pems.ca);
    const root = new X509Certificate(pems.root);
    for (const chain of [pems.ca + pems.root, pems.root + pems.ca]) {
      const v = externalChainValidity(chain);
      expect(v?.notAfter.getTime()).toBe(ca.validToDate.getTime());
      expect(v?.notBefore.getTime()).toBe(Math.max(ca.validFromDate.getTime(), root.validFromDate.getTime()));
      expect(v?.bound).toContain('Device CA');
    }
  });

  it('ok no chain: nothing narrows the key', () => {
    expect(externalChainValidity(null)).toBeNull();
    expect(externalChainValidity('')).toBeNull();
  });

  it('ok the chain is found on the ROOT at the top of the path, from any depth; a missing parent narrows nothing', async () => {
    // Placeholder certificates: no version is found to have certified the path, so the ROOT's current chain bounds it.
    const row = (keyid: string, parentKeyid: string | null, issuerChainPem: string | null) => ({ keyid, parentKeyid, issuerChainPem, certificatePem: `placeholder ${keyid}` });
    const rows = new Map<string, Pick<Key, 'keyid' | 'parentKeyid' | 'issuerChainPem' | 'certificatePem'>>([
      ['root', row('root', null, pems.ca + pems.root)],
      ['ca', row('ca', 'root', null)],
    ]);
    const keys = { findByKeyidCached: async (keyid: string) => (rows.get(keyid) ?? null) as Key | null, versionChains: async () => [] };
    const end = new X509Certificate(pems.ca).validToDate.getTime();
    expect((await externalChainAbove(keys, row('fw', 'ca', null)))?.notAfter.getTime()).toBe(end);
    expect((await externalChainAbove(keys, rows.get('root') as Key))?.notAfter.getTime()).toBe(end);
    expect(await externalChainAbove(keys, row('fw', 'gone', null))).toBeNull();
  });
});
