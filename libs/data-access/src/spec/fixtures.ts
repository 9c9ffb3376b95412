// Test-only seed helpers (excluded from the library build).
import { randomBytes } from 'node:crypto';
import { createDb, type Db } from '../lib/db';
import { migrateDatabase } from '../lib/migrate/migrator';
import { planDatabase, sql, type TempDatabase } from './temp-database';
import { createRepositories, type Repositories } from '../lib/repositories';
import type { Key, KeyType, Subject } from '../lib/types';

export const hex = (n: number): string => randomBytes(n).toString('hex');

export async function seedSubject(repos: Repositories, name = `user-${hex(3)}`): Promise<Subject> {
  return repos.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: name, username: `${name}@example.test` });
}

/**
 * A USER subject entitled to approve `keyids`: the APPROVER nature and the APPROVE grant on each through a role of its
 * own (`approvers-<hex>`), as the approval route and the repository's re-check require.
 */
export async function seedApprover(repos: Repositories, keyids: readonly string[], name = `approver-${hex(3)}`): Promise<Subject & { role: string }> {
  const role = `approvers-${hex(4)}`;
  await repos.subjects.createRole({ name: role, natures: ['APPROVER'], keys: keyids.map((keyid) => ({ keyid, permissions: ['APPROVE'] })) });
  const s = await repos.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: name, username: `${name}@example.test`, roles: [role] });
  return { ...s, role };
}

/** A USER subject holding the administrator nature (role `fixture-administrators`), signed in once as a member. */
export async function seedAdmin(repos: Repositories, name = `admin-${hex(3)}`): Promise<Subject> {
  await repos.subjects.upsertRole('fixture-administrators', ['ADMINISTRATOR']);
  const s = await repos.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: name, username: `${name}@example.test`, roles: ['fixture-administrators'] });
  await proveAccount(repos, s.id, 'MEMBER');
  return s;
}

/** As the guard records it when a user token with `acct` comes in (ADR 0040): `MEMBER` (acct=0) or `GUEST` (acct=1). */
export async function proveAccount(repos: Repositories, subjectId: string, account: 'MEMBER' | 'GUEST', at = new Date()): Promise<boolean> {
  return repos.subjects.recordAccount(subjectId, account, at, { action: 'subject.account', outcome: 'SUCCESS', actorSubjectId: subjectId });
}

export async function seedKey(repos: Repositories, opts: { keyid?: string; requiredApprovers?: number } = {}): Promise<Key> {
  const now = Date.now();
  return repos.keys.create({
    keyid: opts.keyid ?? `fw-${hex(4)}`,
    type: 'FW',
    algorithm: 'EC_P256',
    hash: 'SHA256',
    requiredApprovers: opts.requiredApprovers ?? 0,
    hsmKeyId: hex(8),
    certificatePem: '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n',
    certificateSerial: hex(8),
    // Valid since long before any frozen clock of the specs: an operation's window must lie inside the key's
    // certificate (ADR 0017 addendum, session 25), whatever day the suite runs.
    notBefore: new Date('2020-01-01T00:00:00.000Z'),
    notAfter: new Date(now + 365 * 86_400_000),
    product: 'demo',
    profile: {},
  });
}

export function repositories(db: Db): Repositories {
  return createRepositories(db);
}

export const window = (): { validFrom: Date; validTo: Date } => ({
  validFrom: new Date(Date.now() - 60_000),
  validTo: new Date(Date.now() + 3_600_000),
});

/** Resolves to the DataAccessError code a promise rejects with (or 'ok'). */
/** `read()` until `ok` holds or `ms` have passed; the last value either way (the caller's expect says which). */
export async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 5_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    throw err;
  }
}

/** A freshly migrated database with two independent pools (like two API replicas) and their repositories. */
export interface TwoReplicas {
  tmp: TempDatabase;
  dbA: Db;
  dbB: Db;
  a: Repositories;
  b: Repositories;
}

// Private: every spec sets up through twoReplicas, whose hooks pair the opening with this closing.
async function closeTwoReplicas(r: Partial<TwoReplicas>): Promise<void> {
  await r.dbA?.close();
  await r.dbB?.close();
  await r.tmp?.drop();
}

/**
 * The two-replica set-up of a spec (or of its describe block) in one line: `const { tmp, a, b } = twoReplicas('tag')`.
 * The handles exist at once (their pools connect on first use) and their database is created and migrated by the
 * `beforeAll` this registers; the `afterAll` it registers closes both pools and drops the database. A hook the spec
 * registers after this call runs after the opening, and its `afterAll` after the closing.
 */
export function twoReplicas(tag: string, poolSize = 4): TwoReplicas {
  const planned = planDatabase(tag);
  const tmp: TempDatabase = { url: planned.url, drop: planned.drop };
  const dbA = createDb(tmp.url, { poolSize });
  const dbB = createDb(tmp.url, { poolSize });
  beforeAll(async () => {
    await planned.create();
    await migrateDatabase(tmp.url);
  });
  afterAll(() => closeTwoReplicas({ tmp, dbA, dbB }));
  return { tmp, dbA, dbB, a: repositories(dbA), b: repositories(dbB) };
}

/** A key (EC P-256, fake certificate) certified by `parent`'s current version (no parent: a self-signed ROOT), with a key.create event. */
export function seedKeyBelow(repos: Repositories, type: KeyType, parent: Key | null): Promise<Key> {
  const day = 86_400_000;
  return repos.keys.create(
    {
      keyid: `${type.toLowerCase()}-${hex(5)}`,
      type,
      algorithm: 'EC_P256',
      hash: 'SHA256',
      hsmKeyId: hex(8),
      parentKeyid: parent?.keyid ?? null,
      certificatePem: '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n',
      certificateSerial: hex(8),
      notBefore: new Date(Date.now() - day),
      notAfter: new Date(Date.now() + 365 * day),
      pathLen: type === 'ROOT' || type === 'CA' ? 3 : null,
    },
    { action: 'key.create', outcome: 'SUCCESS', actorName: 'test', requestId: null },
  );
}

/** Waits until `n` backends of the database at `url` wait for a lock (row or advisory): a race is set up. */
export async function lockWaiters(url: string, n: number, tries = 250): Promise<void> {
  for (let i = 0; i < tries; i++) {
    const rows = await sql<{ n: string }>(url, `SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
    if (Number(rows[0].n) >= n) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`never ${n} waiting for a lock`);
}
