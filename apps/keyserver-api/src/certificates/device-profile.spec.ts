import { DEFAULT_DEVICE_PROFILE } from '@keyserver/api-contract';
import type { Key } from '@keyserver/data-access';
import { deviceProfile } from './certificates.service';
import { storedDeviceProfile } from './device-profile.service';

describe(deviceProfile.name, () => {
  const key = (profile: unknown, daysLeft = 1000): Key =>
    ({ keyid: 'demo-ca-dev', type: 'CA', profile, currentVersion: 3, notAfter: new Date(Date.now() + daysLeft * 86_400_000) }) as Key;

  it('names the CRL of the issuing key version (the current one, which signs) under the public URL', () => {
    expect(deviceProfile(key({}), 'https://keys.example.test/').crlDistributionPointUrl).toBe('https://keys.example.test/api/v1/crl/demo-ca-dev/versions/3');
  });

  it('ok a CA without a stored profile gets the default profile', () => {
    expect(storedDeviceProfile(key({}))).toEqual(DEFAULT_DEVICE_PROFILE);
    expect(deviceProfile(key({}), 'http://x')).toMatchObject({ validityDays: 365, allowedSanTypes: ['dns', 'uri'], maxSanCount: 8, dnsDomains: [], uriSchemes: ['https', 'urn'], keyAgreementForEc: false });
  });

  it.each([
    ['fail a SAN type the PKI cannot copy', { allowedSanTypes: ['dns', 'otherName'] }],
    ['fail an unknown field', { allowedSans: ['dns'] }],
    ['fail a validity of 0 days', { validityDays: 0 }],
    ['fail a wildcard domain', { dnsDomains: ['*.example'] }],
    ['fail an array', []],
    ['fail null', null],
  ])('%s: nothing is issued with a profile the API did not write', (_n, profile) => {
    expect(() => deviceProfile(key(profile), 'http://x')).toThrow(expect.objectContaining({ code: 'device_profile_invalid', status: 409 }));
  });

  it('cuts the validity to what the CA itself still covers', () => {
    expect(deviceProfile(key({ validityDays: 800 }, 100.5), 'http://x').validityDays).toBe(100);
    expect(deviceProfile(key({ keyAgreement: true }), 'http://x').keyAgreementForEc).toBe(true);
  });
});
