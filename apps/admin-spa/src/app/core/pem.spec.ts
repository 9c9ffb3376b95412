import fc from 'fast-check';
import { CERT_A, CERT_A_SHA256, CERT_B, CERT_B_SHA256 } from '../../testing/certificates';
import { provideWebCrypto } from '../../testing/webcrypto';
import { MAX_PEM_TEXT, colonHex, readPemCertificates, sha256Hex, splitPemCertificates } from './pem';

describe(readPemCertificates.name, () => {
  const cases: Array<[string, string, number, string | number]> = [
    ['ok one certificate', CERT_A, 1, 1],
    ['ok a chain with openssl\'s text between the blocks', `subject=CN=Fixture A\n${CERT_A}issuer=CN=Fixture B\r\n${CERT_B}`, 8, 2],
    ['fail no certificate block', 'MIIBfjCCASOgAwIBAgIU', 8, 'no_certificate'],
    ['fail a CSR is not a certificate', '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----', 8, 'no_certificate'],
    ['fail two certificates where one is allowed', CERT_A + CERT_B, 1, 'too_many'],
    ['fail a non-base64 character inside the armour', CERT_A.replace('MIIB', 'MI\u00e9B'), 1, 'not_base64'],
    ['fail a bidi override inside the armour', CERT_A.replace('MIIB', 'MII\u202eB'), 1, 'not_base64'],
    ['fail base64 of text, not of a certificate', '-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGUgYXQgYWxsLCBqdXN0IHNvbWUgdGV4dCBpbiBhIFBFTSBhcm1vdXI=\n-----END CERTIFICATE-----\n', 1, 'not_der'],
    ['fail a text over the largest chain, before any search', 'x'.repeat(MAX_PEM_TEXT + 1), 8, 'too_large'],
    ['fail a certificate block of 70 kB', `-----BEGIN CERTIFICATE-----\n${'A'.repeat(70_000)}\n-----END CERTIFICATE-----\n`, 1, 'not_base64'],
  ];
  it.each(cases)('%s', (_name, text, max, expected) => {
    const r = readPemCertificates(text, max);
    expect(r.ok ? r.certificates.length : r.problem).toBe(expected);
  });

  it('ok hands back each block as PEM with one final newline, and its DER', () => {
    const r = readPemCertificates(`  ${CERT_A.trim()}  `, 1);
    expect(r.ok && r.certificates[0].pem).toBe(CERT_A);
    expect(r.ok && r.certificates[0].der[0]).toBe(0x30);
  });

  it('ok any text, unicode and lone surrogates included, is read or refused with a problem, never thrown', () => {
    const armoured = fc.string({ unit: 'binary', maxLength: 2000 }).map((s) => `-----BEGIN CERTIFICATE-----\n${s}\n-----END CERTIFICATE-----`);
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 5000 }), armoured), (text) => {
        const r = readPemCertificates(text, 8);
        expect(r.ok || ['no_certificate', 'not_base64', 'not_der', 'too_many'].includes(r.problem)).toBe(true);
      }),
      { seed: 20261208, numRuns: 500 },
    );
  });

  // A paste must not freeze the page: each case reads the largest text accepted, or far more, in one pass.
  const hostile: Array<[string, string]> = [
    ['fail 10 MiB pasted', 'A'.repeat(10 * 1024 * 1024)],
    ['fail BEGIN lines up to the limit with no END', '-----BEGIN CERTIFICATE-----\n'.repeat(Math.floor(MAX_PEM_TEXT / 28))],
    ['fail one block of base64 up to the limit', `-----BEGIN CERTIFICATE-----\n${'QUFB\n'.repeat(Math.floor(MAX_PEM_TEXT / 5) - 20)}-----END CERTIFICATE-----`],
    ['fail emoji up to the limit', '\u{1f600}'.repeat(Math.floor(MAX_PEM_TEXT / 2))],
  ];
  it.each(hostile)('%s: answers within 250 ms', (_name, text) => {
    const started = performance.now();
    expect(readPemCertificates(text, 8).ok).toBe(false);
    expect(performance.now() - started).toBeLessThan(250);
  });
});

describe(splitPemCertificates.name, () => {
  it('ok a BEGIN repeated before its END starts the block at the last one', () => {
    expect(splitPemCertificates(`-----BEGIN CERTIFICATE-----\n${CERT_A}`)).toEqual([CERT_A]);
  });
});

describe(sha256Hex.name, () => {
  beforeAll(provideWebCrypto);

  it('ok is the SHA-256 of the DER, as openssl prints it', async () => {
    const r = readPemCertificates(CERT_A + CERT_B, 2);
    if (!r.ok) throw new Error(r.problem);
    expect(await Promise.all(r.certificates.map(async (c) => colonHex(await sha256Hex(c.der))))).toEqual([CERT_A_SHA256, CERT_B_SHA256]);
  });
});
