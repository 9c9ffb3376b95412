// Medium tier: one keyid claimed by two key changes at once (POST /keys, ROOT ceremonies, rotations), on a real
// PostgreSQL and a real SoftHSM token (docs/adr/0042-pending-hsm-keys.md). Each party generates its key pair in the
// HSM, then the writes meet: afterwards the token holds exactly the key pairs the database names, the loser is
// refused with a stable code and audited, and the key pair generated for it is gone.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Permission } from '@keyserver/api-contract';
import type { Actor } from '@keyserver/authz';
import {
  AdminSessionRepository,
  AuditRepository,
  CrlRepository,
  DataAccessError,
  KeyLifecycleRepository,
  KeyLimitsRepository,
  KeyRepository,
  SubjectRepository,
  type AuditInput,
  type CreateKeyInput,
  type CreatePendingKeyInput,
  type Db,
  type Key,
  type KeyVersion,
  type NewKeyVersion,
  type PendingKey,
  type PendingKeyVersion,
} from '@keyserver/data-access';
import { createPkcs11Signer, type Pkcs11Signer } from '@keyserver/pkcs11-signer';
import { createTempToken, type TempToken } from '@keyserver/pkcs11-signer/testing';
import { akiExtension, basicConstraintsExtension, buildName, createRootCertificate, keyUsageExtension, signCertificate, skiExtension } from '@keyserver/pki';
import pino from 'pino';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { CrlService } from '../crl/crl.service';
import { KeysService } from '../keys/keys.service';
import { adminInSession, codeOf, mediumConfig, mediumDatabase } from '../testing/medium';
import { KeyAdminService } from './key-admin.service';
import { KeyLifecycleService } from './key-lifecycle.service';

const DAY = 86_400_000;

/** Lets each caller on only once `n` callers arrived (or after 10 s, so a party refused early cannot hang the test). */
function meeting(n = 2): () => Promise<void> {
  let arrived = 0;
  let open = () => undefined as void;
  const all = new Promise<void>((resolve) => (open = resolve));
  const late = setTimeout(open, 10_000);
  return async () => {
    if (++arrived === n) {
      clearTimeout(late);
      open();
    }
    await all;
  };
}

/** Repositories whose writes of a new key, pending key or version wait for the other party's. */
class MeetingKeys extends KeyRepository {
  constructor(db: Db, private readonly meet: () => Promise<void>) {
    super(db);
  }
  override async create(input: CreateKeyInput, audit?: AuditInput): Promise<Key> {
    await this.meet();
    return super.create(input, audit);
  }
}
class MeetingLifecycle extends KeyLifecycleRepository {
  constructor(db: Db, private readonly meet: () => Promise<void>) {
    super(db);
  }
  override async createPending(input: CreatePendingKeyInput, audit: AuditInput): Promise<PendingKey> {
    await this.meet();
    return super.createPending(input, audit);
  }
  override async addVersion(keyid: string, expected: number, v: NewKeyVersion, audit: AuditInput): Promise<{ key: Key; version: KeyVersion }> {
    await this.meet();
    return super.addVersion(keyid, expected, v, audit);
  }
  override async createPendingVersion(keyid: string, expected: number, input: { hsmKeyId: string; csrPem: string; adminSessionId: string }, audit: AuditInput): Promise<PendingKeyVersion> {
    await this.meet();
    return super.createPendingVersion(keyid, expected, input, audit);
  }
}

describe(`${KeyAdminService.name} and ${KeyLifecycleService.name}: one keyid claimed twice at once (medium: real PostgreSQL and SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_key_claims');
  let token: TempToken;
  let signer: Pkcs11Signer;
  let db: Db;
  let audit: AuditRepository;
  let keys: KeyRepository;
  let lifecycle: KeyLifecycleRepository;
  let ada: Actor;
  let session: string;
  let root: string;

  const build = (k: KeyRepository, l: KeyLifecycleRepository) => {
    const config = mediumConfig();
    const logger = pino({ level: 'silent' });
    const views = new KeysService(k, new KeyLimitsRepository(db), l);
    const crls = new CrlService(new CrlRepository(db), signer, logger);
    const gate = new AdminSessionGate(new AdminSessionRepository(db));
    return {
      admin: new KeyAdminService(k, signer, config, logger, gate, new Audited(audit), views, crls),
      lifecycle: new KeyLifecycleService(k, l, new SubjectRepository(db), signer, config, logger, gate, new Audited(audit), views, crls),
    };
  };
  type Services = ReturnType<typeof build>;

  beforeAll(async () => {
    token = createTempToken('ks-key-claims');
    signer = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 4 });
    db = pg.db;
    audit = new AuditRepository(db);
    keys = new KeyRepository(db);
    lifecycle = new KeyLifecycleRepository(db);
    ({ admin: ada, session } = await adminInSession(db, Permission.KeysAdmin));
    root = newKeyid('root');
    await build(keys, lifecycle).lifecycle.rootCeremony(ada, session, { keyid: root, algorithm: 'EC_P256', subject: { commonName: `Root ${root}` }, validityDays: 3650, mode: 'self-signed' }, requestId());
  });
  afterAll(async () => {
    await signer?.close();
  });

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  function newKeyid(prefix: string) {
    return `${prefix}-${randomBytes(4).toString('hex')}`;
  }
  const eventsOf = async (id: string) => (await audit.list({ requestId: id })).items;

  /** The CKA_IDs of the token's private and public key objects labelled `label` (pkcs11-tool, another process). */
  const onToken = (label: string): { private: string[]; public: string[] } => {
    const r = spawnSync('pkcs11-tool', ['--module', token.module, '--token-label', token.label, '--login', '--pin', token.pin, '--list-objects'], { env: token.env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`pkcs11-tool: ${r.stderr}`);
    const found = { private: [] as string[], public: [] as string[] };
    let kind: 'private' | 'public' | null = null;
    let objectLabel: string | null = null;
    for (const line of r.stdout.split('\n')) {
      const start = /^(Private|Public) Key Object/.exec(line);
      if (start) [kind, objectLabel] = [start[1] === 'Private' ? 'private' : 'public', null];
      else if (/^\S/.test(line)) kind = null;
      const l = /^\s+label:\s+(.*)$/.exec(line);
      if (l) objectLabel = l[1].trim();
      const id = /^\s+ID:\s+([0-9a-f]+)$/.exec(line);
      if (id && kind && objectLabel === label) found[kind].push(id[1]);
    }
    return { private: found.private.sort(), public: found.public.sort() };
  };

  /** Every HSM key the database names for `keyid`: the key and its versions, a pending key, a pending version. */
  const named = async (keyid: string): Promise<string[]> => {
    const key = await keys.findByKeyid(keyid);
    const ids = [key?.hsmKeyId, ...(key ? (await lifecycle.versions(keyid)).map((v) => v.hsmKeyId) : []), (await lifecycle.findPending(keyid))?.hsmKeyId, (await lifecycle.findPendingVersion(keyid))?.hsmKeyId];
    return [...new Set(ids.filter((id): id is string => !!id))].sort();
  };

  type Party = { action: string; run: (s: Services, keyid: string, requestId: string) => Promise<unknown> };
  const create: Party = {
    action: 'key.create',
    run: (s, keyid, id) => s.admin.create(ada, session, { keyid, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 30, commonName: `CA ${keyid}`, issuer: root }, id),
  };
  const ceremony = (mode: 'self-signed' | 'external'): Party => ({
    action: 'key.root_ceremony',
    run: (s, keyid, id) => s.lifecycle.rootCeremony(ada, session, { keyid, algorithm: 'EC_P256', subject: { commonName: `Root ${keyid}` }, validityDays: 3650, mode }, id),
  });
  const rotate: Party = { action: 'key.rotate', run: (s, keyid, id) => s.lifecycle.rotate(ada, session, keyid, { validityDays: 30 }, id) };

  /** A ROOT certified by an offline anchor (the external ceremony and its import). */
  const externallyCertifiedRoot = async (): Promise<string> => {
    const now = Date.now();
    const anchorKey = await signer.generateKey({ algorithm: 'EC-P256', label: 'offline-anchor' });
    const anchor = (await createRootCertificate(signer, anchorKey, { subject: { commonName: 'Offline Anchor' }, notBefore: new Date(now - 2 * DAY), notAfter: new Date(now + 3650 * DAY) })).certificatePem;
    const keyid = newKeyid('online');
    const s = build(keys, lifecycle).lifecycle;
    await s.rootCeremony(ada, session, { keyid, algorithm: 'EC_P256', subject: { commonName: `Online ${keyid}` }, validityDays: 3650, mode: 'external' }, requestId());
    const key = await signer.getKey((await lifecycle.findPending(keyid))?.hsmKeyId ?? '');
    const certificate = (
      await signCertificate(signer, anchorKey, {
        issuerName: buildName({ commonName: 'Offline Anchor' }),
        subject: buildName({ commonName: `Online ${keyid}` }),
        spki: key.spki,
        validity: { notBefore: new Date(now - DAY), notAfter: new Date(now + 3000 * DAY) },
        extensions: [basicConstraintsExtension(true), keyUsageExtension(['keyCertSign', 'cRLSign']), skiExtension(key.spki), akiExtension(anchorKey.spki)],
      })
    ).certificatePem;
    await s.importCertificate(ada, session, keyid, { certificate, chain: [anchor] }, requestId());
    return keyid;
  };

  it.each<[string, string, () => Promise<string>, [Party, Party]]>([
    ['ok two POST /api/v1/keys', 'key_exists', async () => newKeyid('ca'), [create, create]],
    ['ok two self-signed ROOT ceremonies', 'key_exists', async () => newKeyid('root'), [ceremony('self-signed'), ceremony('self-signed')]],
    ['ok two external ROOT ceremonies', 'key_exists', async () => newKeyid('root'), [ceremony('external'), ceremony('external')]],
    ['ok a self-signed and an external ROOT ceremony', 'key_exists', async () => newKeyid('root'), [ceremony('self-signed'), ceremony('external')]],
    ['ok a POST /api/v1/keys and an external ROOT ceremony', 'key_exists', async () => newKeyid('ca'), [create, ceremony('external')]],
    [
      'ok two rotations of one key',
      'version_conflict',
      async () => {
        const keyid = newKeyid('ca');
        await create.run(build(keys, lifecycle), keyid, requestId());
        return keyid;
      },
      [rotate, rotate],
    ],
    ['ok two rotations of an externally certified ROOT', 'version_pending', externallyCertifiedRoot, [rotate, rotate]],
  ])('%s with one keyid: one wins, the other is refused (%s) and audited; the token holds exactly the key pairs the database names', async (_n, loserCode, setup, parties) => {
    const keyid = await setup();
    const meet = meeting();
    const racing = build(new MeetingKeys(db, meet), new MeetingLifecycle(db, meet));
    const ids = parties.map(() => requestId());
    const results = await Promise.all(parties.map((p, i) => codeOf(p.run(racing, keyid, ids[i]))));
    expect([...results].sort()).toEqual([loserCode, 'ok'].sort());

    const loser = results.indexOf(loserCode);
    const [refused, ...more] = await eventsOf(ids[loser]);
    expect(more).toEqual([]);
    expect([refused.action, refused.outcome, refused.errorCode]).toEqual([parties[loser].action, 'DENIED', loserCode]);
    const discarded = (refused.details as { hsmKeyId?: string; hsmKey?: string }) ?? {};
    expect(discarded.hsmKey).toBe('destroyed');
    expect(await codeOf(signer.getKey(String(discarded.hsmKeyId)))).toBe('key_not_found');

    const inDatabase = await named(keyid);
    expect(inDatabase).not.toContain(discarded.hsmKeyId);
    expect(onToken(keyid)).toEqual({ private: inDatabase, public: inDatabase });
  });

  it('ok a key change whose answer was lost while its commit was still under way: the cleanup waits for the commit and keeps the key pair it names', async () => {
    const waitingOnLocks = async () =>
      (await db.prisma.$queryRaw<{ n: number }[]>`SELECT count(*)::int AS "n" FROM pg_stat_activity WHERE "datname" = current_database() AND "wait_event_type" = 'Lock'`)[0].n;
    const until = async (ok: () => Promise<boolean>, ms: number) => {
      for (const end = Date.now() + ms; Date.now() < end && !(await ok()); ) await new Promise((r) => setTimeout(r, 20));
    };
    // The connection breaks while the COMMIT is still being worked on (here: the insert waits for a row lock the
    // test holds on the issuer): the service hears of a failure, and the transaction commits afterwards.
    let writing: Promise<unknown> = Promise.resolve();
    class AnswerLostMidCommit extends KeyRepository {
      override async create(input: CreateKeyInput, a?: AuditInput): Promise<Key> {
        writing = super.create(input, a).catch(() => undefined);
        await until(async () => (await waitingOnLocks()) >= 1, 5_000);
        throw new DataAccessError('database_unavailable', 'the connection broke before the commit was answered');
      }
    }
    let locked = () => undefined as void;
    let release = () => undefined as void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const released = new Promise<void>((r) => (release = r));
    const holder = db.transaction(
      async (tx) => {
        await tx.$queryRaw`SELECT 1 AS "locked" FROM "key" WHERE "keyid" = ${root} FOR UPDATE`;
        locked();
        await released;
      },
      { timeoutMs: 30_000 },
    );
    await isLocked;
    const keyid = newKeyid('ca');
    const id = requestId();
    const outcome = codeOf(create.run(build(new AnswerLostMidCommit(db), lifecycle), keyid, id));
    // The cleanup's decision waits for the transaction that may name the key pair (a second waiter), if it waits.
    await until(async () => (await waitingOnLocks()) >= 2, 3_000);
    release();
    await Promise.all([holder, writing]);
    expect(await outcome).toBe('database_unavailable');

    const key = await keys.getByKeyid(keyid);
    expect((await signer.getKey(key.hsmKeyId)).hsmKeyId).toBe(key.hsmKeyId);
    expect(onToken(keyid)).toEqual({ private: [key.hsmKeyId], public: [key.hsmKeyId] });
    const failed = (await eventsOf(id)).filter((e) => e.outcome !== 'SUCCESS');
    expect(failed.map((e) => [e.action, e.outcome, e.errorCode, (e.details as { hsmKey?: string }).hsmKey])).toEqual([['key.create', 'FAILED', 'database_unavailable', 'kept: the database names it']]);
  });
});
