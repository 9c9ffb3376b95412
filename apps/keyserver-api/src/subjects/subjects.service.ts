import { Injectable } from '@nestjs/common';
import {
  CreateRoleRequest,
  CreateSubjectRequest,
  HUMAN_ONLY_NATURES,
  UpdateRoleRequest,
  UpdateSubjectRequest,
  type RoleList,
  type RoleView,
  type SubjectList,
  type SubjectView,
  type UnknownPrincipalList,
} from '@keyserver/api-contract';
import { DataAccessError, KeyRepository, SubjectRepository, type AuditInput, type Nature, type Subject } from '@keyserver/data-access';
import type { Actor } from '../common/actor';

import { isUuid, validateBody } from '../admin-sessions/admin-request';
import { Audited, auditEvent } from '../common/audited';
import { AdminSessionGate, auditableSessionId } from '../admin-sessions/admin-session-gate';
import { SubjectAdminError, SubjectAdminErrorCode } from './subject-admin-error';

/** Natures an app principal can never use: a CLIENT subject may not get a role carrying them (the data layer checks it again in the change's transaction). */
const HUMAN_ONLY: ReadonlySet<Nature> = new Set<Nature>(HUMAN_ONLY_NATURES);

/**
 * Subjects, roles and unknown principals. Every change: gate (ACTIVE admin session) -> validate ->
 * check references -> write -> audit with the session id; refusals are audited too.
 */
@Injectable()
export class SubjectsService {

  constructor(
    private readonly subjects: SubjectRepository,
    private readonly keys: KeyRepository,
    private readonly gate: AdminSessionGate,
    private readonly audited: Audited,
  ) {}

  async list(): Promise<SubjectList> {
    const all = await this.subjects.list();
    return { items: await Promise.all(all.map((s) => this.view(s))) };
  }

  async get(id: string): Promise<SubjectView> {
    return this.view(await this.find(id));
  }

  async create(actor: Actor, sessionId: string | undefined, body: unknown, requestId: string): Promise<SubjectView> {
    return this.audited.run(auditEvent('subject.create', actor, requestId, { adminSessionId: auditableSessionId(sessionId) }), async (a) => {
      const session = await this.gate.require(actor, sessionId);
      const dto = validateBody(CreateSubjectRequest, body);
      await this.checkRoles(dto.roles, dto.kind);
      if (await this.subjects.findByTidOid(dto.tid, dto.oid)) throw new SubjectAdminError(SubjectAdminErrorCode.SubjectExists, 'a subject with this tid and oid exists');
      // The subject and its event in one transaction (the repository adds subjectId).
      const success: AuditInput = { ...a.event, adminSessionId: session.id, details: { kind: dto.kind, tid: dto.tid, oid: dto.oid, displayName: dto.displayName, roles: dto.roles } };
      const s = await this.subjects.create({ ...dto, username: dto.username ?? null }, success, session).catch((err: unknown) => {
        throw err instanceof DataAccessError && err.code === 'conflict' ? new SubjectAdminError(SubjectAdminErrorCode.SubjectExists, 'a subject with this tid and oid exists') : err;
      });
      a.committed();
      return await this.view(s);
    });
  }

  async update(actor: Actor, sessionId: string | undefined, id: string, body: unknown, requestId: string): Promise<SubjectView> {
    return this.audited.run(auditEvent('subject.update', actor, requestId, { adminSessionId: auditableSessionId(sessionId) }), async (a) => {
      const session = await this.gate.require(actor, sessionId);
      const dto = validateBody(UpdateSubjectRequest, body);
      const before = await this.find(id);
      if (dto.roles) await this.checkRoles(dto.roles, before.kind);
      const action = dto.enabled === false ? 'subject.disable' : dto.enabled === true ? 'subject.enable' : 'subject.update';
      const s = await this.subjects.update(id, dto, { ...a.event, action, adminSessionId: session.id, details: { subjectId: id, changes: dto } }, session);
      a.committed();
      return await this.view(s);
    }, { refusal: (e) => ({ ...e, details: { subjectId: isUuid(id) ? id : null } }) });
  }

  async listRoles(): Promise<RoleList> {
    return { items: await this.subjects.listRoleGrants() };
  }

  async createRole(actor: Actor, sessionId: string | undefined, body: unknown, requestId: string): Promise<RoleView> {
    return this.audited.run(auditEvent('role.create', actor, requestId, { adminSessionId: auditableSessionId(sessionId) }), async (a) => {
      const session = await this.gate.require(actor, sessionId);
      const dto = validateBody(CreateRoleRequest, body);
      // Whatever the case: two roles that read the same to an approver are refused (ADR 0016 addendum); the
      // database's unique index on lower(name) decides a race between replicas (the catch below).
      const existing = (await this.subjects.listRoles()).find((r) => r.name.toLowerCase() === dto.name.toLowerCase());
      if (existing) throw new SubjectAdminError(SubjectAdminErrorCode.RoleExists, `role ${existing.name} exists`);
      await this.checkKeys(dto.keys.map((k) => k.keyid));
      // The role, its grants and its event (details.role: the stored role) in one transaction.
      const role = await this.subjects.createRole(dto, { ...a.event, adminSessionId: session.id }, session).catch((err: unknown) => {
        throw err instanceof DataAccessError && err.code === 'conflict' ? new SubjectAdminError(SubjectAdminErrorCode.RoleExists, `role ${dto.name} exists (in this or another case)`) : err;
      });
      a.committed();
      return role;
    });
  }

  async updateRole(actor: Actor, sessionId: string | undefined, name: string, body: unknown, requestId: string): Promise<RoleView> {
    return this.audited.run(auditEvent('role.update', actor, requestId, { adminSessionId: auditableSessionId(sessionId) }), async (a) => {
      const session = await this.gate.require(actor, sessionId);
      const dto = validateBody(UpdateRoleRequest, body);
      await this.role(name);
      if (dto.keys) await this.checkKeys(dto.keys.map((k) => k.keyid));
      // The repository reads `before` under a row lock and writes the change with its event (details.before/after).
      const { after } = await this.subjects.updateRole(name, dto, { ...a.event, adminSessionId: session.id }, session);
      a.committed();
      return after;
    }, { refusal: (e) => ({ ...e, details: { role: name.slice(0, 64) } }) });
  }

  /** Principals with a valid token that tried to come in without being registered (and still are not). */
  async listUnknown(): Promise<UnknownPrincipalList> {
    const unknown = await this.subjects.listUnknownPrincipals();
    const registered = await Promise.all(unknown.map((u) => this.subjects.findByTidOid(u.tid, u.oid)));
    return {
      items: unknown
        .filter((_u, i) => !registered[i])
        .map((u) => ({ ...u, firstSeenAt: u.firstSeenAt.toISOString(), lastSeenAt: u.lastSeenAt.toISOString() })),
    };
  }

  private async find(id: string): Promise<Subject> {
    if (!isUuid(id)) throw new SubjectAdminError(SubjectAdminErrorCode.InvalidId, 'a subject id is a UUID');
    return this.subjects.getById(id).catch(() => {
      throw new SubjectAdminError(SubjectAdminErrorCode.SubjectNotFound, 'no such subject');
    });
  }

  private async role(name: string): Promise<RoleView> {
    const r = (await this.listRoles()).items.find((x) => x.name === name);
    if (!r) throw new SubjectAdminError(SubjectAdminErrorCode.RoleNotFound, 'no such role');
    return r;
  }

  private async checkRoles(names: string[], kind: 'USER' | 'CLIENT'): Promise<void> {
    const roles = await this.subjects.listRoles();
    for (const n of names) {
      const r = roles.find((x) => x.name === n);
      if (!r) throw new SubjectAdminError(SubjectAdminErrorCode.RoleNotFound, `no role ${n}`);
      if (kind === 'CLIENT' && r.natures.some((x) => HUMAN_ONLY.has(x))) {
        throw new SubjectAdminError(SubjectAdminErrorCode.HumanOnlyNature, `role ${n} carries a nature only people may hold`);
      }
    }
  }

  private async checkKeys(keyids: string[]): Promise<void> {
    for (const k of keyids) if (!(await this.keys.findByKeyid(k))) throw new SubjectAdminError(SubjectAdminErrorCode.KeyNotFound, `no key ${k}`);
  }

  private async view(s: Subject): Promise<SubjectView> {
    const access = await this.subjects.findByTidOid(s.tid, s.oid);
    return {
      id: s.id,
      kind: s.kind,
      tid: s.tid,
      oid: s.oid,
      displayName: s.displayName,
      username: s.username,
      enabled: s.enabled,
      roles: access?.roles ?? [],
      natures: access?.natures ?? [],
      keyPermissions: access?.keyPermissions ?? {},
      account: s.account === 'MEMBER' ? 'member' : s.account === 'GUEST' ? 'guest' : 'unknown',
      accountProvenAt: s.accountProvenAt?.toISOString() ?? null,
      createdAt: s.createdAt.toISOString(),
      updatedAt: s.updatedAt.toISOString(),
    };
  }
}
