import type { Actor } from '@keyserver/authz';
import type { AuditInput } from '@keyserver/data-access';

/** The authorized caller (one type, built by the guard: @keyserver/authz `authorize`). */
export type { Actor };

/** The actor columns of an audit event. */
export function actorAudit(a: Actor): Pick<AuditInput, 'actorTid' | 'actorOid' | 'actorName' | 'actorClient' | 'actorSubjectId'> {
  return { actorTid: a.tid, actorOid: a.oid, actorName: a.displayName, actorClient: a.client, actorSubjectId: a.subjectId };
}
