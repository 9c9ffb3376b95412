import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminCommand, type AdminApi } from './admin';
import { Exit } from './errors';

interface Call {
  method: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** CSRs as the API answers them: one PEM block (ksctl refuses to write anything else, answer.ts). */
const CSR_V2 = '-----BEGIN CERTIFICATE REQUEST-----\nVjI=\n-----END CERTIFICATE REQUEST-----\n';
const CSR_PEM = '-----BEGIN CERTIFICATE REQUEST-----\nUEVN\n-----END CERTIFICATE REQUEST-----\n';
describe(adminCommand.name, () => {
  let calls: Call[];
  let answer: unknown;
  const api: AdminApi = async <T>(method: string, path: string, body?: unknown, headers?: Record<string, string>) => {
    calls.push({ method, path, body, headers });
    return answer as T;
  };
  beforeEach(() => {
    calls = [];
    answer = {};
  });
  const S = { 'x-admin-session': 'sess-1' };

  it.each([
    ['ok session open', ['session', 'open'], { description: 'ROOT ceremony' }, { method: 'POST', path: '/api/v1/admin-sessions', body: { description: 'ROOT ceremony', powers: false } }],
    ['ok session open with powers', ['session', 'open'], { description: 'new security officer', powers: true }, { method: 'POST', path: '/api/v1/admin-sessions', body: { description: 'new security officer', powers: true } }],
    ['ok session authorize', ['session', 'authorize', 'sess-1'], {}, { method: 'POST', path: '/api/v1/admin-sessions/sess-1/authorizations' }],
    [
      'ok a self-signed ROOT ceremony',
      ['root-ceremony'],
      { session: 'sess-1', keyid: 'acme-root', algorithm: 'EC_P384', cn: 'Acme Root', country: 'DK', days: '7300', 'path-len': '2' },
      { method: 'POST', path: '/api/v1/keys/root-ceremony', body: { keyid: 'acme-root', algorithm: 'EC_P384', subject: { commonName: 'Acme Root', country: 'DK' }, validityDays: 7300, pathLen: 2, mode: 'self-signed' }, headers: S },
    ],
    ['ok retire', ['key', 'retire', 'fw-1'], { session: 'sess-1' }, { method: 'POST', path: '/api/v1/keys/fw-1/retirement', body: {}, headers: S }],
    ['ok revoke', ['key', 'revoke', 'fw-1'], { session: 'sess-1', reason: 'keyCompromise' }, { method: 'POST', path: '/api/v1/keys/fw-1/revocation', body: { reason: 'keyCompromise' }, headers: S }],
    ['ok a keyid is one path segment', ['key', 'versions', '../admin'], {}, { method: 'GET', path: '/api/v1/keys/..%2Fadmin/versions' }],
    ['ok cancel-csr of an external ceremony', ['key', 'cancel-csr', 'online-root'], { session: 'sess-1' }, { method: 'POST', path: '/api/v1/keys/online-root/csr/cancellation', body: {}, headers: S }],
    ['ok cancel-csr of a pending rotation', ['key', 'cancel-csr', 'online-root'], { session: 'sess-1', 'key-version': '2' }, { method: 'POST', path: '/api/v1/keys/online-root/csr/cancellation', body: { version: 2 }, headers: S }],
    [
      'ok a role with grants',
      ['role', 'create'],
      { session: 'sess-1', name: 'ci', natures: 'orderer, signer', grant: ['fw-1=ORDER+SIGN'] },
      { method: 'POST', path: '/api/v1/roles', body: { name: 'ci', natures: ['ORDERER', 'SIGNER'], keys: [{ keyid: 'fw-1', permissions: ['ORDER', 'SIGN'] }] }, headers: S },
    ],
  ])('%s', async (_n, pos, values, expected) => {
    await adminCommand(api, pos, values);
    expect(calls).toEqual([expected]);
  });

  it.each([
    ['fail a change without --session', ['key', 'retire', 'fw-1'], {}],
    ['fail renewal without --days', ['key', 'renew', 'fw-1'], { session: 's' }],
    ['fail days that are not a whole number', ['key', 'renew', 'fw-1'], { session: 's', days: '1e3' }],
    ['fail a malformed grant', ['role', 'create'], { session: 's', name: 'r', natures: 'SIGNER', grant: ['fw-1'] }],
    ['fail a key action without a keyid', ['key', 'destroy'], { session: 's' }],
    ['fail cancel-csr without --session', ['key', 'cancel-csr', 'online-root'], {}],
    ['fail replace-chain without --chain', ['key', 'replace-chain', 'online-root'], { session: 's' }],
    ['fail replace-chain without --session', ['key', 'replace-chain', 'online-root'], { chain: 'chain.pem' }],
    ['fail cancel-csr with a version that is not a whole number', ['key', 'cancel-csr', 'online-root'], { session: 's', 'key-version': 'two' }],
    ['fail an unknown area', ['frobnicate'], {}],
  ])('%s: usage (exit 2), nothing sent', async (_n, pos, values) => {
    await expect(adminCommand(api, pos, values)).rejects.toMatchObject({ exit: Exit.Usage });
    expect(calls).toEqual([]);
  });

  it('ok rotate sends the rotation and, for a key now waiting for its external root, writes the pending CSR with --out', async () => {
    await adminCommand(api, ['key', 'rotate', 'fw-1'], { session: 'sess-1', days: '90' });
    expect(calls).toEqual([
      { method: 'POST', path: '/api/v1/keys/fw-1/rotation', body: { validityDays: 90 }, headers: S },
      { method: 'GET', path: '/api/v1/keys/fw-1/versions', body: undefined, headers: undefined },
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'ksctl-admin-'));
    try {
      calls = [];
      answer = { pendingVersion: 2, version: 2, csr: CSR_V2 };
      const r = await adminCommand(api, ['key', 'rotate', 'ext-root'], { session: 'sess-1', days: '90', out: join(dir, 'v2.csr') });
      expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(['POST /api/v1/keys/ext-root/rotation', 'GET /api/v1/keys/ext-root/versions', 'GET /api/v1/keys/ext-root/csr']);
      expect(readFileSync(join(dir, 'v2.csr'), 'utf8')).toBe(CSR_V2);
      expect(r).toMatchObject({ pendingVersion: 2, csr: CSR_V2 });
      calls = [];
      writeFileSync(join(dir, 'cert.pem'), 'CERT');
      writeFileSync(join(dir, 'chain.pem'), '');
      await adminCommand(api, ['key', 'import-cert', 'ext-root'], { session: 'sess-1', 'cert-file': join(dir, 'cert.pem'), chain: join(dir, 'chain.pem'), 'key-version': '2' });
      expect(calls[0].body).toEqual({ certificate: 'CERT', chain: [], version: 2 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ok replace-chain sends each certificate of the chain file and, with --cert-file, the re-issued certificate; a chain file without certificates is refused before sending', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksctl-admin-'));
    try {
      const pem = (n: string) => `-----BEGIN CERTIFICATE-----\n${n}\n-----END CERTIFICATE-----\n`;
      writeFileSync(join(dir, 'cert.pem'), pem('AAAA'));
      writeFileSync(join(dir, 'chain.pem'), `${pem('BBBB')}${pem('CCCC')}`);
      writeFileSync(join(dir, 'empty.pem'), 'no certificate here');
      await adminCommand(api, ['key', 'replace-chain', 'online-root'], { session: 'sess-1', chain: join(dir, 'chain.pem') });
      await adminCommand(api, ['key', 'replace-chain', 'online-root'], { session: 'sess-1', chain: join(dir, 'chain.pem'), 'cert-file': join(dir, 'cert.pem') });
      expect(calls).toEqual([
        { method: 'POST', path: '/api/v1/keys/online-root/external-chain', body: { chain: [pem('BBBB'), pem('CCCC')] }, headers: S },
        { method: 'POST', path: '/api/v1/keys/online-root/external-chain', body: { certificate: pem('AAAA'), chain: [pem('BBBB'), pem('CCCC')] }, headers: S },
      ]);
      calls = [];
      await expect(adminCommand(api, ['key', 'replace-chain', 'online-root'], { session: 'sess-1', chain: join(dir, 'empty.pem') })).rejects.toMatchObject({ exit: Exit.Usage });
      expect(calls).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ok import-cert sends the certificate and each certificate of the chain file; --out writes a ceremony CSR', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ksctl-admin-'));
    try {
      const pem = (n: string) => `-----BEGIN CERTIFICATE-----\n${n}\n-----END CERTIFICATE-----\n`;
      writeFileSync(join(dir, 'cert.pem'), pem('AAAA'));
      writeFileSync(join(dir, 'chain.pem'), `${pem('BBBB')}${pem('CCCC')}`);
      await adminCommand(api, ['key', 'import-cert', 'online-root'], { session: 'sess-1', 'cert-file': join(dir, 'cert.pem'), chain: join(dir, 'chain.pem') });
      expect(calls[0]).toEqual({ method: 'POST', path: '/api/v1/keys/online-root/certificate', body: { certificate: pem('AAAA'), chain: [pem('BBBB'), pem('CCCC')] }, headers: S });
      answer = { certificate: null, csr: CSR_PEM };
      await adminCommand(api, ['root-ceremony'], { session: 's', keyid: 'k-1', algorithm: 'EC_P256', cn: 'X', days: '10', external: true, out: join(dir, 'k.csr') });
      expect(readFileSync(join(dir, 'k.csr'), 'utf8')).toBe(CSR_PEM);
      expect((calls[1].body as { mode: string }).mode).toBe('external');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
