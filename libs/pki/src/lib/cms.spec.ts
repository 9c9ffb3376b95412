import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SoftwareSigner } from '../testing/software-signer';
import { createFirmwareSigningCertificate, createRootCertificate } from './certificates';
import { prepareCmsSigner, signCms } from './cms';

const DAY = 86_400_000;

describe(signCms.name, () => {
  const signer = new SoftwareSigner();
  let work: string;
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('signs any number of images with a chain parsed once; openssl cms -verify accepts each', async () => {
    work = mkdtempSync(join(tmpdir(), 'pki-cms-'));
    const rootKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'root' });
    const fwKey = await signer.generateKey({ algorithm: 'RSA-2048', label: 'fw' });
    const now = Date.now();
    const root = await createRootCertificate(signer, rootKey, { subject: { commonName: 'Root' }, notBefore: new Date(now - DAY), notAfter: new Date(now + 3650 * DAY) });
    const fw = await createFirmwareSigningCertificate(signer, { key: rootKey, certificate: root.certificatePem }, fwKey, {
      subject: { commonName: 'Firmware' },
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 365 * DAY),
    });
    writeFileSync(join(work, 'root.pem'), root.certificatePem);
    const cms = prepareCmsSigner(fwKey, [fw.certificatePem, root.certificatePem]);
    for (const i of [1, 2]) {
      const image = randomBytes(1000 + i);
      writeFileSync(join(work, `fw${i}.bin`), image);
      const der = await signCms(signer, cms, { digest: new Uint8Array(createHash('sha256').update(image).digest()) });
      writeFileSync(join(work, `fw${i}.p7s`), der);
      execFileSync('openssl', ['cms', '-verify', '-binary', '-content', join(work, `fw${i}.bin`), '-inform', 'DER', '-in', join(work, `fw${i}.p7s`), '-CAfile', join(work, 'root.pem'), '-purpose', 'any', '-out', '/dev/null'], {
        stdio: 'pipe',
      });
    }
  });

  it.each([
    ['fail a chain without the signer certificate', [] as string[], 'invalid_certificate'],
    ['fail a signer certificate that does not parse', ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'], 'invalid_certificate'],
  ])('%s', async (_n, chain, code) => {
    const key = await signer.generateKey({ algorithm: 'RSA-2048', label: 'k' });
    expect(() => prepareCmsSigner(key, chain)).toThrow(expect.objectContaining({ code }));
  });
});
