import { SoftwareSigner } from './software-signer';
import { createCaCertificate, createRootCertificate, type IssuedCertificate } from '../lib/certificates';
import { parseCsr, prepareDeviceCertificate, prepareIssuer, signDeviceCertificate, verifyCsrPossession, type DeviceCertificateIssuer, type DeviceCertificateProfile } from '../lib/csr';
import { PkiError } from '../lib/pki-error';
import { reservedNames } from '../lib/device-names';

const DAY = 86_400_000;

export interface TestCa {
  signer: SoftwareSigner;
  root: IssuedCertificate;
  ca: IssuedCertificate;
  issuer: DeviceCertificateIssuer;
  profile: DeviceCertificateProfile;
}

/** A software root and device CA (RSA-2048) for issuing device certificates in the PKI library's tests. */
export async function createTestCa(): Promise<TestCa> {
  const signer = new SoftwareSigner();
  const rootKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'root' });
  const caKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'ca' });
  const now = Date.now();
  const root = await createRootCertificate(signer, rootKey, { subject: { commonName: 'Test Root', organization: 'Acme' }, notBefore: new Date(now - DAY), notAfter: new Date(now + 30 * 365 * DAY) });
  const ca = await createCaCertificate(signer, { key: rootKey, certificate: root.certificatePem }, caKey, {
    subject: { commonName: 'Test Device CA', organization: 'Acme' },
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 10 * 365 * DAY),
  });
  const issuer = prepareIssuer({ key: caKey, certificate: ca.certificatePem, chain: [root.certificatePem] });
  return { signer, root, ca, issuer, profile: { validityDays: 365, reservedNames: reservedNames([root.certificatePem, ca.certificatePem]) } };
}

export type IssueOutcome = { code: string } | { certificatePem: string };

/** The whole pipeline (parse, PoP, policy, profile, sign): the certificate, or the PkiError code; anything else throws. */
export async function tryIssue(t: TestCa, csr: string | Uint8Array, profile: Partial<DeviceCertificateProfile> = {}): Promise<IssueOutcome> {
  try {
    const prepared = prepareDeviceCertificate(t.issuer, verifyCsrPossession(parseCsr(csr)), { ...t.profile, ...profile });
    return { certificatePem: (await signDeviceCertificate(t.signer, prepared)).certificatePem };
  } catch (e) {
    if (e instanceof PkiError) return { code: e.code };
    throw e;
  }
}
