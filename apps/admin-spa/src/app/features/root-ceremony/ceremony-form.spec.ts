import { ceremonyForm, colonHex, splitPemCertificates, subjectText, toCeremonyRequest } from './ceremony-form';

const PEM = (n: string) => `-----BEGIN CERTIFICATE-----\nMIIB${n}\n-----END CERTIFICATE-----`;

describe(ceremonyForm.name, () => {
  const cases: Array<[string, Record<string, unknown>, boolean]> = [
    ['ok a complete self-signed ceremony', { keyid: 'acme-root', commonName: 'Acme Root CA', country: 'dk', pathLen: 2 }, true],
    ['ok no path length constraint', { keyid: 'acme-root', commonName: 'Acme Root CA', pathLen: null }, true],
    ['fail keyid in upper case', { keyid: 'Acme-Root', commonName: 'Acme' }, false],
    ['fail no common name', { keyid: 'acme-root', commonName: '  ' }, false],
    ['fail a control character in the organization', { keyid: 'acme-root', commonName: 'Acme', organization: 'A\u0000B' }, false],
    // The API's rule for a certificate name (api-contract name-text): the console checks the same function.
    ['fail a common name in mathematical bold letters (𝐀𝐜𝐦𝐞)', { keyid: 'acme-root', commonName: '\u{1d400}\u{1d41c}\u{1d426}\u{1d41e} Root' }, false],
    ['fail an organizational unit with a ligature (ﬁ)', { keyid: 'acme-root', commonName: 'Acme', organizationalUnit: '\ufb01rmware' }, false],
    ['fail a common name mixing Latin and Cyrillic', { keyid: 'acme-root', commonName: 'Ac\u043ce Root' }, false],
    ['ok a Cyrillic common name, a Japanese organization', { keyid: 'acme-root', commonName: 'Москва', organization: '東京' }, true],
    ['fail a three-letter country', { keyid: 'acme-root', commonName: 'Acme', country: 'DNK' }, false],
    ['fail a path length above 8', { keyid: 'acme-root', commonName: 'Acme', pathLen: 9 }, false],
    ['fail a fractional validity', { keyid: 'acme-root', commonName: 'Acme', validityDays: 1.5 }, false],
    ['fail a validity of 0 days', { keyid: 'acme-root', commonName: 'Acme', validityDays: 0 }, false],
  ];
  it.each(cases)('%s', (_name, values, valid) => {
    const form = ceremonyForm();
    form.patchValue(values);
    expect(form.valid).toBe(valid);
  });
});

describe(toCeremonyRequest.name, () => {
  it('sends trimmed texts, the country upper-cased, and leaves out empty optional fields', () => {
    const form = ceremonyForm();
    form.patchValue({ mode: 'external', keyid: 'acme-root', algorithm: 'RSA_3072', commonName: ' Acme Root ', organization: '', country: 'dk', validityDays: 365, pathLen: null, requiredApprovers: 2 });
    expect(toCeremonyRequest(form)).toEqual({ keyid: 'acme-root', algorithm: 'RSA_3072', subject: { commonName: 'Acme Root', country: 'DK' }, validityDays: 365, requiredApprovers: 2, mode: 'external' });
  });

  it('sends a path length of 0 (a ROOT that certifies only issuing CAs)', () => {
    const form = ceremonyForm();
    form.patchValue({ keyid: 'acme-root', commonName: 'Acme', pathLen: 0, hash: 'SHA384' });
    expect(toCeremonyRequest(form)).toMatchObject({ pathLen: 0, hash: 'SHA384', mode: 'self-signed' });
  });
});

describe(subjectText.name, () => {
  it('restates the DN in the order CN, O, OU, C', () => {
    expect(subjectText({ commonName: 'Acme Root', organization: 'Acme', organizationalUnit: 'PKI', country: 'DK' })).toBe('CN=Acme Root, O=Acme, OU=PKI, C=DK');
    expect(subjectText({ commonName: 'Acme Root' })).toBe('CN=Acme Root');
  });
});

describe(splitPemCertificates.name, () => {
  const cases: Array<[string, string, number]> = [
    ['ok one certificate', PEM('a'), 1],
    ['ok a chain with text between the blocks', `subject=CN=x\n${PEM('a')}\nissuer\n${PEM('b')}\n`, 2],
    ['fail no certificate block', 'MIIB...', 0],
    ['fail a CSR is not a certificate', '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----', 0],
  ];
  it.each(cases)('%s', (_name, text, count) => {
    expect(splitPemCertificates(text)).toHaveLength(count);
  });
});

describe(colonHex.name, () => {
  it('groups the hex fingerprint in upper-case byte pairs', () => {
    expect(colonHex('0a1bff')).toBe('0A:1B:FF');
  });
});

describe(`${splitPemCertificates.name} with hostile text`, () => {
  // A paste must not freeze the page: the split is one pass over the text, whatever it holds.
  const cases: Array<[string, string]> = [
    ['fail 1 MiB of BEGIN lines with no END', '-----BEGIN CERTIFICATE-----\n'.repeat(37_450)],
    ['fail 1 MiB of BEGIN lines then one END', '-----BEGIN CERTIFICATE-----'.repeat(38_000) + '-----END CERTIFICATE-----'],
  ];
  it.each(cases)('%s: answers within 250 ms', (_name, text) => {
    const started = performance.now();
    splitPemCertificates(text);
    expect(performance.now() - started).toBeLessThan(250);
  });
});
