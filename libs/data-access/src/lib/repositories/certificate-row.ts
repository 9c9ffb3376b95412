import type { Certificate as CertificateRow } from '../../generated/prisma/client';
import type { Certificate } from '../types';

// Internal to the repositories (not exported from the library): Prisma rows never leave data-access.
export type CertificateRowWithIssuer = CertificateRow & { issuerKey: { keyid: string } };
/** Prisma include that loads the issuer keyid {@link toCertificate} needs. */
export const withIssuer = { issuerKey: { select: { keyid: true } } } as const;

/** Maps a certificate row (with its issuer's keyid) to the domain type. */
export const toCertificate = (c: CertificateRowWithIssuer): Certificate => ({
  id: c.id,
  issuerKeyid: c.issuerKey.keyid,
  issuerVersion: c.issuerVersion,
  serialHex: c.serialHex,
  subjectDn: c.subjectDn,
  sans: c.sans,
  notBefore: c.notBefore,
  notAfter: c.notAfter,
  pem: c.pem,
  operationId: c.operationId,
  requesterId: c.requesterId,
  revokedAt: c.revokedAt,
  revocationReason: c.revocationReason,
  createdAt: c.createdAt,
});
