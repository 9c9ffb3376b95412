import { z } from 'zod';

/** SAN entry types a device certificate may carry (dNSName, uniformResourceIdentifier, rfc822Name, iPAddress). */
export const DeviceSanType = z.enum(['dns', 'uri', 'email', 'ip']);
export type DeviceSanType = z.infer<typeof DeviceSanType>;

const unique = <T>(xs: T[]) => new Set(xs).size === xs.length;

/** A DNS domain as the profile names it: lower-case LDH labels, no wildcard, no trailing dot, last label not numeric. */
const DnsDomain = z
  .string()
  .max(253)
  .regex(/^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, 'a lower-case DNS name without wildcard')
  .refine((d) => !/^[0-9]+$/.test(d.split('.').pop() ?? ''), 'not an IP address');

/**
 * The device-certificate profile of a CA key (docs/device-profile.md): what its device certificates may carry.
 * `PUT /api/v1/keys/{keyid}/device-profile` replaces it whole (ACTIVE admin session).
 */
export const DeviceProfile = z.strictObject({
  validityDays: z.number().int().min(1).max(3650).describe('Longest validity of a device certificate (never past the CA certificate)'),
  allowedSanTypes: z.array(DeviceSanType).max(4).refine(unique, 'no duplicates').describe('SAN types copied from the CSR; others are refused'),
  maxSanCount: z.number().int().min(0).max(32).describe('At most this many SAN entries (0: none)'),
  dnsDomains: z
    .array(DnsDomain)
    .max(32)
    .refine(unique, 'no duplicates')
    .describe('When not empty: every dNSName, rfc822Name domain and URI host equals one of these or is below it'),
  uriSchemes: z
    .array(z.string().regex(/^[a-z][a-z0-9+.-]{0,31}$/, 'a lower-case URI scheme'))
    .max(16)
    .refine(unique, 'no duplicates')
    .describe('Schemes a URI SAN may have'),
  keyAgreement: z.boolean().describe('keyUsage also gets keyAgreement for EC device keys'),
});
export type DeviceProfile = z.infer<typeof DeviceProfile>;

/** The profile of a CA key nobody configured (and of CA keys created before profiles existed). */
export const DEFAULT_DEVICE_PROFILE: DeviceProfile = {
  validityDays: 365,
  allowedSanTypes: ['dns', 'uri'],
  maxSanCount: 8,
  dnsDomains: [],
  uriSchemes: ['https', 'urn'],
  keyAgreement: false,
};

export const DeviceProfileView = DeviceProfile.extend({ keyid: z.string() });
export type DeviceProfileView = z.infer<typeof DeviceProfileView>;
