import type { Key } from '@keyserver/data-access';
import { deviceProfile } from './certificates.service';

describe(deviceProfile.name, () => {
  const key = (profile: unknown, daysLeft = 1000): Key =>
    ({ keyid: 'demo-ca-dev', profile, notAfter: new Date(Date.now() + daysLeft * 86_400_000) }) as Key;

  it('names the CRL of the issuing key under the public URL', () => {
    expect(deviceProfile(key({}), 'https://keys.example.test/').crlDistributionPointUrl).toBe('https://keys.example.test/api/v1/crl/demo-ca-dev');
  });

  it('keeps known SAN types and drops ones the PKI cannot copy', () => {
    expect(deviceProfile(key({ allowedSanTypes: ['dns', 'uri', 'otherName'] }), 'http://x').allowedSanTypes).toEqual(['dns', 'uri']);
    expect(deviceProfile(key({}), 'http://x').allowedSanTypes).toBeUndefined();
  });

  it('cuts the validity to what the CA itself still covers', () => {
    expect(deviceProfile(key({ validityDays: 800 }, 100.5), 'http://x').validityDays).toBe(100);
    expect(deviceProfile(key({}), 'http://x').validityDays).toBe(365);
    expect(deviceProfile(key({ keyAgreement: true }), 'http://x').keyAgreementForEc).toBe(true);
  });
});
