import { z } from 'zod';
import { KeyIdRef } from './ids';
import { Uuid } from './contract';
import { PageLimit } from './operations';

/** `POST /api/v1/certificates`: a device CSR signed by a CA key under an operation. */
export const IssueCertificateRequest = z.strictObject({
  operationid: Uuid,
  keyid: KeyIdRef.describe('The issuing CA key'),
  csr: z.string().min(1).max(65_536).describe('PKCS#10 in PEM'),
});
export type IssueCertificateRequest = z.infer<typeof IssueCertificateRequest>;

export const IssueCertificateResponse = z.object({
  id: Uuid,
  certificate: z.string().describe('The device certificate, PEM'),
  chain: z.array(z.string()).describe('PEM: the issuing CA first, up to the ROOT'),
  serial: z.string().describe('Serial number, lower-case hex'),
  ignoredExtensions: z
    .array(z.string())
    .describe('OIDs of the non-critical extensions the CSR requested that the certificate does not carry as asked (the device profile decides every extension; a critical one it does not honour refuses the request: csr_extension_unsupported)'),
});
export type IssueCertificateResponse = z.infer<typeof IssueCertificateResponse>;

export const CertificateListQuery = z.strictObject({
  serial: z.string().regex(/^(?:0x)?[0-9a-fA-F]{1,40}$/, 'serial must be hex').optional(),
  subject: z.string().min(1).max(256).optional().describe('Case-insensitive substring of the subject DN'),
  issuer: KeyIdRef.optional().describe('keyid of the issuing CA'),
  cursor: Uuid.optional(),
  limit: PageLimit.optional(),
});
export type CertificateListQuery = z.infer<typeof CertificateListQuery>;

export const CertificateView = z.object({
  id: Uuid,
  issuer: z.string().describe('keyid of the issuing CA'),
  serial: z.string(),
  subject: z.string(),
  sans: z.array(z.string()),
  notBefore: z.string(),
  notAfter: z.string(),
  certificate: z.string(),
  operationId: Uuid.nullable(),
  revokedAt: z.string().nullable(),
  revocationReason: z.string().nullable(),
  createdAt: z.string(),
});
export type CertificateView = z.infer<typeof CertificateView>;

export const CertificatePage = z.object({ items: z.array(CertificateView), nextCursor: Uuid.nullable() });
export type CertificatePage = z.infer<typeof CertificatePage>;

/** RFC 5280 CRLReason names accepted for a revocation. */
export const RevocationReason = z.enum([
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'privilegeWithdrawn',
]);

export const RevokeCertificateRequest = z.strictObject({ reason: RevocationReason });
export type RevokeCertificateRequest = z.infer<typeof RevokeCertificateRequest>;
