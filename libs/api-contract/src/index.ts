export {
  HUMAN_ONLY_NATURES,
  isKeyGrant,
  isNature,
  isPermission,
  KEY_GRANT_PERMISSION,
  KEY_GRANTS,
  type KeyGrant,
  type Nature,
  NATURES,
  Permission,
  PERMISSIONS,
  SUBJECT_KINDS,
  type SubjectKind,
} from './lib/access';
export { isNewKeyId, isUuid, KeyIdRef, NEW_KEYID_PATTERN, UUID_PATTERN } from './lib/ids';
export {
  CreateOperationRequest,
  OperationProvenance,
  HashAlgorithm,
  InputFormat,
  InputPadding,
  IsoDateTime,
  KeyAlgorithm,
  KeyDetail,
  KeyFacts,
  KeyList,
  KeyListQuery,
  KeyState,
  KeySummary,
  KeyType,
  KeyUsage,
  LegacyKey,
  LegacyKeyList,
  OperationKeyView,
  OperationState,
  OperationView,
  Problem,
  SignatureFormat,
  SignOrderRequest,
  SignOrderResponse,
  SignDigestOrderRequest,
  SignMessageOrderRequest,
  SignDigestOrderResponse,
  SignMessageOrderResponse,
  Uuid,
} from './lib/contract';
export { MAX_SIGN_MESSAGE_BYTES } from './lib/limits';
export {
  EmptyRequest,
  OperationListQuery,
  OperationPage,
  PageLimit,
  RejectOperationRequest,
} from './lib/operations';
export {
  CertificateListQuery,
  CertificatePage,
  CertificateView,
  IssueCertificateRequest,
  IssueCertificateResponse,
  RevocationReason,
  RevokeCertificateRequest,
} from './lib/certificates';
export { FirmwareSignatureQuery } from './lib/firmware';
export {
  AdminSessionList,
  AdminSessionListQuery,
  AdminSessionState,
  AdminSessionView,
  CreateAdminSessionRequest,
  SubjectRef,
} from './lib/admin-sessions';
export {
  CreateRoleRequest,
  CreateSubjectRequest,
  KeyGrantSchema,
  NatureSchema,
  RoleKeyGrant,
  RoleList,
  RoleName,
  RoleView,
  SubjectKindSchema,
  SubjectList,
  SubjectView,
  UnknownPrincipalList,
  UnknownPrincipalView,
  UpdateRoleRequest,
  UpdateSubjectRequest,
} from './lib/subjects';
export { CertificateNameText, CreateKeyRequest, KeyRevocationReason, KeyRevocationResult, NewKeyId, RevokedBelowKey, RevokeKeyRequest, UpdateKeyRequest } from './lib/key-admin';
export {
  CancelPendingRequest,
  CertificateSubject,
  ExternalChainRequest,
  ImportCertificateRequest,
  KeyVersionList,
  KeyVersionView,
  NewKeyVersionRequest,
  NoBodyRequest,
  PendingCancellation,
  PendingKeyView,
  RootCeremonyRequest,
  RootCeremonyResult,
} from './lib/key-lifecycle';
export {
  AuditEventView,
  AuditLegacyEntry,
  AuditOutcome,
  AuditPage,
  AuditProblem,
  AuditProblemKind,
  AuditQuery,
  AuditSeal,
  AuditVerification,
  parseSeq,
} from './lib/audit';
export { MeView } from './lib/me';
export { DEFAULT_DEVICE_PROFILE, DeviceProfile, DeviceProfileView, DeviceSanType } from './lib/device-profile';
export { KEY_LIMIT_BOUNDS, KeyLimits, KeyLimitsView, SetKeyLimitsRequest } from './lib/key-limits';
export {
  NotificationEmail,
  NotificationSettingsView,
  SetNotificationAddressRequest,
  UpdateNotificationSettingsRequest,
} from './lib/notifications';
