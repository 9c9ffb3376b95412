import type { Prisma } from '../../generated/prisma/client';
import { mapPrismaError, type Db } from '../db';
import { DataAccessError } from '../errors';
import type { AuditInput, Installation } from '../types';
import { appendAuditTx } from './audit.repository';

/** The role the bootstrap gives the first administrators (natures: ADMINISTRATOR only). */
export const BOOTSTRAP_ADMIN_ROLE = 'administrators';

export interface BootstrapAdmin {
  tid: string;
  oid: string;
  displayName: string;
}

const toInstallation = (r: { mode: string; bootstrappedAt: Date; administrators: unknown }): Installation => ({
  mode: r.mode === 'demo' ? 'demo' : 'production',
  bootstrappedAt: r.bootstrappedAt,
  administrators: Array.isArray(r.administrators) ? (r.administrators as Installation['administrators']) : [],
});

/** Whether and how the installation was bootstrapped (one row, id 1: a second bootstrap cannot commit). */
export class InstallationRepository {
  constructor(private readonly db: Db) {}

  async get(): Promise<Installation | null> {
    const r = await this.db.prisma.installation.findUnique({ where: { id: 1 } });
    return r ? toInstallation(r) : null;
  }

  /**
   * Production bootstrap, all or nothing in one transaction: refuses (`invalid_state`) an installation that was
   * bootstrapped or holds any subject, key or pending key; creates the administrators role, one USER subject per
   * administrator, the installation row and the SUCCESS audit event. Two concurrent runs: the table lock makes the
   * second wait and then see the first one's row.
   */
  async bootstrap(admins: BootstrapAdmin[], audit: AuditInput): Promise<Installation> {
    try {
      return await this.db.transaction(async (tx) => {
        await tx.$executeRawUnsafe('LOCK TABLE "installation" IN EXCLUSIVE MODE');
        if (await tx.installation.findUnique({ where: { id: 1 } })) throw new DataAccessError('invalid_state', 'the installation was already bootstrapped');
        const [subjects, keys, pending] = await Promise.all([tx.subject.count(), tx.key.count(), tx.pendingKey.count()]);
        if (subjects + keys + pending > 0) {
          throw new DataAccessError('invalid_state', `the database is not empty (${subjects} subjects, ${keys + pending} keys): bootstrap needs an empty installation`);
        }
        const role = await tx.role.create({ data: { name: BOOTSTRAP_ADMIN_ROLE, natures: ['ADMINISTRATOR'], description: 'Administrators (four-eyes admin sessions), created by the bootstrap' } });
        const subjectIds: string[] = [];
        for (const a of admins) {
          const s = await tx.subject.create({ data: { kind: 'USER', tid: a.tid, oid: a.oid, displayName: a.displayName, roles: { create: { roleId: role.id } } } });
          subjectIds.push(s.id);
        }
        const row = await tx.installation.create({ data: { id: 1, mode: 'production', administrators: admins as unknown as Prisma.InputJsonArray } });
        await appendAuditTx(tx, { ...audit, details: { ...audit.details, administrators: admins.map((a, i) => ({ ...a, subjectId: subjectIds[i] })), role: BOOTSTRAP_ADMIN_ROLE } });
        return toInstallation(row);
      });
    } catch (err) {
      return mapPrismaError(err, 'installation');
    }
  }

  /** The demo seed marks the installation as a demo (idempotent); refuses (`invalid_state`) a production installation. */
  async markDemo(): Promise<Installation> {
    await this.db.prisma.installation.createMany({ data: [{ id: 1, mode: 'demo' }], skipDuplicates: true });
    const r = await this.get();
    if (!r) throw new DataAccessError('not_found', 'installation row missing');
    if (r.mode !== 'demo') throw new DataAccessError('invalid_state', 'this installation was bootstrapped for production: demo data is never seeded into it');
    return r;
  }
}
