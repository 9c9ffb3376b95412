import { execFileSync, spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CliError, Exit } from './errors';
import { checkRevocation, CrlFetcher, crlDistributionPointUrls, parseCrls, readCrlFile, type Crl } from './revocation';
import { readPemCertificates, verifyChain } from './verify';

// CRLs made by `openssl ca -gencrl` for a PKI made by `openssl ca` (root -> inter -> fw, fw2; root -> inter2
// -> fw3), so the revocation checker is held against another implementation's CRLs. fw2 and inter2 are
// revoked. The certificates' CRL distribution points name a real local HTTP server for --crl-fetch.

let dir: string;
let server: Server;
let base: string;
/** What the CRL server answers, per path; `hang` accepts the request and never answers. */
const served = new Map<string, Buffer | 'hang'>();
const f = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
const DAY = 86_400_000;
/** An openssl ca time (YYYYMMDDHHMMSSZ) `days` from now. */
const stamp = (days: number) => new Date(Date.now() + days * DAY).toISOString().replace(/[-:T]/g, '').replace(/\.\d+Z$/, 'Z');

/** A CA database and config for `name`; the certificates it issues point to `<base>/<name>.crl`. */
function caConfig(name: string): void {
  mkdirSync(f(`${name}.d`));
  writeFileSync(f(`${name}.d/index.txt`), '');
  writeFileSync(f(`${name}.d/serial`), '1000\n');
  writeFileSync(f(`${name}.d/crlnumber`), '01\n');
  writeFileSync(
    f(`${name}.cnf`),
    `[ca]
default_ca = ca_default
[ca_default]
dir = ./${name}.d
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
crlnumber = $dir/crlnumber
certificate = ./${name}.pem
private_key = ./${name}.key
default_md = sha256
default_crl_days = 7
policy = policy_any
unique_subject = no
[policy_any]
commonName = supplied
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
crlDistributionPoints = URI:${base}/${name}.crl
[fw_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = codeSigning
crlDistributionPoints = URI:${base}/${name}.crl
`,
  );
}

/** A key and certificate for `name` (subject CN=`cn`), issued by `issuer` or self-signed; CAs get their own database. */
function issue(name: string, issuer: string | undefined, kind: 'ca' | 'fw', cn = name): void {
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
  openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`);
  if (kind === 'ca') caConfig(name);
  const by = issuer ? ['-config', `${issuer}.cnf`] : ['-config', `${name}.cnf`, '-selfsign', '-keyfile', `${name}.key`];
  openssl('ca', ...by, '-batch', '-notext', '-in', `${name}.csr`, '-extensions', `${kind}_ext`, '-startdate', stamp(-10), '-enddate', stamp(issuer ? 30 : 365), '-out', `${name}.pem`);
}

const gencrl = (ca: string, out: string, ...more: string[]) => openssl('ca', '-config', `${ca}.cnf`, '-gencrl', '-out', out, ...more);
const one = (name: string) => readPemCertificates(f(`${name}.pem`), name)[0];
const crls = (...files: string[]): Crl[] => files.flatMap((n) => readCrlFile(f(n)));
const pathOf = (leaf: string) => verifyChain(one(leaf), [one('inter'), one('inter2')], [one('root')], { codeSigning: true });
const at = (days: number) => new Date(Date.now() + days * DAY);

async function failure(p: Promise<unknown>): Promise<CliError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(CliError);
  return err as CliError;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ksctl-crl-'));
  server = createServer((req, res) => {
    const body = served.get(req.url ?? '');
    if (body === 'hang') return;
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  issue('root', undefined, 'ca');
  issue('inter', 'root', 'ca');
  issue('inter2', 'root', 'ca');
  issue('fw', 'inter', 'fw');
  issue('fw2', 'inter', 'fw');
  issue('fw3', 'inter2', 'fw');
  // Another key under the name CN=inter: its CRLs have the right issuer name and the wrong signature.
  issue('impostor', undefined, 'ca', 'inter');

  // Before anything is revoked: CRLs issued 5 days ago, due in 5 days.
  const past = ['-crl_lastupdate', stamp(-5), '-crl_nextupdate', stamp(5)];
  openssl('ca', '-config', 'inter.cnf', '-revoke', 'fw2.pem', '-crl_reason', 'keyCompromise');
  openssl('ca', '-config', 'root.cnf', '-revoke', 'inter2.pem', '-crl_reason', 'CACompromise');
  gencrl('inter', 'inter.crl.pem');
  gencrl('root', 'root.crl.pem');
  gencrl('inter2', 'inter2.crl.pem');
  // Backdated CRLs that already list the revocations made now (revocation date today).
  gencrl('inter', 'inter-past.crl.pem', ...past);
  gencrl('root', 'root-past.crl.pem', ...past);
  gencrl('inter', 'inter-expired.crl.pem', '-crl_lastupdate', stamp(-10), '-crl_nextupdate', stamp(-1));
  gencrl('impostor', 'impostor.crl.pem');
  openssl('crl', '-in', 'inter.crl.pem', '-badsig', '-out', 'inter-badsig.crl.pem');
  for (const n of ['inter', 'root', 'inter2']) openssl('crl', '-in', `${n}.crl.pem`, '-outform', 'DER', '-out', `${n}.crl.der`);
  writeFileSync(f('bundle.crl.pem'), ['root', 'inter', 'inter2'].map((n) => readFileSync(f(`${n}.crl.pem`), 'utf8')).join(''));
  writeFileSync(f('two.crl.der'), Buffer.concat([readFileSync(f('inter.crl.der')), readFileSync(f('root.crl.der'))]));
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => served.clear());

describe(checkRevocation.name, () => {
  it('ok not revoked: every certificate below the root is covered by its issuer CRL', async () => {
    const uses = await checkRevocation(pathOf('fw'), crls('inter.crl.pem', 'root.crl.pem'));
    expect(uses.map((u) => [u.certificate, u.issuer, u.crl, u.crlNumber])).toEqual([
      ['CN=fw', 'CN=inter', f('inter.crl.pem'), '1'],
      ['CN=inter', 'CN=root', f('root.crl.pem'), '1'],
    ]);
  });

  it.each([
    ['ok CRLs in PEM, several issuers in one file', () => crls('bundle.crl.pem')],
    ['ok CRLs in DER, one per file', () => crls('inter.crl.der', 'root.crl.der')],
    ['ok CRLs in DER, two concatenated in one file', () => crls('two.crl.der')],
    ['ok a bad CRL next to a good one of the same issuer', () => crls('impostor.crl.pem', 'inter.crl.pem', 'root.crl.pem')],
  ])('%s', async (_n, given) => {
    await expect(checkRevocation(pathOf('fw'), given())).resolves.toHaveLength(2);
  });

  // Without --at the time is the verifier's clock, read after the downloads: a CRL the server issued while it was
  // being fetched, or by a server whose clock runs a little ahead, is current (issue seen in CI: issued 44.000,
  // clock read 43.733 before the download).
  it.each([
    ['ok a CRL issued 2 s after the clock reads (server ahead, or issued during the download)', -2_000, null],
    ['ok a CRL issued 4 min ahead of the clock (within the allowed skew)', -4 * 60_000, null],
    ['fail a CRL issued 10 min ahead of the clock (beyond the allowed skew)', -10 * 60_000, 'crl_not_yet_valid'],
  ])('%s', async (_n, offsetMs, code) => {
    const given = crls('inter.crl.pem', 'root.crl.pem');
    const issued = Math.max(...given.map((c) => c.crl.thisUpdate.value.getTime()));
    const run = checkRevocation(pathOf('fw'), given, { now: () => new Date(issued + offsetMs) });
    if (code === null) await expect(run).resolves.toHaveLength(2);
    else expect((await failure(run)).code).toBe(code);
  });
  it('fail a leaf revoked in a CRL issued 2 s ahead of the clock: what a current CRL lists counts', async () => {
    const given = crls('inter.crl.pem', 'root.crl.pem');
    const issued = Math.max(...given.map((c) => c.crl.thisUpdate.value.getTime()));
    const err = await failure(checkRevocation(pathOf('fw2'), given, { now: () => new Date(issued - 2_000) }));
    expect(err.code).toBe('certificate_revoked');
  });

  it('ok --at before the revocation date, with CRLs current then', async () => {
    await expect(checkRevocation(pathOf('fw2'), crls('inter-past.crl.pem', 'root-past.crl.pem'), { at: at(-1) })).resolves.toHaveLength(2);
  });

  it.each([
    ['fail revoked leaf', 'fw2', ['inter.crl.pem', 'root.crl.pem'], undefined, { certificate: 'CN=fw2', serial: '1001', issuer: 'CN=inter', reason: 'keyCompromise' }],
    ['fail revoked leaf, checked after the revocation date', 'fw2', ['inter-past.crl.pem', 'root-past.crl.pem'], 1, { certificate: 'CN=fw2', reason: 'keyCompromise' }],
    ['fail revoked intermediate', 'fw3', ['inter2.crl.der', 'root.crl.der'], undefined, { certificate: 'CN=inter2', serial: '1002', issuer: 'CN=root', reason: 'cACompromise' }],
  ])('%s: certificate_revoked names it', async (_n, leaf, files, days, details) => {
    const err = await failure(checkRevocation(pathOf(leaf), crls(...files), { at: days === undefined ? undefined : at(days) }));
    expect([err.exit, err.code]).toEqual([Exit.Invalid, 'certificate_revoked']);
    expect(err.details).toMatchObject({ ...details, revocationDate: expect.any(String) });
    expect(err.message).toContain(String(details.certificate));
  });

  it.each([
    ['fail CRL signed by another key under the issuer name', 'crl_invalid', ['impostor.crl.pem', 'root.crl.pem'], undefined],
    ['fail CRL with a broken signature', 'crl_invalid', ['inter-badsig.crl.pem', 'root.crl.pem'], undefined],
    ['fail CRL of another issuer only', 'crl_missing', ['root.crl.pem'], undefined],
    ['fail no CRL of the root for the intermediate', 'crl_missing', ['inter.crl.pem'], undefined],
    ['fail CRL of another branch only', 'crl_missing', ['inter2.crl.pem', 'root.crl.pem'], undefined],
    ['fail expired CRL', 'crl_expired', ['inter-expired.crl.pem', 'root.crl.pem'], undefined],
    ['fail CRL past its next update at --at', 'crl_expired', ['inter.crl.pem', 'root.crl.pem'], 8],
    ['fail CRL issued after --at', 'crl_not_yet_valid', ['inter.crl.pem', 'root.crl.pem'], -1],
  ])('%s: %s', async (_n, code, files, days) => {
    const err = await failure(checkRevocation(pathOf('fw'), crls(...files), { at: days === undefined ? undefined : at(days) }));
    expect([err.exit, err.code]).toEqual([Exit.Invalid, code]);
  });
  it.each([
    ['ok not revoked', 'fw', 'inter', undefined],
    ['fail revoked leaf', 'fw2', 'inter', 'certificate_revoked'],
    ['fail revoked intermediate', 'fw3', 'inter2', 'certificate_revoked'],
  ])('%s, as openssl verify -crl_check_all says', async (_n, leaf, intermediate, code) => {
    const given = crls('bundle.crl.pem');
    const ours = await checkRevocation(pathOf(leaf), given).then(() => undefined, (e: CliError) => e.code);
    const theirs = spawnSync('openssl', ['verify', '-crl_check_all', '-CAfile', 'root.pem', '-untrusted', `${intermediate}.pem`, '-CRLfile', 'bundle.crl.pem', `${leaf}.pem`], { cwd: dir, encoding: 'utf8' });
    expect([ours, theirs.status === 0]).toEqual([code, code === undefined]);
    if (code) expect(theirs.stdout + theirs.stderr).toContain('certificate revoked');
  });
});

describe(parseCrls.name, () => {
  it.each([
    ['fail not DER at all', () => Buffer.from('not a CRL')],
    ['fail a certificate instead of a CRL', () => one('root').raw],
    ['fail a PEM certificate instead of a CRL', () => readFileSync(f('root.pem'))],
    ['fail a CRL followed by garbage', () => Buffer.concat([readFileSync(f('inter.crl.der')), Buffer.from('xx')])],
  ])('%s: crl_invalid', (_n, data) => {
    let err: unknown;
    try {
      parseCrls(data(), 'input');
    } catch (e) {
      err = e;
    }
    expect([(err as CliError).exit, (err as CliError).code]).toEqual([Exit.Invalid, 'crl_invalid']);
  });

  it('refuses a --crl file that does not exist as a usage error', () => {
    expect(() => readCrlFile(f('no-such.crl'))).toThrow(expect.objectContaining({ exit: Exit.Usage }));
  });
});

describe('--crl-fetch', () => {
  const serveGood = () => {
    served.set('/inter.crl', readFileSync(f('inter.crl.der')));
    served.set('/root.crl', readFileSync(f('root.crl.der')));
  };

  it('reads the http distribution point URLs of a certificate', () => {
    expect(crlDistributionPointUrls(one('fw'))).toEqual([`${base}/inter.crl`]);
    expect(crlDistributionPointUrls(one('inter'))).toEqual([`${base}/root.crl`]);
  });

  it('ok downloads every CRL of the path from the distribution points', async () => {
    serveGood();
    const uses = await checkRevocation(pathOf('fw'), [], { fetcher: new CrlFetcher() });
    expect(uses.map((u) => u.crl)).toEqual([`${base}/inter.crl`, `${base}/root.crl`]);
  });

  it('fail revoked leaf with downloaded CRLs: certificate_revoked', async () => {
    serveGood();
    const err = await failure(checkRevocation(pathOf('fw2'), [], { fetcher: new CrlFetcher() }));
    expect([err.exit, err.code, err.details?.['certificate']]).toEqual([Exit.Invalid, 'certificate_revoked', 'CN=fw2']);
  });

  it('ok a failed download when a given CRL covers the certificate', async () => {
    served.set('/root.crl', readFileSync(f('root.crl.der')));
    await expect(checkRevocation(pathOf('fw'), crls('inter.crl.pem'), { fetcher: new CrlFetcher() })).resolves.toHaveLength(2);
  });

  it.each([
    ['fail HTTP 404', () => served.set('/root.crl', readFileSync(f('root.crl.der'))), {}],
    ['fail larger than the limit', serveGood, { maxBytes: 64 }],
    ['fail no answer within the timeout', () => served.set('/inter.crl', 'hang'), { timeoutMs: 300 }],
  ])('%s: crl_unreachable (exit 5)', async (_n, serve, limits) => {
    serve();
    const err = await failure(checkRevocation(pathOf('fw'), [], { fetcher: new CrlFetcher(limits) }));
    expect([err.exit, err.code, err.details?.['url']]).toEqual([Exit.Unavailable, 'crl_unreachable', `${base}/inter.crl`]);
  });

  it('fail a distribution point serving the CRL of another issuer: crl_invalid', async () => {
    served.set('/inter.crl', readFileSync(f('root.crl.der')));
    const err = await failure(checkRevocation(pathOf('fw'), [], { fetcher: new CrlFetcher() }));
    expect([err.exit, err.code, err.details?.['crl']]).toEqual([Exit.Invalid, 'crl_invalid', `${base}/inter.crl`]);
  });

  it('fail a download that is not a CRL: crl_invalid', async () => {
    served.set('/inter.crl', Buffer.from('<html>not found</html>'));
    const err = await failure(checkRevocation(pathOf('fw'), [], { fetcher: new CrlFetcher() }));
    expect([err.exit, err.code]).toEqual([Exit.Invalid, 'crl_invalid']);
  });
});
