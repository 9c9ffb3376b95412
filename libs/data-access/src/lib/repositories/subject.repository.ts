import type { Role as RoleRow, Subject as SubjectRow, UnknownPrincipal as UnknownRow } from '../../generated/prisma/client';
import { UUID, mapPrismaError, sqlQuery, type Db, type Tx } from '../db';
import { DataAccessError } from '../errors';
import type { AuditInput, KeyPermission, Nature, Role, Subject, SubjectAccount, SubjectKind, SubjectWithAccess, UnknownPrincipal } from '../types';
import { appendAuditTx } from './audit.repository';
import { anyStaleApproval, staleApproverIds, withdrawLostApprovals, type WithdrawnApprovalRow } from './approval-withdrawal';
import { assertAdministratorsRemain, assertNoClientHolder, assertPowersInScope, enabledHolder, holdSession, isEnabledAdministrator, endSessionsOfLostAdministrators, humanOnlyHeld, humanOnlyOf, lockRolesForSubject, lockWhatALossEnds, type SessionScope } from './admin-participation';

export interface CreateSubjectInput {
  kind: SubjectKind;
  tid: string;
  oid: string;
  displayName: string;
  username?: string | null;
  enabled?: boolean;
  /** Role names to assign; each must exist. */
  roles?: string[];
}

export interface UpdateSubjectInput {
  displayName?: string;
  username?: string | null;
  enabled?: boolean;
  /** Replaces the role set when given. */
  roles?: string[];
}

/** A role with its per-key grants: natures, keys (by keyid) and each key's permissions sorted. */
export interface RoleGrants {
  name: string;
  description: string;
  natures: Nature[];
  keys: { keyid: string; permissions: KeyPermission[] }[];
}

export interface CreateRoleInput {
  name: string;
  description?: string;
  natures: Nature[];
  /** Per-key grants; an empty permission list grants nothing. */
  keys?: { keyid: string; permissions: KeyPermission[] }[];
}

export interface UpdateRoleInput {
  description?: string;
  natures?: Nature[];
  /** Replaces every per-key grant of the role when given. */
  keys?: { keyid: string; permissions: KeyPermission[] }[];
}

export interface UnknownPrincipalInput {
  tid: string;
  oid: string;
  kind: SubjectKind;
  displayName?: string | null;
  username?: string | null;
  azp?: string | null;
  /** What the token proved (`acct`); absent: nothing, the recorded kind stays. */
  account?: 'MEMBER' | 'GUEST';
}

/**
 * The key grant a guest may not be given (ADR 0040 addendum): APPROVE, the one grant that opens a human-only
 * permission, so gaining it on a key is gaining what APPROVER gives.
 */
const GUEST_REFUSED_GRANT = 'APPROVE';
const approveOn = (keyid: string): string => `${GUEST_REFUSED_GRANT} on key ${keyid}`;

/**
 * What a subject holds that makes it an administrator or an approver, as this transaction sees it (nothing while it
 * is disabled): its human-only natures ({@link humanOnlyHeld}, which locks its roles FOR SHARE, so their grants
 * cannot change meanwhile) and `APPROVE on key <keyid>` for each key a role of it grants APPROVE on (the grant opens
 * the approval route by itself). A guest may not gain any of it (ADR 0040 addendum); only a session with powers may
 * give or take any of it (ADR 0044 and its addendum).
 */
async function powersHeld(tx: Tx, subjectId: string): Promise<string[]> {
  const natures = await humanOnlyHeld(tx, subjectId);
  const keys = await tx.$queryRaw<{ keyid: string }[]>`
    SELECT DISTINCT k."keyid"
    FROM "subject" s JOIN "subject_role" sr ON sr."subjectId" = s."id" JOIN "role_key_permission" g ON g."roleId" = sr."roleId" JOIN "key" k ON k."id" = g."keyId"
    WHERE s."id" = ${subjectId}::uuid AND s."enabled" AND ${GUEST_REFUSED_GRANT}::"KeyPermission" = ANY(g."permissions")
    ORDER BY 1`;
  return [...natures, ...keys.map((k) => approveOn(k.keyid))];
}

/** What a role gives its holders that makes them administrators or approvers (as {@link powersHeld} lists it). */
const rolePowers = (r: RoleGrants): string[] => [
  ...humanOnlyOf(r.natures),
  ...r.keys.filter((k) => k.permissions.includes(GUEST_REFUSED_GRANT)).map((k) => approveOn(k.keyid)),
];

/**
 * Refuses a change that gives a subject recorded as a guest a human-only nature or an APPROVE grant it did not hold
 * (`before` -> `after`, as {@link powersHeld} lists them): it would be inert (the guard ignores it for guests)
 * and say something false to whoever reads the subject (ADR 0040 addendum). Taking it away, or changing something
 * else, stays allowed.
 */
function assertNoGuestGain(account: SubjectAccount, before: readonly string[], after: readonly string[], what: string): void {
  if (account !== 'GUEST') return;
  const gained = after.filter((n) => !before.includes(n));
  if (gained.length) throw new DataAccessError('subject_is_guest', `${what} would give ${gained.join(', ')} to a guest account (its last sign-in proved acct=1)`);
}

/** The subjects holding a role (locked FOR UPDATE by the caller, so no assignment slips in). */
async function holdersOf(tx: Tx, roleId: string): Promise<string[]> {
  return (await tx.subjectRole.findMany({ where: { roleId }, select: { subjectId: true }, orderBy: { subjectId: 'asc' } })).map((h) => h.subjectId);
}

const toSubject = (s: SubjectRow): Subject => ({
  id: s.id,
  kind: s.kind,
  tid: s.tid,
  oid: s.oid,
  displayName: s.displayName,
  username: s.username,
  enabled: s.enabled,
  createdAt: s.createdAt,
  updatedAt: s.updatedAt,
  account: s.account,
  accountProvenAt: s.accountProvenAt,
});

const toRole = (r: RoleRow): Role => ({ id: r.id, name: r.name, description: r.description, natures: r.natures });

const toUnknown = (u: UnknownRow): UnknownPrincipal => ({
  tid: u.tid,
  oid: u.oid,
  kind: u.kind,
  displayName: u.displayName,
  username: u.username,
  azp: u.azp,
  firstSeenAt: u.firstSeenAt,
  lastSeenAt: u.lastSeenAt,
  attempts: u.attempts,
});

interface AccessRow {
  id: string;
  kind: string;
  tid: string;
  oid: string;
  displayName: string;
  username: string | null;
  enabled: boolean;
  createdAt: Date;
  updatedAt: Date;
  account: SubjectAccount;
  accountProvenAt: Date | null;
  roleName: string | null;
  natures: string[] | null;
  keyid: string | null;
  permissions: string[] | null;
}

const WITH_GRANTS = { keyPermissions: { include: { key: { select: { keyid: true } } } } } as const;
type RoleWithGrants = RoleRow & { keyPermissions: { permissions: KeyPermission[]; key: { keyid: string } }[] };

/** A role and its grants, natures, keys and permissions sorted. */
const toRoleGrants = (r: RoleWithGrants): RoleGrants => ({
  name: r.name,
  description: r.description,
  natures: [...r.natures].sort(),
  keys: r.keyPermissions.map((g) => ({ keyid: g.key.keyid, permissions: [...g.permissions].sort() })).sort((a, b) => a.keyid.localeCompare(b.keyid)),
});

/** A role and its grants as the transaction `tx` sees them. */
async function roleGrants(tx: Tx, roleId: string): Promise<RoleGrants> {
  return toRoleGrants(await tx.role.findUniqueOrThrow({ where: { id: roleId }, include: WITH_GRANTS }));
}

/** Subjects (users and client apps), their roles, and principals that are not registered yet. */
export class SubjectRepository {
  constructor(private readonly db: Db) {}

  /**
   * Finds a subject by tenant + object id, with natures and per-key permissions flattened over its roles.
   * One joined query: the guard calls this on every request (nested includes cost one query per level).
   */
  /** {@link findByTidOid} through the access cache (ADR 0028): the guard's lookup on every request. */
  findAccess(tid: string, oid: string): Promise<SubjectWithAccess | null> {
    return this.db.access.through('subject', `${tid}\n${oid}`, () => this.findByTidOid(tid, oid));
  }

  async findByTidOid(tid: string, oid: string): Promise<SubjectWithAccess | null> {
    // Every authenticated request runs this: one statement on the raw pool (Prisma's per-query cost was measurable).
    const rows = await sqlQuery<AccessRow>(
      this.db,
      `SELECT s."id", s."kind"::text AS "kind", s."tid", s."oid", s."displayName", s."username", s."enabled",
              s."createdAt", s."updatedAt", s."account"::text AS "account", s."accountProvenAt", r."name" AS "roleName", r."natures"::text[] AS "natures",
              k."keyid" AS "keyid", rkp."permissions"::text[] AS "permissions"
       FROM "subject" s
       LEFT JOIN "subject_role" sr ON sr."subjectId" = s."id"
       LEFT JOIN "role" r ON r."id" = sr."roleId"
       LEFT JOIN "role_key_permission" rkp ON rkp."roleId" = r."id"
       LEFT JOIN "key" k ON k."id" = rkp."keyId"
       WHERE s."tid" = $1 AND s."oid" = $2`,
      [tid, oid],
    );
    if (rows.length === 0) return null;
    const first = rows[0];
    const roles = new Set<string>();
    const natures = new Set<Nature>();
    const perKey = new Map<string, Set<KeyPermission>>();
    for (const row of rows) {
      if (row.roleName) roles.add(row.roleName);
      (row.natures ?? []).forEach((n) => natures.add(n as Nature));
      if (row.keyid) {
        const set = perKey.get(row.keyid) ?? new Set<KeyPermission>();
        (row.permissions ?? []).forEach((x) => set.add(x as KeyPermission));
        perKey.set(row.keyid, set);
      }
    }
    return {
      id: first.id,
      kind: first.kind as SubjectKind,
      tid: first.tid,
      oid: first.oid,
      displayName: first.displayName,
      username: first.username,
      enabled: first.enabled,
      createdAt: first.createdAt,
      updatedAt: first.updatedAt,
      account: first.account,
      accountProvenAt: first.accountProvenAt,
      roles: [...roles].sort(),
      natures: [...natures].sort(),
      keyPermissions: Object.fromEntries([...perKey].map(([k, v]) => [k, [...v].sort()])),
    };
  }

  async getById(id: string): Promise<Subject> {
    const s = await this.db.prisma.subject.findUnique({ where: { id } });
    if (!s) throw new DataAccessError('not_found', 'subject not found');
    return toSubject(s);
  }

  async list(): Promise<Subject[]> {
    return (await this.db.prisma.subject.findMany({ orderBy: [{ displayName: 'asc' }, { id: 'asc' }] })).map(toSubject);
  }

  /**
   * Registers a subject; with `audit`, its event (details + subjectId) is written in the same transaction. With
   * `scope` (the session it runs in), a subject that would hold a human-only nature needs a session with powers.
   */
  async create(input: CreateSubjectInput, audit?: AuditInput, scope?: SessionScope): Promise<Subject> {
    try {
      return await this.db.transaction(async (tx) => {
        await holdSession(tx, scope);
        // A principal that tried before being registered brings what its token proved (a guest is known as one).
        const seen = input.kind === 'USER' ? await tx.unknownPrincipal.findUnique({ where: { tid_oid: { tid: input.tid, oid: input.oid } }, select: { account: true } }) : null;
        const s = await tx.subject.create({
          data: {
            kind: input.kind,
            tid: input.tid,
            oid: input.oid,
            displayName: input.displayName,
            username: input.username ?? null,
            enabled: input.enabled ?? true,
            account: seen?.account ?? 'UNKNOWN',
          },
        });
        if (input.roles?.length) await this.assignRoles(tx, s.id, input.kind, input.roles);
        const held = await powersHeld(tx, s.id);
        if (s.account === 'GUEST') assertNoGuestGain(s.account, [], held, `registering subject ${input.tid}/${input.oid}`);
        if (scope) assertPowersInScope(scope, [], held, `subject ${input.tid}/${input.oid}`);
        if (audit) await appendAuditTx(tx, { ...audit, details: { ...audit.details, subjectId: s.id } });
        return toSubject(s);
      });
    } catch (err) {
      return mapPrismaError(err, 'subject');
    }
  }

  /**
   * Changes a subject; with `audit`, its event is written in the same transaction. With `scope`, a change of the
   * human-only natures or APPROVE grants it holds (roles, enabling, disabling) needs a session with powers.
   */
  async update(id: string, input: UpdateSubjectInput, audit?: AuditInput, scope?: SessionScope): Promise<Subject> {
    try {
      return await this.db.transaction(async (tx) => {
        if (!UUID.test(id)) throw new DataAccessError('not_found', 'subject not found');
        // The session's administrators and this subject, in id order, then the session read again (ADR 0012 addendum).
        await holdSession(tx, scope, [id]);
        // Locked, so the audit event's `before` is what this change replaced, even when admins change it at once.
        // The row lock also orders this change after (or before) the guard's recording of the account kind.
        const [old] = await tx.$queryRaw<{ kind: SubjectKind; displayName: string; username: string | null; enabled: boolean; account: SubjectAccount }[]>`
          SELECT "kind"::text AS "kind", "displayName", "username", "enabled", "account"::text AS "account" FROM "subject" WHERE "id" = ${id}::uuid FOR NO KEY UPDATE`;
        if (!old) throw new DataAccessError('not_found', 'subject not found');
        // The sessions and operations this change may end or withdraw, before the audit append lock (ADR 0012 addendum).
        if (input.enabled === false || input.roles) await lockWhatALossEnds(tx, [id]);
        const powersBefore = await powersHeld(tx, id);
        const wasAdministrator = await isEnabledAdministrator(tx, id);
        const before: Record<string, unknown> = {};
        if (input.displayName !== undefined) before['displayName'] = old.displayName;
        if (input.username !== undefined) before['username'] = old.username;
        if (input.enabled !== undefined) before['enabled'] = old.enabled;
        if (input.roles) {
          const held = await tx.subjectRole.findMany({ where: { subjectId: id }, select: { role: { select: { name: true } } } });
          before['roles'] = held.map((r) => r.role.name).sort();
        }
        const s = await tx.subject.update({
          where: { id },
          data: { displayName: input.displayName, username: input.username, enabled: input.enabled },
        });
        if (input.roles) {
          await tx.subjectRole.deleteMany({ where: { subjectId: id } });
          await this.assignRoles(tx, id, old.kind, input.roles);
        }
        const powersAfter = await powersHeld(tx, id);
        if (old.account === 'GUEST') assertNoGuestGain(old.account, powersBefore, powersAfter, `this change of subject ${id}`);
        if (scope) assertPowersInScope(scope, powersBefore, powersAfter, `this change of subject ${id}`);
        const lost = wasAdministrator && !(await isEnabledAdministrator(tx, id));
        await assertAdministratorsRemain(tx, scope, lost, `this change of subject ${id}`);
        if (audit) await appendAuditTx(tx, { ...audit, details: { ...audit.details, before } });
        // Sessions this subject opened or authorized end with its administrator powers, in this transaction.
        if (input.enabled === false || input.roles) {
          await endSessionsOfLostAdministrators(tx, [id], s.enabled ? 'participant_lost_administrator' : 'participant_disabled', audit);
          // Approvals it may no longer give stop counting on every open operation, in this transaction (ADR 0017 addendum).
          await withdrawLostApprovals(tx, [id], audit);
        }
        return toSubject(s);
      });
    } catch (err) {
      return mapPrismaError(err, 'subject');
    }
  }

  disable(id: string): Promise<Subject> {
    return this.update(id, { enabled: false });
  }

  /**
   * Creates or updates a role (by unique name); a name another role has in another case is `conflict` (the unique
   * index on lower(name), ADR 0016 addendum), never an update of that role.
   */
  async upsertRole(name: string, natures: Nature[], description = ''): Promise<Role> {
    try {
      const r = await this.db.prisma.role.upsert({
        where: { name },
        create: { name, natures, description },
        update: { natures, description },
      });
      return toRole(r);
    } catch (err) {
      return mapPrismaError(err, `role ${name} (or a role of that name in another case)`);
    }
  }

  /**
   * Creates a role with its per-key grants in one transaction; an existing name, in any case, is `conflict` (the
   * database's unique index on lower(name): two replicas cannot both create it), an unknown key
   * `not_found`. With `audit`, its event (details + `role`: the stored role) is written in the same transaction.
   */
  async createRole(input: CreateRoleInput, audit?: AuditInput, scope?: SessionScope): Promise<RoleGrants> {
    try {
      return await this.db.transaction(async (tx) => {
        await holdSession(tx, scope);
        const r = await tx.role.create({ data: { name: input.name, natures: input.natures, description: input.description ?? '' } });
        await this.grantKeys(tx, r.id, input.keys ?? []);
        const role = await roleGrants(tx, r.id);
        if (audit) await appendAuditTx(tx, { ...audit, details: { ...audit.details, role } });
        return role;
      });
    } catch (err) {
      return mapPrismaError(err, `role ${input.name} (or a role of that name in another case)`);
    }
  }

  /**
   * Changes a role (fields not given stay) in one transaction. The role row is locked (SELECT ... FOR UPDATE)
   * before the old state is read, so with `audit` the event's `before` and `after` are true even when
   * administrators change the role concurrently; the event is written in the same transaction. With `scope`, a
   * change of its human-only natures or APPROVE grants while an enabled subject holds it needs a session with powers (assignments
   * lock the role FOR SHARE, so the holders read here are all of them).
   */
  async updateRole(name: string, input: UpdateRoleInput, audit?: AuditInput, scope?: SessionScope): Promise<{ before: RoleGrants; after: RoleGrants }> {
    try {
      return await this.db.transaction(async (tx) => {
        // Subjects before the role (ADR 0012): the session's administrators and the role's holders, whose administrator
        // nature this change may take, so a change of a holder's own session waits for this one or commits first.
        if (scope) {
          const holders = await tx.$queryRaw<{ id: string }[]>`SELECT sr."subjectId"::text AS "id" FROM "subject_role" sr JOIN "role" r ON r."id" = sr."roleId" WHERE r."name" = ${name}`;
          await holdSession(tx, scope, holders.map((h) => h.id));
        }
        const rows = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "role" WHERE "name" = ${name} FOR UPDATE`;
        if (rows.length === 0) throw new DataAccessError('not_found', 'role not found');
        const id = rows[0].id;
        // The sessions and operations of its holders this change may end or withdraw, before the audit append lock.
        if (input.keys || input.natures) await lockWhatALossEnds(tx, await holdersOf(tx, id));
        const before = await roleGrants(tx, id);
        // Same rule as assigning roles to subjects: no human-only nature on a role a CLIENT holds.
        if (input.natures) await assertNoClientHolder(tx, id, name, input.natures);
        await tx.role.update({ where: { id }, data: { natures: input.natures, description: input.description } });
        if (input.keys) {
          await tx.roleKeyPermission.deleteMany({ where: { roleId: id } });
          await this.grantKeys(tx, id, input.keys);
        }
        const after = await roleGrants(tx, id);
        const had = rolePowers(before);
        const gained = rolePowers(after).filter((p) => !had.includes(p));
        if (gained.length) {
          // Holders are locked by the role's FOR UPDATE against new assignments; a guest among them refuses the gain.
          const guests = await tx.$queryRaw<{ id: string }[]>`
            SELECT s."id" FROM "subject_role" sr JOIN "subject" s ON s."id" = sr."subjectId" WHERE sr."roleId" = ${id}::uuid AND s."account" = 'GUEST' LIMIT 1`;
          if (guests.length) assertNoGuestGain('GUEST', [], gained, `role ${name} (held by guest subject ${guests[0].id})`);
        }
        if (scope && !scope.powers && (await enabledHolder(tx, id))) assertPowersInScope(scope, rolePowers(before), rolePowers(after), `role ${name}`);
        if (before.natures.includes('ADMINISTRATOR') && !after.natures.includes('ADMINISTRATOR')) {
          // A holder that was an administrator through this role (enabled, not a guest) and is none now: one statement
          // for all holders, as isEnabledAdministrator reads each.
          const [x] = await tx.$queryRaw<{ lost: boolean }[]>`
            SELECT EXISTS (
              SELECT 1 FROM "subject_role" sr JOIN "subject" s ON s."id" = sr."subjectId"
              WHERE sr."roleId" = ${id}::uuid AND s."enabled" AND s."account" <> 'GUEST' AND NOT EXISTS (
                SELECT 1 FROM "subject_role" o JOIN "role" r ON r."id" = o."roleId"
                WHERE o."subjectId" = s."id" AND 'ADMINISTRATOR'::"Nature" = ANY(r."natures"))) AS "lost"`;
          await assertAdministratorsRemain(tx, scope, x?.lost === true, `role ${name}`);
        }
        if (audit) await appendAuditTx(tx, { ...audit, details: { ...audit.details, before, after } });
        if (before.natures.includes('ADMINISTRATOR') && !after.natures.includes('ADMINISTRATOR')) {
          const holders = await tx.subjectRole.findMany({ where: { roleId: id }, select: { subjectId: true } });
          await endSessionsOfLostAdministrators(tx, holders.map((h) => h.subjectId), 'participant_lost_administrator', audit);
        }
        // A grant of APPROVE taken: its holders' approvals of that key stop counting (ADR 0017 addendum).
        if (input.keys) await withdrawLostApprovals(tx, await holdersOf(tx, id), audit);
        return { before, after };
      });
    } catch (err) {
      return mapPrismaError(err, `role ${name}`);
    }
  }

  async listRoles(): Promise<Role[]> {
    return (await this.db.prisma.role.findMany({ orderBy: { name: 'asc' } })).map(toRole);
  }

  /**
   * Sets the permissions a role has on one key (an empty list removes them), under the role's lock; approvals its
   * holders may no longer give are withdrawn in the same transaction (ADR 0017 addendum).
   */
  async setRoleKeyPermissions(roleName: string, keyid: string, permissions: KeyPermission[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      const [role] = await tx.$queryRaw<{ id: string }[]>`SELECT "id" FROM "role" WHERE "name" = ${roleName} FOR UPDATE`;
      const key = await tx.key.findUnique({ where: { keyid } });
      if (!role || !key) throw new DataAccessError('not_found', !role ? 'role not found' : 'key not found');
      if (permissions.length === 0) {
        await tx.roleKeyPermission.deleteMany({ where: { roleId: role.id, keyId: key.id } });
      } else {
        const perms = [...new Set(permissions)];
        await tx.roleKeyPermission.upsert({
          where: { roleId_keyId: { roleId: role.id, keyId: key.id } },
          create: { roleId: role.id, keyId: key.id, permissions: perms },
          update: { permissions: perms },
        });
      }
      await withdrawLostApprovals(tx, await holdersOf(tx, role.id));
    });
  }

  /** Every per-key grant of every role, by role name and keyid. */
  /** Every role with its per-key grants, by name. */
  async listRoleGrants(): Promise<RoleGrants[]> {
    return (await this.db.prisma.role.findMany({ include: WITH_GRANTS, orderBy: { name: 'asc' } })).map(toRoleGrants);
  }

  /**
   * The reconciler (every replica's UsageReaper pass, ADR 0017 addendum 2026-12-13): withdraws every approval on an open
   * operation whose approver may no longer give it although no withdrawing change ran: a subject disabled or recorded as
   * a guest by a release before withdrawal existed, a row edited outside the API. Approvers locked FOR NO KEY UPDATE in id order
   * (as admin changes lock them), then `withdrawLostApprovals`; a replica that comes second finds nothing. Audited
   * `operation.approval_withdrawn` with `by: approval.reconcile`. A pass that finds nothing stale is one plain read
   * and no transaction (`anyStaleApproval`); the transaction reads again, so a stale look costs nothing but a pass.
   */
  async withdrawStaleApprovals(): Promise<WithdrawnApprovalRow[]> {
    if (!(await anyStaleApproval(this.db))) return [];
    return this.db.transaction(async (tx) => {
      const ids = await staleApproverIds(tx);
      if (ids.length === 0) return [];
      await tx.$queryRaw`SELECT "id" FROM "subject" WHERE "id" = ANY(${ids}::uuid[]) ORDER BY "id" FOR NO KEY UPDATE`;
      return withdrawLostApprovals(tx, ids, { action: 'approval.reconcile', outcome: 'SUCCESS' });
    });
  }

  /**
   * Records the account kind a user token proved (ADR 0040 addendum); the guard calls it only when its cached
   * snapshot shows a different kind, so it is no write per request. Conditional: nothing changes unless the kind
   * differs and the token (`provenAt`, its `iat`) is not older than the proof recorded, so concurrent requests write
   * once, and an older token still in flight never overwrites a newer proof. A change is audited
   * (`subject.account`) in the same transaction. Becoming a guest also ends, in this transaction, the administrative
   * sessions he opened or authorized (`participant_became_guest`) and withdraws his approvals on every open operation
   * (`operation.approval_withdrawn`, reason `approver_became_guest`), as disabling him would (ADR 0040 addendum
   * 2026-12-13): the row lock orders it with approvals (`lockApprover`) and authorizations, and only the one writer
   * does it. Resolves to whether it wrote.
   */
  async recordAccount(subjectId: string, account: 'MEMBER' | 'GUEST', provenAt: Date, audit: AuditInput): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.$queryRaw<{ before: SubjectAccount }[]>`
        UPDATE "subject" s SET "account" = ${account}::"SubjectAccount", "accountProvenAt" = ${provenAt}
          FROM (SELECT "id", "account" FROM "subject" WHERE "id" = ${subjectId}::uuid FOR NO KEY UPDATE) old
         WHERE s."id" = old."id" AND s."kind" = 'USER' AND s."account" <> ${account}::"SubjectAccount"
           AND (s."accountProvenAt" IS NULL OR s."accountProvenAt" <= ${provenAt})
        RETURNING old."account"::text AS "before"`;
      if (rows.length === 0) return false;
      if (account === 'GUEST') await lockWhatALossEnds(tx, [subjectId]);
      await appendAuditTx(tx, { ...audit, details: { ...audit.details, subjectId, before: rows[0].before, account, provenAt: provenAt.toISOString() } });
      if (account === 'GUEST') {
        await endSessionsOfLostAdministrators(tx, [subjectId], 'participant_became_guest', audit);
        await withdrawLostApprovals(tx, [subjectId], audit);
      }
      return true;
    });
  }

  /** Records (or counts again) a caller with a valid token who is not a registered subject. */
  async recordUnknownPrincipal(input: UnknownPrincipalInput): Promise<UnknownPrincipal> {
    const seen = {
      kind: input.kind,
      displayName: input.displayName ?? null,
      username: input.username ?? null,
      azp: input.azp ?? null,
      ...(input.account ? { account: input.account } : {}),
    };
    const u = await this.db.prisma.unknownPrincipal.upsert({
      where: { tid_oid: { tid: input.tid, oid: input.oid } },
      create: { tid: input.tid, oid: input.oid, ...seen },
      update: { ...seen, lastSeenAt: new Date(), attempts: { increment: 1 } },
    });
    return toUnknown(u);
  }

  async listUnknownPrincipals(): Promise<UnknownPrincipal[]> {
    return (await this.db.prisma.unknownPrincipal.findMany({ orderBy: { lastSeenAt: 'desc' } })).map(toUnknown);
  }

  private async grantKeys(tx: Tx, roleId: string, grants: { keyid: string; permissions: KeyPermission[] }[]): Promise<void> {
    const wanted = grants.filter((g) => g.permissions.length > 0);
    if (wanted.length === 0) return;
    const keys = await tx.key.findMany({ where: { keyid: { in: wanted.map((g) => g.keyid) } }, select: { id: true, keyid: true } });
    const missing = wanted.filter((g) => !keys.some((k) => k.keyid === g.keyid));
    if (missing.length) throw new DataAccessError('not_found', `unknown keys: ${missing.map((g) => g.keyid).join(', ')}`);
    await tx.roleKeyPermission.createMany({
      data: wanted.map((g) => ({ roleId, keyId: keys.find((k) => k.keyid === g.keyid)?.id ?? '', permissions: [...new Set(g.permissions)] })),
    });
  }

  /** Assigns roles under a FOR SHARE lock on them; a CLIENT gets no role with a human-only nature. */
  private async assignRoles(tx: Tx, subjectId: string, kind: SubjectKind, names: string[]): Promise<void> {
    const roles = await lockRolesForSubject(tx, kind, [...new Set(names)]);
    await tx.subjectRole.createMany({ data: roles.map((r) => ({ subjectId, roleId: r.id })), skipDuplicates: true });
  }
}
