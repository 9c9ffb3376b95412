import type { AuditInput, KeyPermission, Nature } from '@keyserver/data-access';

/** The authenticated, registered caller of a request: who (tid, oid), through which client, with which rights. */
export interface Actor {
  subjectId: string;
  kind: 'USER' | 'CLIENT';
  tid: string;
  oid: string;
  displayName: string;
  /** The client the token was issued to (azp). */
  client: string;
  channel: 'bff' | 'provisioning' | 'app';
  natures: ReadonlySet<Nature>;
  keyPermissions: ReadonlyMap<string, ReadonlySet<KeyPermission>>;
}

/** The actor columns of an audit event. */
export function actorAudit(a: Actor): Pick<AuditInput, 'actorTid' | 'actorOid' | 'actorName' | 'actorClient' | 'actorSubjectId'> {
  return { actorTid: a.tid, actorOid: a.oid, actorName: a.displayName, actorClient: a.client, actorSubjectId: a.subjectId };
}

const GRANT_OF: Record<string, KeyPermission> = {
  'operations:create': 'ORDER',
  'signorders:create': 'SIGN',
  'certificates:issue': 'ISSUE',
  'operations:approve': 'APPROVE',
};

/** Builds the Actor of a request from the guard's AuthContext (see auth/subject-resolver.ts for the inverse map). */
export function toActor(ctx: {
  principal: { tid: string; oid: string; azp: string; channel: Actor['channel']; displayName?: string };
  subject: { subjectId: string; kind: 'user' | 'client'; natures: string[]; keyPermissions: { keyid: string; permissions: string[] }[]; displayName?: string };
}): Actor {
  const keyPermissions = new Map<string, Set<KeyPermission>>();
  for (const k of ctx.subject.keyPermissions) {
    keyPermissions.set(k.keyid, new Set(k.permissions.map((p) => GRANT_OF[p]).filter((x): x is KeyPermission => Boolean(x))));
  }
  return {
    subjectId: ctx.subject.subjectId,
    kind: ctx.subject.kind === 'client' ? 'CLIENT' : 'USER',
    tid: ctx.principal.tid,
    oid: ctx.principal.oid,
    displayName: ctx.subject.displayName ?? ctx.principal.displayName ?? ctx.principal.oid,
    client: ctx.principal.azp,
    channel: ctx.principal.channel,
    natures: new Set(ctx.subject.natures.map((n) => n.toUpperCase() as Nature)),
    keyPermissions,
  };
}
