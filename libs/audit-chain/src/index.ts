export {
  AUDIT_GENESIS_HASH,
  auditEventHash,
  auditHashParts,
  canonicalJson,
  verifyAuditExport,
  type AuditHashInput,
  type ExportVerification,
} from './lib/audit-chain';
