import type { AuditHashInput } from '@keyserver/audit-chain';
import type { KeyGrant, Nature, SubjectKind } from '@keyserver/api-contract';

// Plain domain types returned by the repositories (no Prisma types leak out).

// The access vocabulary is declared once in @keyserver/api-contract (re-exported for the repositories' callers).
export type { SubjectKind, Nature };
/** A per-key grant as the database stores it (`KeyPermission` enum): the contract's {@link KeyGrant}. */
export type KeyPermission = KeyGrant;
export const KEY_TYPES = ['ROOT', 'CA', 'FW', 'TSA'] as const;
export type KeyType = (typeof KEY_TYPES)[number];
export const KEY_ALGORITHMS = ['RSA_2048', 'RSA_3072', 'RSA_4096', 'EC_P256', 'EC_P384', 'EC_P521', 'ED25519'] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];
export const HASH_ALGORITHMS = ['SHA256', 'SHA384', 'SHA512'] as const;
export type HashAlgorithm = (typeof HASH_ALGORITHMS)[number];
export const KEY_STATES = ['ACTIVE', 'RETIRED', 'REVOKED'] as const;
export type KeyState = (typeof KEY_STATES)[number];
export const OPERATION_STATES = ['REQUESTED', 'APPROVED', 'EXHAUSTED', 'EXPIRED', 'REJECTED', 'CANCELLED'] as const;
export type OperationState = (typeof OPERATION_STATES)[number];
export type AuditOutcome = 'SUCCESS' | 'DENIED' | 'FAILED';
export type AdminSessionState = 'PENDING' | 'ACTIVE' | 'CLOSED' | 'EXPIRED';

export interface Subject {
  id: string;
  kind: SubjectKind;
  tid: string;
  oid: string;
  displayName: string;
  username: string | null;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
  /** The account kind a user token last proved (ADR 0040): UNKNOWN until one with `acct` was seen. */
  account: SubjectAccount;
  /** `iat` of the token that proved it (null while UNKNOWN). */
  accountProvenAt: Date | null;
}

export type SubjectAccount = 'UNKNOWN' | 'MEMBER' | 'GUEST';

/** A subject with its roles flattened: the union of natures and, per keyid, of key permissions. */
export interface SubjectWithAccess extends Subject {
  roles: string[];
  natures: Nature[];
  keyPermissions: Record<string, KeyPermission[]>;
}

export interface Role {
  id: string;
  name: string;
  description: string;
  natures: Nature[];
}

export interface UnknownPrincipal {
  tid: string;
  oid: string;
  kind: SubjectKind;
  displayName: string | null;
  username: string | null;
  azp: string | null;
  firstSeenAt: Date;
  lastSeenAt: Date;
  attempts: number;
}

export interface Key {
  id: string;
  keyid: string;
  type: KeyType;
  algorithm: KeyAlgorithm;
  hash: HashAlgorithm;
  requiredApprovers: number;
  state: KeyState;
  hsmKeyId: string;
  /** keyid of the issuing key, null for a root. */
  parentKeyid: string | null;
  certificatePem: string;
  certificateSerial: string;
  notBefore: Date;
  notAfter: Date;
  product: string | null;
  profile: unknown;
  crlNumber: bigint;
  revokedAt: Date | null;
  revocationReason: string | null;
  createdAt: Date;
  /** The version the key's columns describe: its newest ACTIVE version (ADR 0020). */
  currentVersion: number;
  /** basicConstraints pathLenConstraint of a ROOT or CA certificate (null: unlimited or an end entity). */
  pathLen: number | null;
  /** PEM chain above an externally certified ROOT's certificate (null otherwise). */
  issuerChainPem: string | null;
  retiredAt: Date | null;
  destroyedAt: Date | null;
}

/** One certificate generation of a key (ADR 0020). */
export interface KeyVersion {
  keyid: string;
  version: number;
  hsmKeyId: string;
  certificatePem: string;
  certificateSerial: string;
  notBefore: Date;
  notAfter: Date;
  issuerKeyid: string | null;
  issuerVersion: number | null;
  state: KeyState;
  createdAt: Date;
  retiredAt: Date | null;
  revokedAt: Date | null;
  revocationReason: string | null;
  destroyedAt: Date | null;
  /** An externally certified ROOT's version: the chain above its certificate (null: none, or not known for a version superseded before it was kept). */
  issuerChainPem: string | null;
}

/** A ROOT or CA key waiting for the certificate an external CA issues for its CSR. */
export interface PendingKey {
  keyid: string;
  type: KeyType;
  algorithm: KeyAlgorithm;
  hash: HashAlgorithm;
  requiredApprovers: number;
  hsmKeyId: string;
  csrPem: string;
  adminSessionId: string;
  createdAt: Date;
  /** Set by a cancellation that has not finished (ADR 0042): nothing imports it any more. */
  cancelledAt: Date | null;
}

/** The bootstrap record: present once the installation has its first administrators (or the demo seed). */
export interface Installation {
  mode: 'production' | 'demo';
  bootstrappedAt: Date;
  administrators: { tid: string; oid: string; displayName: string }[];
}

export interface OperationKey {
  keyid: string;
  usagesAllowed: number;
  usagesUsed: number;
  requiredApprovers: number;
  /** Subject ids that approved this key for the operation. */
  approverIds: string[];
  /** The key as it is now: what an approver weighs the request against. */
  key: { type: string; algorithm: string; hash: string; product: string | null; requiredApprovers: number };
  /** Who approved this key and when, oldest first. */
  approvals: { subjectId: string; displayName: string; at: Date }[];
}

/** What a CI run declares about itself when it orders an operation (informational: shown, audited, never trusted). */
export interface OperationProvenance {
  project?: string;
  pipeline?: string;
  run?: string;
  commit?: string;
  url?: string;
}

export interface Operation {
  id: string;
  description: string;
  state: OperationState;
  ordererId: string;
  validFrom: Date;
  validTo: Date;
  digests: string[];
  provenance: OperationProvenance | null;
  rejectionReason: string | null;
  createdAt: Date;
  updatedAt: Date;
  keys: OperationKey[];
}

export interface SignOrder {
  id: string;
  operationId: string;
  keyid: string;
  subjectId: string;
  description: string;
  inputdata: string;
  inputformat: string;
  inputpadding: string;
  signatureformat: string;
  result: string;
  idempotencyKey: string | null;
  requestId: string | null;
  createdAt: Date;
}

export interface Certificate {
  id: string;
  issuerKeyid: string;
  /** The issuing key's version that signed it (its CRL lists it when revoked). */
  issuerVersion: number;
  serialHex: string;
  subjectDn: string;
  sans: string[];
  notBefore: Date;
  notAfter: Date;
  pem: string;
  operationId: string | null;
  requesterId: string | null;
  revokedAt: Date | null;
  revocationReason: string | null;
  createdAt: Date;
}

export interface AdminSession {
  id: string;
  description: string;
  creatorId: string;
  state: AdminSessionState;
  requiredApprovals: number;
  /** Opened to give or take the administrator and approver natures (ADR 0044): without it such a change is refused. */
  powers: boolean;
  approverIds: string[];
  expiresAt: Date;
  createdAt: Date;
  activatedAt: Date | null;
  closedAt: Date | null;
}

/** What a caller supplies to append an audit event. */
export interface AuditInput {
  action: string;
  outcome: AuditOutcome;
  errorCode?: string | null;
  actorTid?: string | null;
  actorOid?: string | null;
  actorName?: string | null;
  actorClient?: string | null;
  actorSubjectId?: string | null;
  keyid?: string | null;
  operationId?: string | null;
  adminSessionId?: string | null;
  digest?: string | null;
  requestId?: string | null;
  details?: Record<string, unknown>;
}

/** A stored audit event: the hashed content (see @keyserver/audit-chain), its place in the chain and its hash. */
export interface AuditEvent extends AuditHashInput {
  /** Position in the chain (a bigint as decimal string, JSON friendly). */
  seq: string;
  outcome: AuditOutcome;
  hash: string;
}

/** One page of a cursor-paginated list; pass `nextCursor` back to get the next page. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
