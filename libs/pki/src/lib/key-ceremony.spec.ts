import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import { SoftwareSigner } from '../testing/software-signer';
import { OID } from './der';
import {
  basicConstraintsExtension,
  buildName,
  createCaCertificate,
  createFirmwareSigningCertificate,
  createRootCertificate,
  ext,
  keyUsageExtension,
  signCertificate,
  skiExtension,
  type IssuedCertificate,
} from './certificates';
import type { HsmKeyInfo } from './hsm-signer';
import { createKeyCsr, nameSpecOf, spkiSha256, subjectAndKeyOf, verifyImportedCaCertificate } from './key-ceremony';

const DAY = 86_400_000;

describe(verifyImportedCaCertificate.name, () => {
  const signer = new SoftwareSigner();
  const now = Date.now();
  const validity = { notBefore: new Date(now - DAY), notAfter: new Date(now + 365 * DAY) };
  let offline: HsmKeyInfo;
  let offlineCert: IssuedCertificate;
  let online: HsmKeyInfo;
  let other: HsmKeyInfo;

  beforeAll(async () => {
    offline = await signer.generateKey({ algorithm: 'RSA-2048', label: 'offline' });
    online = await signer.generateKey({ algorithm: 'RSA-2048', label: 'online' });
    other = await signer.generateKey({ algorithm: 'RSA-2048', label: 'other' });
    offlineCert = await createRootCertificate(signer, offline, { subject: { commonName: 'Offline Root' }, notBefore: new Date(now - 2 * DAY), notAfter: new Date(now + 3650 * DAY), pathLen: 1 });
  });

  const caFor = (key: HsmKeyInfo, issuer: { key: HsmKeyInfo; certificate: string } = { key: offline, certificate: offlineCert.certificatePem }) =>
    createCaCertificate(signer, issuer, key, { subject: { commonName: 'Online Root' }, ...validity, pathLen: 0 });

  it('ok the certificate of the key, CA, chained to the self-signed anchor: its facts and the chain above it', async () => {
    const cert = await caFor(online);
    const v = verifyImportedCaCertificate(online, cert.certificatePem, [offlineCert.certificatePem]);
    expect(v).toMatchObject({ serialHex: cert.serialHex, pathLen: 0, chainPem: offlineCert.certificatePem });
    expect(v.notAfter.getTime()).toBe(Math.floor(validity.notAfter.getTime() / 1000) * 1000);
  });

  it.each([
    ['fail a certificate for another key', 'certificate_key_mismatch', async () => ({ cert: (await caFor(other)).certificatePem, chain: [offlineCert.certificatePem] })],
    [
      'fail an end-entity certificate (CA:false)',
      'issuer_not_ca',
      async () => ({
        cert: (await createFirmwareSigningCertificate(signer, { key: offline, certificate: offlineCert.certificatePem }, online, { subject: { commonName: 'FW' }, ...validity })).certificatePem,
        chain: [offlineCert.certificatePem],
      }),
    ],
    ['fail an empty chain', 'chain_invalid', async () => ({ cert: (await caFor(online)).certificatePem, chain: [] as string[] })],
    [
      'fail a chain that does not end in a self-signed root',
      'chain_invalid',
      async () => {
        const top = await createRootCertificate(signer, other, { subject: { commonName: 'Top' }, ...validity });
        const inter = await signer.generateKey({ algorithm: 'RSA-2048', label: 'inter' });
        const interCert = await createCaCertificate(signer, { key: other, certificate: top.certificatePem }, inter, { subject: { commonName: 'Inter' }, ...validity, pathLen: 1 });
        const cert = await createCaCertificate(signer, { key: inter, certificate: interCert.certificatePem }, online, { subject: { commonName: 'Online' }, ...validity, pathLen: 0 });
        // The intermediate alone: the chain stops below its root.
        return { cert: cert.certificatePem, chain: [interCert.certificatePem] };
      },
    ],
    [
      'fail an anchor that did not sign it',
      'chain_invalid',
      async () => {
        const stranger = await createRootCertificate(signer, other, { subject: { commonName: 'Offline Root' }, ...validity });
        return { cert: (await caFor(online)).certificatePem, chain: [stranger.certificatePem] };
      },
    ],
    [
      'fail an issuer whose pathLen 0 forbids a CA below it',
      'chain_invalid',
      async () => {
        const strict = await createRootCertificate(signer, offline, { subject: { commonName: 'Strict Root' }, ...validity, pathLen: 0 });
        const name = buildName({ commonName: 'Online Root' });
        // Built by hand: createCaCertificate itself refuses to issue it.
        const cert = await signCertificate(signer, offline, {
          issuerName: buildName({ commonName: 'Strict Root' }),
          subject: name,
          spki: online.spki,
          validity,
          extensions: [basicConstraintsExtension(true, 0), keyUsageExtension(['keyCertSign', 'cRLSign']), skiExtension(online.spki)],
        });
        return { cert: cert.certificatePem, chain: [strict.certificatePem] };
      },
    ],
    [
      'fail an empty SKI (it would become the AKI of everything the key issues)',
      'invalid_certificate',
      async () => {
        const cert = await signCertificate(signer, offline, {
          issuerName: buildName({ commonName: 'Offline Root' }),
          subject: buildName({ commonName: 'Online Root' }),
          spki: online.spki,
          validity,
          extensions: [basicConstraintsExtension(true, 0), keyUsageExtension(['keyCertSign', 'cRLSign']), ext(OID.subjectKeyIdentifier, false, new asn1js.OctetString({ valueHex: new ArrayBuffer(0) }))],
        });
        return { cert: cert.certificatePem, chain: [offlineCert.certificatePem] };
      },
    ],
    ['fail at a time the certificate has expired', 'chain_invalid', async () => ({ cert: (await caFor(online)).certificatePem, chain: [offlineCert.certificatePem], at: new Date(now + 400 * DAY) })],
    ['fail text that is not a certificate', 'invalid_certificate', async () => ({ cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', chain: [offlineCert.certificatePem] })],
    [
      // GeneralizedTime 00491231235959Z: Node prints "Dec 31 23:59:59 0049 GMT", which Date reads as 2049.
      'fail a certificate that expired in the year 49 (not read as 2049)',
      'chain_invalid',
      async () => {
        const ancient = { notBefore: new Date('0001-01-01T00:00:00Z'), notAfter: new Date(now + 3650 * DAY) };
        const anchor = await createRootCertificate(signer, offline, { subject: { commonName: 'Ancient Root' }, ...ancient, pathLen: 1 });
        const cert = await createCaCertificate(signer, { key: offline, certificate: anchor.certificatePem }, online, {
          subject: { commonName: 'Online Root' },
          notBefore: new Date('0010-01-01T00:00:00Z'),
          notAfter: new Date('0049-12-31T23:59:59Z'),
          pathLen: 0,
        });
        return { cert: cert.certificatePem, chain: [anchor.certificatePem] };
      },
    ],
  ])('%s (%s)', async (_name, code, make) => {
    const c = (await make()) as { cert: string; chain: string[]; at?: Date };
    expect(() => verifyImportedCaCertificate(online, c.cert, c.chain, c.at)).toThrow(expect.objectContaining({ code }));
  });

  // notBeforeSkewMs (the renewed external chain, ADR 0020 addendum): an issuing clock running ahead, up to the skew.
  it.each([
    ['fail a notBefore a minute ahead without skew (the import)', 60_000, undefined, 'chain_invalid'],
    ['ok a notBefore a minute ahead with 5 minutes of skew', 60_000, 300_000, 'ok'],
    ['fail a notBefore 6 minutes ahead with 5 minutes of skew', 360_000, 300_000, 'chain_invalid'],
  ] as const)('%s', async (_name, ahead, skew, expected) => {
    const cert = await createCaCertificate(signer, { key: offline, certificate: offlineCert.certificatePem }, online, { subject: { commonName: 'Online Root' }, notBefore: new Date(now + ahead), notAfter: validity.notAfter, pathLen: 0 });
    const at = new Date(Math.floor(now / 1000) * 1000);
    const outcome = () => verifyImportedCaCertificate(online, cert.certificatePem, [offlineCert.certificatePem], at, skew === undefined ? undefined : { notBeforeSkewMs: skew });
    if (expected === 'ok') expect(outcome().notBefore.getTime()).toBeGreaterThan(at.getTime());
    else expect(outcome).toThrow(expect.objectContaining({ code: expected }));
  });

  it('ok subjectAndKeyOf: the subject bytes as encoded and the SubjectPublicKeyInfo; garbage is invalid_certificate', async () => {
    const cert = await caFor(online);
    const x = new X509Certificate(cert.certificatePem);
    const { subject, spki } = subjectAndKeyOf(cert.certificatePem);
    expect(Buffer.from(spki).equals(x.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
    // The DER of Name SEQUENCE { SET { SEQUENCE { cn, UTF8String "Online Root" } } } as written.
    expect(Buffer.from(subject).toString('hex')).toBe('3016311430120603550403' + '0c0b' + Buffer.from('Online Root').toString('hex'));
    expect(() => subjectAndKeyOf('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')).toThrow(expect.objectContaining({ code: 'invalid_certificate' }));
  });

  // The CA levels the key may have below it: what every constraint on its path leaves (RFC 5280 6.1.4 (l)-(m)).
  it.each([
    ['ok no constraint anywhere: none', undefined, undefined, undefined],
    ['ok none of its own under an anchor allowing one level: none below it', 1, undefined, 0],
    ['ok the anchor\'s when it is tighter than its own', 2, 5, 1],
    ['ok its own when it is tighter than the anchor\'s', 5, 0, 0],
  ])('%s', async (_name, anchorPathLen, ownPathLen, expected) => {
    const anchor = await createRootCertificate(signer, offline, { subject: { commonName: 'Path Root' }, ...validity, pathLen: anchorPathLen });
    const cert = await signCertificate(signer, offline, {
      issuerName: buildName({ commonName: 'Path Root' }),
      subject: buildName({ commonName: 'Online Root' }),
      spki: online.spki,
      validity,
      extensions: [basicConstraintsExtension(true, ownPathLen), keyUsageExtension(['keyCertSign', 'cRLSign']), skiExtension(online.spki)],
    });
    expect(verifyImportedCaCertificate(online, cert.certificatePem, [anchor.certificatePem]).pathLen).toBe(expected);
  });
});

// The software signer makes RSA-2048 keys; EC-P384 CSRs from SoftHSM are verified by openssl in go-live.spec.ts.
describe(createKeyCsr.name, () => {
  const signer = new SoftwareSigner();
  let work: string;
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it.each(['RSA-2048'] as const)('ok a %s CSR signed by the key that openssl verifies, asking for a CA', async (algorithm) => {
    work ??= mkdtempSync(join(tmpdir(), 'pki-csr-'));
    const key = await signer.generateKey({ algorithm, label: 'root' });
    const { csrPem } = await createKeyCsr(signer, key, { commonName: 'Acme Online Root', organization: 'Acme', country: 'DK' });
    const file = join(work, `${algorithm}.csr`);
    writeFileSync(file, csrPem);
    const r = spawnSync('openssl', ['req', '-in', file, '-noout', '-verify', '-text'], { encoding: 'utf8' });
    expect({ status: r.status, out: r.stdout + r.stderr }).toEqual({ status: 0, out: expect.stringContaining('verify OK') });
    expect(r.stdout).toMatch(/CA:TRUE/);
    expect(r.stdout).toMatch(/Subject: C\s?=\s?DK, O\s?=\s?Acme, CN\s?=\s?Acme Online Root/);
    const pub = spawnSync('openssl', ['req', '-in', file, '-noout', '-pubkey'], { encoding: 'utf8' }).stdout;
    const der = Buffer.from(pub.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    expect(createHash('sha256').update(der).digest('hex')).toBe(spkiSha256(key.spki));
  });
});

describe(nameSpecOf.name, () => {
  it('ok reads back the subject a certificate was made with', async () => {
    const signer = new SoftwareSigner();
    const key = await signer.generateKey({ algorithm: 'RSA-2048', label: 'k' });
    const spec = { commonName: 'Acme Root', organization: 'Acme Devices', organizationalUnit: 'PKI', country: 'DK' };
    const cert = await createRootCertificate(signer, key, { subject: spec, notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + DAY) });
    expect(nameSpecOf(cert.certificatePem)).toEqual(spec);
    expect(new X509Certificate(cert.certificatePem).subject).toContain('CN=Acme Root');
  });
});
