// The chain's hashing lives in @keyserver/audit-chain so the API and ksctl verify exports without Prisma.
export { AUDIT_GENESIS_HASH, auditEventHash, canonicalJson } from '@keyserver/audit-chain';

/** Advisory lock key serializing audit appends across processes ("ks-audit"). */
export const AUDIT_APPEND_LOCK = 0x6b732d61;
