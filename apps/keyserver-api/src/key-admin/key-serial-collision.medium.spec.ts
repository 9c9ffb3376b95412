// Medium tier: a key certificate's serial collides with one its issuer already used, on the real HSM path
// (POST /api/v1/keys, renewal, rotation through the services, a real SoftHSM token signing, a real PostgreSQL whose
// issued_serial register refuses the serial). ADR 0020 addendum "serial numbers per issuer".
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Permission } from '@keyserver/api-contract';
import type { Actor } from '@keyserver/authz';
import { AdminSessionRepository, AuditRepository, CrlRepository, KeyLifecycleRepository, KeyLimitsRepository, KeyRepository, SERIAL_ATTEMPTS, SubjectRepository, type Db } from '@keyserver/data-access';
import { createPkcs11Signer, type Pkcs11Signer } from '@keyserver/pkcs11-signer';
import { createTempToken, type TempToken } from '@keyserver/pkcs11-signer/testing';
import { randomSerial } from '@keyserver/pki';
import pino from 'pino';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { CrlService } from '../crl/crl.service';
import { KeysService } from '../keys/keys.service';
import { adminInSession, codeOf, mediumConfig, mediumDatabase } from '../testing/medium';
import { KeyAdminService } from './key-admin.service';
import { KeyLifecycleService } from './key-lifecycle.service';

/** The node:crypto object libs/pki's serial pool refills from (the module itself, not an import copy). */
const nodeCrypto = jest.requireActual<typeof import('node:crypto')>('node:crypto');

/**
 * Makes the next serials libs/pki draws equal `serials` (lower-case hex as stored), in order, then CSPRNG ones again:
 * the pool is drained until it refills, and that one refill (real random bytes) carries the forced serials right after
 * the block the draining call took. Exactly what a broken or injected serial source, or a restored database, does.
 */
function forceNextSerials(serials: string[]): void {
  const real = nodeCrypto.randomFillSync.bind(nodeCrypto);
  const spy = jest.spyOn(nodeCrypto, 'randomFillSync').mockImplementationOnce(<T extends NodeJS.ArrayBufferView>(buffer: T): T => {
    real(buffer);
    const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    serials.forEach((s, i) => bytes.set(Buffer.from(s.padStart(32, '0'), 'hex'), 16 * (i + 1)));
    return buffer;
  });
  try {
    for (let i = 0; spy.mock.calls.length === 0; i++) {
      if (i > 1000) throw new Error('the serial pool did not refill from node:crypto randomFillSync');
      randomSerial();
    }
  } finally {
    spy.mockRestore();
  }
}

describe(`${KeyAdminService.name} and ${KeyLifecycleService.name}: a key certificate's serial already used by its issuer (medium: real PostgreSQL and SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_serial_collision');
  let token: TempToken;
  let signer: Pkcs11Signer;
  let db: Db;
  let audit: AuditRepository;
  let keys: KeyRepository;
  let lifecycle: KeyLifecycleRepository;
  let admin: KeyAdminService;
  let lifecycleService: KeyLifecycleService;
  let ada: Actor;
  let session: string;
  let root: string;
  let used: string;

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  const newKeyid = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
  const createCa = (keyid: string, id = requestId()) =>
    admin.create(ada, session, { keyid, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 30, commonName: `CA ${keyid}`, issuer: root }, id);

  beforeAll(async () => {
    token = createTempToken('ks-serial-collision');
    signer = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2 });
    db = pg.db;
    audit = new AuditRepository(db);
    keys = new KeyRepository(db);
    lifecycle = new KeyLifecycleRepository(db);
    const config = mediumConfig();
    const logger = pino({ level: 'silent' });
    const views = new KeysService(keys, new KeyLimitsRepository(db), lifecycle);
    const crls = new CrlService(new CrlRepository(db), signer, logger);
    const gate = new AdminSessionGate(new AdminSessionRepository(db));
    admin = new KeyAdminService(keys, signer, config, logger, gate, new Audited(audit), views, crls);
    lifecycleService = new KeyLifecycleService(keys, lifecycle, new SubjectRepository(db), signer, config, logger, gate, new Audited(audit), views, crls);
    ({ admin: ada, session } = await adminInSession(db, Permission.KeysAdmin));
    root = newKeyid('root');
    await lifecycleService.rootCeremony(ada, session, { keyid: root, algorithm: 'EC_P256', subject: { commonName: `Root ${root}` }, validityDays: 3650, mode: 'self-signed' }, requestId());
    // A serial the ROOT has already put into a certificate: the one every collision below reuses.
    const first = newKeyid('ca');
    await createCa(first);
    used = (await keys.findByKeyid(first))?.certificateSerial ?? '';
    expect(used).toMatch(/^[0-9a-f]+$/);
  });
  afterAll(async () => {
    await signer?.close();
  });

  /** How often the ROOT's register and its certificates hold `serial` (RFC 5280: once per issuer). */
  const timesIssued = async (serial: string) => {
    const rootId = (await db.prisma.key.findUniqueOrThrow({ where: { keyid: root } })).id;
    return {
      register: await db.prisma.issuedSerial.count({ where: { issuerKeyId: rootId, serialHex: serial } }),
      versions: await db.prisma.keyVersion.count({ where: { issuerKeyid: root, certificateSerial: serial } }),
    };
  };

  /** The CKA_IDs of the token's private key objects labelled `label` (pkcs11-tool, another process). */
  const privateKeysOnToken = (label: string): string[] => {
    const r = spawnSync('pkcs11-tool', ['--module', token.module, '--token-label', token.label, '--login', '--pin', token.pin, '--list-objects', '--type', 'privkey'], { env: token.env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`pkcs11-tool: ${r.stderr}`);
    const ids: string[] = [];
    let objectLabel: string | null = null;
    for (const line of r.stdout.split('\n')) {
      if (/^Private Key Object/.test(line)) objectLabel = null;
      const l = /^\s+label:\s+(.*)$/.exec(line);
      if (l) objectLabel = l[1].trim();
      const id = /^\s+ID:\s+([0-9a-f]+)$/.exec(line);
      if (id && objectLabel === label) ids.push(id[1]);
    }
    return ids.sort();
  };

  it.each([
    ['ok POST /api/v1/keys whose first serial collides: the same HSM key pair is certified again with a fresh serial', 'create'],
    ['ok a renewal whose first serial collides', 'renew'],
    ['ok a rotation whose first serial collides (the new key pair kept, certified with a fresh serial)', 'rotate'],
  ] as const)('%s; the collision is never issued twice and nothing is half-written', async (_n, change) => {
    const keyid = newKeyid('ca');
    if (change !== 'create') await createCa(keyid);
    const versionsBefore = change === 'create' ? 0 : (await lifecycle.versions(keyid)).length;
    forceNextSerials([used]);
    const id = requestId();
    if (change === 'create') await createCa(keyid, id);
    else await lifecycleService[change](ada, session, keyid, { validityDays: 30 }, id);

    const key = await keys.findByKeyid(keyid);
    expect(key?.certificateSerial).toMatch(/^[0-9a-f]+$/);
    expect(key?.certificateSerial).not.toBe(used);
    expect(await timesIssued(used)).toEqual({ register: 1, versions: 1 });
    expect(await timesIssued(key?.certificateSerial ?? '')).toEqual({ register: 1, versions: 1 });
    const versions = await lifecycle.versions(keyid);
    expect(versions.length).toBe(versionsBefore + 1);
    // The stored certificate carries the stored serial (the one signed), and its key pair is the one the row names.
    const { X509Certificate } = nodeCrypto;
    expect(new X509Certificate(key?.certificatePem ?? '').serialNumber.toLowerCase().replace(/^0+/, '')).toBe((key?.certificateSerial ?? '').replace(/^0+/, ''));
    expect(privateKeysOnToken(keyid)).toEqual([...new Set(versions.map((v) => v.hsmKeyId))].sort());
    const events = (await audit.list({ requestId: id })).items;
    expect(events.map((e) => e.outcome)).toEqual(['SUCCESS']);
  });

  it(`fail POST /api/v1/keys whose serial collides ${SERIAL_ATTEMPTS} times in a row: 409 serial_in_use, no key, its key pair destroyed, audited DENIED`, async () => {
    const keyid = newKeyid('ca');
    forceNextSerials(Array.from({ length: SERIAL_ATTEMPTS }, () => used));
    const id = requestId();
    expect(await codeOf(createCa(keyid, id))).toBe('serial_in_use');
    expect(await keys.findByKeyid(keyid)).toBeNull();
    expect(await timesIssued(used)).toEqual({ register: 1, versions: 1 });
    expect(privateKeysOnToken(keyid)).toEqual([]);
    const events = (await audit.list({ requestId: id })).items;
    expect(events.map((e) => [e.action, e.outcome, e.errorCode])).toEqual([['key.create', 'DENIED', 'serial_in_use']]);
  });
});
