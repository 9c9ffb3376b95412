import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pkijs from 'pkijs';
import fc from 'fast-check';
import { SoftwareSigner } from '../testing/software-signer';
import { createRootCertificate } from './certificates';
import { createCrl, CRL_REASONS, type CrlReason, type RevokedCertificateEntry } from './crl';
import { isStrictDer, toAb, toPem } from './der';
import type { HsmKeyInfo } from './hsm-signer';
import { PkiError } from './pki-error';

const DAY = 86_400_000;
const T0 = new Date(Date.UTC(2031, 4, 6, 7, 8, 9));

/** The code of what `run` throws ('ok' when it does not). */
async function codeOf(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
    return 'ok';
  } catch (e) {
    return e instanceof PkiError ? e.code : `not a PkiError: ${(e as Error).message}`;
  }
}

describe(createCrl.name, () => {
  const signer = new SoftwareSigner();
  let work: string;
  let key: HsmKeyInfo;
  let rootPem: string;
  const f = (n: string) => join(work, n);
  const tool = (cmd: string, args: string[]) => execFileSync(cmd, args, { stdio: 'pipe' }).toString();
  const crl = (revoked: RevokedCertificateEntry[], thisUpdate = T0, nextUpdate = new Date(T0.getTime() + DAY), n: number | bigint = 7) =>
    createCrl(signer, key, rootPem, revoked, n, thisUpdate, nextUpdate);

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'pki-crl-'));
    key = await signer.generateKey({ algorithm: 'RSA-2048', label: 'root' });
    rootPem = (await createRootCertificate(signer, key, { subject: { commonName: 'CRL Root' }, notBefore: new Date(Date.UTC(1949, 0, 1)), notAfter: new Date(Date.UTC(2080, 0, 1)) })).certificatePem;
    writeFileSync(f('root.pem'), rootPem);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** openssl crl -verify and certtool --crl-info on a CRL; returns openssl's text. */
  function accepted(der: Uint8Array, name: string): string {
    writeFileSync(f(name), der);
    expect(tool('openssl', ['crl', '-inform', 'DER', '-in', f(name), '-CAfile', f('root.pem'), '-noout', '-verify'])).toBe('');
    // certtool's --inder would apply to the CA file too: it reads the PEM form.
    writeFileSync(f(`${name}.pem`), toPem('X509 CRL', der));
    tool('certtool', ['--crl-info', '--infile', f(`${name}.pem`)]);
    // certtool judges the dates by the clock (no --attime in 3.7): only a date may be what it finds wrong.
    const verified = spawnSync('certtool', ['--verify-crl', '--infile', f(`${name}.pem`), '--load-ca-certificate', f('root.pem')]).stdout.toString();
    const verdict = /Verification output: (.*)/.exec(verified)?.[1] ?? 'none';
    const dateOnly = ['Not verified.', 'The certificate is NOT trusted.', 'The revocation or OCSP data are issued with a future date.', 'The revocation or OCSP data are old and have been superseded.'];
    expect(verdict === 'Verified.' || dateOnly.reduce((rest, s) => rest.replace(s, ''), verdict).trim() === '').toBe(true);
    return tool('openssl', ['crl', '-inform', 'DER', '-in', f(name), '-noout', '-text']);
  }

  it.each<[string, Partial<RevokedCertificateEntry>]>([
    ['fail a serial with a leading zero byte it does not need (00 01: not a DER INTEGER)', { serialHex: '0001' }],
    ['fail a serial with a leading zero byte before a byte under 80', { serialHex: '007f1234' }],
    ['fail a negative serial', { serialHex: 'ff01' }],
    ['fail a zero serial', { serialHex: '00' }],
    ['fail upper-case hex', { serialHex: 'AB' }],
    ['fail 21 bytes', { serialHex: '01'.repeat(21) }],
    ['fail a reason that is a property of every object (toString)', { reason: 'toString' as CrlReason }],
    ['fail a reason that is a property of every object (constructor)', { reason: 'constructor' as CrlReason }],
    ['fail a reason that is a property of every object (__proto__)', { reason: '__proto__' as CrlReason }],
    ['fail a revocation date that is not a date', { revocationDate: new Date(NaN) }],
  ])('%s: invalid_crl_input, nothing signed', async (_n, twist) => {
    expect(await codeOf(() => crl([{ serialHex: '0a', revocationDate: T0, ...twist }]))).toBe('invalid_crl_input');
  });

  it.each<[string, string]>([
    ['ok a serial whose first byte has its high bit, after the 00 DER needs', '0080'],
    ['ok a one-byte serial', '01'],
    ['ok a 20-byte serial', `7f${'ff'.repeat(19)}`],
  ])('%s: listed as that integer, the CRL DER', async (_n, serialHex) => {
    const { crlDer } = await crl([{ serialHex, revocationDate: T0 }]);
    expect(isStrictDer(crlDer)).toBe(true);
    expect(accepted(crlDer, 'serial.crl').replace(/\s/g, '')).toContain(`SerialNumber:${serialHex.replace(/^00/, '').toUpperCase()}`);
  });

  it('ok one canonical DER per revoked set: entries in ascending serial order, whatever order they are given in (fast-check)', async () => {
    const serial = fc
      .uint8Array({ minLength: 1, maxLength: 20 })
      .map((b) => {
        b[0] &= 0x7f;
        if (b[0] === 0) b[0] = 1;
        return Buffer.from(b).toString('hex');
      });
    const reason = fc.option(fc.constantFrom(...(Object.keys(CRL_REASONS) as CrlReason[])), { nil: undefined });
    const entry = fc.record({ serialHex: serial, revocationDate: fc.date({ min: new Date(Date.UTC(1951, 0, 1)), max: T0, noInvalidDate: true }), reason });
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(entry, { selector: (e) => e.serialHex, maxLength: 12 }), fc.infiniteStream(fc.double({ noNaN: true })), async (entries, keys) => {
        const shuffled = entries.map((e) => [keys.next().value as number, e] as const).sort((a, b) => a[0] - b[0]).map(([, e]) => e);
        const a = (await crl(entries)).crlDer;
        const b = (await crl(shuffled)).crlDer;
        expect(Buffer.from(b).equals(Buffer.from(a))).toBe(true);
        expect(isStrictDer(a)).toBe(true);
        const listed = (pkijs.CertificateRevocationList.fromBER(toAb(a)).revokedCertificates ?? []).map((r) => r.userCertificate.toBigInt());
        expect(listed).toEqual([...listed].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
        expect(listed.length).toBe(entries.length);
      }),
      { numRuns: 40 },
    );
    const { crlDer } = await crl([
      { serialHex: '7f01', revocationDate: T0, reason: 'keyCompromise' },
      { serialHex: '0a', revocationDate: T0, reason: 'unspecified' },
      { serialHex: '0080', revocationDate: T0, reason: 'privilegeWithdrawn' },
    ]);
    const text = accepted(crlDer, 'order.crl').replace(/\s/g, '');
    expect(text.indexOf('SerialNumber:0A')).toBeLessThan(text.indexOf('SerialNumber:80'));
    expect(text.indexOf('SerialNumber:80')).toBeLessThan(text.indexOf('SerialNumber:7F01'));
    expect(text).toContain('KeyCompromise');
    expect(text).toContain('PrivilegeWithdrawn');
    // unspecified is left out (RFC 5280 5.3.1: the reasonCode SHOULD be absent rather than unspecified).
    expect(text).not.toContain('Unspecified');
  });

  it.each<[string, Date, Date, string, string]>([
    ['ok the last UTCTime second and the first GeneralizedTime one (RFC 5280 5.1.2.4-5)', new Date(Date.UTC(2049, 11, 31, 23, 59, 59, 999)), new Date(Date.UTC(2050, 0, 1)), '491231235959Z', '20500101000000Z'],
    ['ok the first UTCTime second (1950)', new Date(Date.UTC(1950, 0, 1)), new Date(Date.UTC(1950, 0, 2, 0, 0, 0, 1)), '500101000000Z', '500102000000Z'],
    ['ok milliseconds dropped, never rounded up', new Date(Date.UTC(2031, 0, 1, 0, 0, 0, 999)), new Date(Date.UTC(2031, 0, 2, 0, 0, 0, 500)), '310101000000Z', '310102000000Z'],
  ])('%s: thisUpdate, nextUpdate and revocationDate in whole seconds, the type by year', async (_n, thisUpdate, nextUpdate, thisText, nextText) => {
    const { crlDer } = await crl([{ serialHex: '01', revocationDate: thisUpdate }], thisUpdate, nextUpdate);
    expect(isStrictDer(crlDer)).toBe(true);
    const hex = Buffer.from(crlDer).toString('hex');
    const tlv = (s: string) => `${s.length === 13 ? '17' : '18'}${s.length.toString(16).padStart(2, '0')}${Buffer.from(s).toString('hex')}`;
    expect(hex).toContain(tlv(thisText) + tlv(nextText));
    expect(hex).toContain(`020101${tlv(thisText)}`);
    accepted(crlDer, 'time.crl');
  });

  it.each<[string, Date, Date]>([
    ['fail nextUpdate equal to thisUpdate', T0, T0],
    ['fail nextUpdate in the same second as thisUpdate (equal once written)', T0, new Date(T0.getTime() + 999)],
    ['fail nextUpdate before thisUpdate', T0, new Date(T0.getTime() - DAY)],
  ])('%s: invalid_validity', async (_n, thisUpdate, nextUpdate) => {
    expect(await codeOf(() => crl([], thisUpdate, nextUpdate))).toBe('invalid_validity');
  });
});
