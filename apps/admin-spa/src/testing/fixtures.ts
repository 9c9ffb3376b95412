import type { AdminSessionView, OperationView } from '../app/core/api-types';
import type { Me } from '../app/core/auth.service';

export const ME: Me = {
  displayName: 'Ada Approver',
  username: 'ada@contoso.example',
  tid: '11111111-1111-1111-1111-111111111111',
  oid: '22222222-2222-2222-2222-222222222222',
  subjectId: '33333333-3333-4333-8333-333333333333',
  natures: ['APPROVER'],
  permissions: ['self:read', 'keys:read', 'operations:read', 'operations:approve'],
};

/** The keyclient's /me answer for `me` (API facts under `api`). */
export function keyclientMe(me: Me): Record<string, unknown> {
  return {
    displayName: me.displayName,
    username: me.username,
    tid: me.tid,
    oid: me.oid,
    roles: [],
    source: 'api',
    api: { subjectId: me.subjectId, natures: me.natures, permissions: me.permissions },
  };
}

/** A production key's default limits, as the API shows them on an operation's keys. */
export const KEY_LIMITS = { maxWindowSeconds: 604_800, maxUsagesPerOperation: 1_000, maxBackdateSeconds: 300, maxStartAheadSeconds: 604_800, source: 'default', updatedAt: null } as const;

type OpKey = OperationView['keys'][number];

/** One key of an operation as the API shows it to approvers. */
export function opKey(over: Partial<OpKey> = {}): OpKey {
  return {
    keyid: 'fw-2026',
    usagesAllowed: 10,
    usagesUsed: 2,
    requiredApprovers: 2,
    approvals: 1,
    approvalsMissing: 1,
    type: 'FW',
    algorithm: 'EC_P256',
    hash: 'SHA256',
    environment: 'production',
    product: 'model-x',
    approvedBy: [{ subjectId: '88888888-8888-4888-8888-888888888888', displayName: 'Ann Approver', approvedAt: '2026-11-29T01:00:00.000Z' }],
    limits: KEY_LIMITS,
    ...over,
  };
}

export function operation(over: Partial<OperationView> = {}): OperationView {
  return {
    id: '44444444-4444-4444-8444-444444444444',
    description: 'Sign firmware 1.2.3 for model X',
    state: 'REQUESTED',
    orderer: { subjectId: '55555555-5555-4555-8555-555555555555', displayName: 'Otto Orderer' },
    validFrom: '2026-11-29T00:00:00.000Z',
    validTo: '2026-11-30T00:00:00.000Z',
    digests: ['ab'.repeat(32)],
    provenance: null,
    rejectionReason: null,
    keys: [opKey()],
    createdAt: '2026-11-29T00:00:00.000Z',
    ...over,
  };
}

export function adminSession(over: Partial<AdminSessionView> = {}): AdminSessionView {
  return {
    id: '66666666-6666-4666-8666-666666666666',
    description: 'Add the new release team',
    powers: false,
    state: 'ACTIVE',
    creator: { subjectId: ME.subjectId ?? '', displayName: ME.displayName },
    authorizationsRequired: 2,
    authorizedBy: [
      { subjectId: ME.subjectId ?? '', displayName: ME.displayName },
      { subjectId: '77777777-7777-4777-8777-777777777777', displayName: 'Bob Admin' },
    ],
    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    createdAt: new Date().toISOString(),
    activatedAt: new Date().toISOString(),
    closedAt: null,
    ...over,
  };
}
