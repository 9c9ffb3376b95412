import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTsaCrls } from '../config/api-config';
import { TsaCrlFile } from './tsa-crl-file';

// CMS_TSA_CRL read again when it changes (ADR 0046 addendum), with CRLs an openssl CA makes.
describe(TsaCrlFile.name, () => {
  let dir: string;
  const f = (n: string) => join(dir, n);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' }).toString();
  const utc = (msFromNow: number) => new Date(Date.now() + msFromNow).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  const gencrl = (out: string, lastUpdateMs: number) =>
    openssl('ca', '-gencrl', '-config', f('ca.cnf'), '-keyfile', f('root.key'), '-cert', f('root.pem'), '-crl_lastupdate', utc(lastUpdateMs), '-crl_nextupdate', utc(86_400_000), '-out', f(out));

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'ks-tsa-crl-'));
    writeFileSync(f('index.txt'), '');
    writeFileSync(f('ca.cnf'), ['[ca]', 'default_ca = d', '[d]', `database = ${f('index.txt')}`, 'default_md = sha256'].join('\n'));
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('root.key'), '-subj', '/CN=TSA Root', '-days', '30', '-out', f('root.pem'));
    openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('tsa.key'), '-subj', '/CN=TSA', '-out', f('tsa.csr'));
    openssl('x509', '-req', '-in', f('tsa.csr'), '-CA', f('root.pem'), '-CAkey', f('root.key'), '-set_serial', '0x7a5a', '-days', '20', '-out', f('tsa.pem'));
    gencrl('empty.crl', -2 * 3_600_000);
    openssl('ca', '-config', f('ca.cnf'), '-keyfile', f('root.key'), '-cert', f('root.pem'), '-revoke', f('tsa.pem'), '-crl_reason', 'keyCompromise');
    gencrl('listing.crl', -3_600_000);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('ok a refreshed CRL is used without a restart; a file that does not verify, an older CRL or a missing file leave the CRL in use', () => {
    const anchors = [new X509Certificate(readFileSync(f('root.pem')))];
    copyFileSync(f('empty.crl'), f('tsa.crl'));
    const warnings: string[] = [];
    const file = new TsaCrlFile(f('tsa.crl'), anchors, loadTsaCrls(f('tsa.crl'), anchors), (_facts, message) => warnings.push(message));
    const revoked = () => file.current().flatMap((c) => [...c.revoked]);
    expect(revoked()).toEqual([]);
    copyFileSync(f('listing.crl'), f('tsa.crl'));
    expect(revoked()).toEqual([String(0x7a5a)]);
    writeFileSync(f('tsa.crl'), 'half a CRL, written while we read');
    expect(revoked()).toEqual([String(0x7a5a)]);
    copyFileSync(f('empty.crl'), f('tsa.crl'));
    expect(revoked()).toEqual([String(0x7a5a)]);
    rmSync(f('tsa.crl'));
    expect(revoked()).toEqual([String(0x7a5a)]);
    expect(warnings).toEqual([
      expect.stringContaining('does not verify'),
      expect.stringContaining('older CRL than the one in use'),
      expect.stringContaining('not readable'),
    ]);
  });
});
