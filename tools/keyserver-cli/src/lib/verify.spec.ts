import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Exit } from './errors';
import { expectInvalid, expectInvalidAsync } from '../testing/expect-cli-error';
import { readPemCertificates, verifyChain, verifyCms, verifyMessageSignature, verifyRawSignature } from './verify';

// A small PKI made by openssl (root -> intermediate -> leaves), so the verifier is checked against
// another implementation's certificates and CMS, not only against the Keyserver's (see the e2e tests).

let dir: string;
const f = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

function ecKey(name: string): void {
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`);
}

/** A certificate for `name` signed by `issuer` (or self-signed) with the given extensions. */
function cert(name: string, issuer: string | undefined, ext: string, days = 30): void {
  ecKey(name);
  writeFileSync(f(`${name}.ext`), `${ext}\n`);
  openssl('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
  const signer = issuer ? ['-CA', `${issuer}.pem`, '-CAkey', `${issuer}.key`, '-CAcreateserial'] : ['-signkey', `${name}.key`];
  openssl('x509', '-req', '-in', `${name}.csr`, ...signer, '-days', String(days), '-extfile', `${name}.ext`, '-out', `${name}.pem`);
}

const CA = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign';
const FW = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning';



beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ksctl-verify-'));
  cert('root', undefined, CA, 365);
  cert('other-root', undefined, CA, 365);
  cert('inter', 'root', CA);
  cert('fw', 'inter', FW);
  // An Ed25519 FW certificate made by openssl: its key signs whole messages (PureEdDSA).
  openssl('genpkey', '-algorithm', 'ED25519', '-out', 'ed.key');
  writeFileSync(f('ed.ext'), `${FW}\n`);
  openssl('req', '-new', '-key', 'ed.key', '-subj', '/CN=ed', '-out', 'ed.csr');
  openssl('x509', '-req', '-in', 'ed.csr', '-CA', 'inter.pem', '-CAkey', 'inter.key', '-CAcreateserial', '-days', '30', '-extfile', 'ed.ext', '-out', 'ed.pem');
  cert('tls', 'inter', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth');
  cert('not-ca', 'root', 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyCertSign');
  cert('under-not-ca', 'not-ca', FW);
  writeFileSync(f('image.bin'), Buffer.alloc(100_000, 9));
  // A root valid from the year 10 to the end of the year 49 (GeneralizedTime; `openssl ca` takes explicit dates): Node
  // prints its notAfter as "... 49 GMT", which Date reads as 2049.
  writeFileSync(f('ca.cnf'), '[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nserial = serial\nnew_certs_dir = .\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n[ext]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,digitalSignature\n');
  writeFileSync(f('index.txt'), '');
  writeFileSync(f('serial'), '01\n');
  ecKey('year49');
  openssl('req', '-new', '-key', 'year49.key', '-subj', '/CN=year49', '-out', 'year49.csr');
  openssl('ca', '-batch', '-config', 'ca.cnf', '-selfsign', '-keyfile', 'year49.key', '-in', 'year49.csr', '-startdate', '00100101000000Z', '-enddate', '00491231235959Z', '-extensions', 'ext', '-out', 'year49.pem');
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const one = (name: string) => readPemCertificates(f(`${name}.pem`), name)[0];

describe(verifyChain.name, () => {
  it('ok leaf -> intermediate -> root given with --ca', () => {
    const path = verifyChain(one('fw'), [one('inter')], [one('root')], { codeSigning: true });
    expect(path.map((c) => c.subject)).toEqual(['CN=fw', 'CN=inter', 'CN=root']);
  });

  it.each([
    ['fail another root given with --ca', () => verifyChain(one('fw'), [one('inter'), one('root')], [one('other-root')]), 'untrusted_root'],
    ['fail intermediate missing', () => verifyChain(one('fw'), [], [one('root')]), 'chain_invalid'],
    ['fail issuer that is not a CA', () => verifyChain(one('under-not-ca'), [one('not-ca')], [one('root')]), 'chain_invalid'],
    ['fail end entity without codeSigning', () => verifyChain(one('tls'), [one('inter')], [one('root')], { codeSigning: true }), 'not_code_signing'],
    ['fail checked after the leaf expired', () => verifyChain(one('fw'), [one('inter')], [one('root')], { at: new Date(Date.now() + 60 * 86_400_000) }), 'certificate_expired'],
    ['fail a certificate that expired in the year 49 (not read as 2049)', () => verifyChain(one('year49'), [], [one('year49')]), 'certificate_expired'],
    ['fail checked before the certificates existed', () => verifyChain(one('fw'), [one('inter')], [one('root')], { at: new Date(Date.now() - 86_400_000) }), 'certificate_not_yet_valid'],
  ])('%s', (_n, fn, code) => {
    expectInvalid(fn, code);
  });
});

describe(verifyRawSignature.name, () => {
  const digest = () => createHash('sha256').update(readFileSync(f('image.bin'))).digest();
  const signature = () => sign('sha256', readFileSync(f('image.bin')), createPrivateKey(readFileSync(f('fw.key'))));

  it('ok an openssl-compatible ECDSA signature over the file digest', () => {
    expect(() => verifyRawSignature({ signature: signature(), digest: digest(), hash: 'sha256', padding: 'none', format: 'asn1', publicKey: one('fw').publicKey })).not.toThrow();
  });

  it('fail a signature by another key: signature_invalid', () => {
    expectInvalid(() => verifyRawSignature({ signature: signature(), digest: digest(), hash: 'sha256', padding: 'none', format: 'asn1', publicKey: one('tls').publicKey }), 'signature_invalid');
  });

  it('refuses RSA paddings with an EC key as a usage error', () => {
    expect(() => verifyRawSignature({ signature: signature(), digest: digest(), hash: 'sha256', padding: 'pss', format: 'asn1', publicKey: one('fw').publicKey })).toThrow(
      expect.objectContaining({ exit: Exit.Usage }),
    );
  });
});

describe(verifyCms.name, () => {
  const opensslCms = (signer: string, out: string) =>
    openssl('cms', '-sign', '-binary', '-in', 'image.bin', '-signer', `${signer}.pem`, '-inkey', `${signer}.key`, '-certfile', 'inter.pem', '-md', 'sha256', '-outform', 'DER', '-out', out);
  const digestOfFile = (file: string) => async (hash: 'sha256' | 'sha384' | 'sha512') => createHash(hash).update(readFileSync(f(file))).digest();

  it('ok a detached CMS made by openssl cms -sign, with the chain it carries', async () => {
    opensslCms('fw', 'image.p7s');
    const { signers, certificates } = await verifyCms(readFileSync(f('image.p7s')), digestOfFile('image.bin'));
    expect(signers.map((s) => [s.certificate.subject, s.hash])).toEqual([['CN=fw', 'sha256']]);
    expect(signers[0].signingTime).toEqual(expect.any(String));
    expect(verifyChain(signers[0].certificate, certificates, [one('root')], { codeSigning: true })).toHaveLength(3);
  });

  it('fail the content changed: digest_mismatch', async () => {
    writeFileSync(f('tampered.bin'), Buffer.concat([readFileSync(f('image.bin')), Buffer.from([0])]));
    await expectInvalidAsync(verifyCms(readFileSync(f('image.p7s')), digestOfFile('tampered.bin')), 'digest_mismatch');
  });

  it('fail the signature bytes changed: signature_invalid', async () => {
    const der = Buffer.from(readFileSync(f('image.p7s')));
    // The ECDSA signature value is the last OCTET STRING: flip a bit of its last byte.
    der[der.length - 1] ^= 0x01;
    await expectInvalidAsync(verifyCms(der, digestOfFile('image.bin')), 'signature_invalid');
  });

  it.each([
    ['fail not DER at all', () => Buffer.from('not a signature')],
    ['fail a certificate instead of a CMS', () => one('root').raw],
  ])('%s: cms_invalid', async (_n, input) => {
    await expectInvalidAsync(verifyCms(input(), digestOfFile('image.bin')), 'cms_invalid');
  });

  it('fail a CMS with its content attached: cms_invalid', async () => {
    openssl('cms', '-sign', '-nodetach', '-binary', '-in', 'image.bin', '-signer', 'fw.pem', '-inkey', 'fw.key', '-outform', 'DER', '-out', 'attached.p7s');
    await expectInvalidAsync(verifyCms(readFileSync(f('attached.p7s')), digestOfFile('image.bin')), 'cms_invalid');
  });
});

describe(verifyMessageSignature.name, () => {
  const message = Buffer.from('manifest signed as a whole');
  // openssl signs (pkeyutl -rawin), ksctl verifies: two implementations.
  const opensslSignature = () => {
    writeFileSync(f('m.bin'), message);
    openssl('pkeyutl', '-sign', '-inkey', 'ed.key', '-rawin', '-in', 'm.bin', '-out', 'm.sig');
    return readFileSync(f('m.sig'));
  };

  it('ok an Ed25519 signature over the message', () => {
    expect(() => verifyMessageSignature({ signature: opensslSignature(), message, publicKey: one('ed').publicKey })).not.toThrow();
  });

  it.each([
    ['fail another message', () => ({ signature: opensslSignature(), message: Buffer.concat([message, Buffer.from('!')]) })],
    ['fail a flipped signature bit', () => ({ signature: Buffer.from(opensslSignature().map((b, i) => (i === 10 ? b ^ 1 : b))), message })],
    ['fail a truncated signature', () => ({ signature: opensslSignature().subarray(0, 63), message })],
  ])('%s: signature_invalid (exit 6)', (_n, input) => {
    expectInvalid(() => verifyMessageSignature({ ...input(), publicKey: one('ed').publicKey }), 'signature_invalid');
  });

  it('fail an ECDSA certificate: a usage error (it signs digests)', () => {
    expect(() => verifyMessageSignature({ signature: Buffer.alloc(64), message, publicKey: one('fw').publicKey })).toThrow(expect.objectContaining({ exit: Exit.Usage }));
  });
});
