export {
  AUDIT_GENESIS_HASH,
  auditEventHash,
  canonicalJson,
  verifyAuditExport,
  type AuditHashInput,
  type ExportVerification,
} from './lib/audit-chain';
