// Helpers of the API's medium test tier (`*.medium.spec.ts`): services wired by constructor, as the composition root
// wires them, on a real freshly migrated PostgreSQL and, for the services that sign, a throwaway SoftHSM token
// (no HTTP, no processes). Not part of the app.
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_DEVICE_PROFILE, Permission, type KeyGrant, type Nature } from '@keyserver/api-contract';
import { authorize, type Actor } from '@keyserver/authz';
import {
  AdminSessionRepository,
  AuditRepository,
  CertificateIssuanceRepository,
  CertificateRepository,
  createDb,
  CrlRepository,
  DeviceProfileRepository,
  KeyLifecycleRepository,
  KeyRepository,
  OperationRepository,
  SubjectRepository,
  type Db,
  type KeyAlgorithm,
} from '@keyserver/data-access';
import { createTestDatabase, type TempDatabase } from '@keyserver/data-access/testing';
import { createPkcs11Signer, type Pkcs11Signer } from '@keyserver/pkcs11-signer';
import { createTempToken, SOFTHSM_MODULE } from '@keyserver/pkcs11-signer/testing';
import type { Principal, PrincipalAccount, PrincipalChannel } from '@keyserver/entra-token';
import { createCaCertificate, createFirmwareSigningCertificate, createRootCertificate, OID, type HsmKeyInfo, type HsmSigner } from '@keyserver/pki';
import { buildCsr, csrPem, extensionDer, extensionRequest, generateTestKey, nameDer } from '@keyserver/pki/testing';
import pino from 'pino';
import { CertificatesService } from '../certificates/certificates.service';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { loadApiConfig, type ApiConfig } from '../config/api-config';
import { CrlService } from '../crl/crl.service';

/**
 * The suite's database: a fresh, migrated PostgreSQL database `<prefix>_<random>` created before its tests and
 * dropped after them (jest hooks of the calling describe). Read `.db` in the suite's own hooks and tests.
 */
export function mediumDatabase(prefix: string): { readonly db: Db } {
  let tmp: TempDatabase | undefined;
  let db: Db | undefined;
  beforeAll(async () => {
    tmp = await createTestDatabase(prefix);
    db = createDb(tmp.url);
  });
  afterAll(async () => {
    await db?.close();
    await tmp?.drop();
  });
  return {
    get db(): Db {
      if (!db) throw new Error('the medium database exists inside the suite\'s hooks and tests only');
      return db;
    },
  };
}

/**
 * The suite's HSM: a real PKCS#11 signer on a fresh SoftHSM token (the directory comes from the jest global
 * setup), opened before its tests and closed after them. The same signer production builds in main.ts.
 */
export function mediumSigner(prefix: string): { readonly signer: Pkcs11Signer } {
  let signer: Pkcs11Signer | undefined;
  beforeAll(async () => {
    const token = createTempToken(prefix);
    signer = await createPkcs11Signer({ module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2 });
  });
  afterAll(async () => {
    await signer?.close();
  });
  return {
    get signer(): Pkcs11Signer {
      if (!signer) throw new Error('the medium signer exists inside the suite\'s hooks and tests only');
      return signer;
    },
  };
}

/** The tenant every medium-tier subject belongs to. */
export const MEDIUM_TENANT = '7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01';

/**
 * The API's configuration as main.ts loads it (the real loader and its defaults), for the services that read it;
 * `env` sets further variables (e.g. ADMIN_SESSION_APPROVALS).
 */
export function mediumConfig(env: Record<string, string> = {}): ApiConfig {
  return loadApiConfig({
    TENANT_ID: MEDIUM_TENANT,
    APPLICATION_ID: '5b0f3c2a-8e7d-4f61-a9c3-1d2e3f4a5b60',
    OPENID_CONNECT_METADATA_DOCUMENT: `https://login.microsoftonline.com/${MEDIUM_TENANT}/v2.0/.well-known/openid-configuration`,
    DATABASE_URL: 'postgresql://keyserver@127.0.0.1:5432/unused-by-the-medium-tier',
    PKCS11_MODULE: SOFTHSM_MODULE,
    PKCS11_TOKEN_LABEL: 'medium',
    PKCS11_PIN: '123456',
    KEYSERVER_PUBLIC_URL: 'https://keyserver.medium.test',
    ...env,
  });
}

/** The stable code a promise is refused with, or 'ok'. */
export const codeOf = (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: { code?: string }) => e.code ?? 'untyped');

/**
 * An ACTIVE key `<prefix>-<random>`: by default with a random HSM key id and a placeholder certificate (nothing
 * parses it); `hsmKeyId`, `algorithm` and `certificate` for a key the suite's signer really holds (see
 * {@link seedCaChain}).
 */
export async function seedKey(
  db: Db,
  opts: {
    requiredApprovers?: number;
    type?: 'FW' | 'CA' | 'ROOT' | 'TSA';
    prefix?: string;
    hsmKeyId?: string;
    algorithm?: KeyAlgorithm;
    parentKeyid?: string;
    certificate?: { pem: string; serialHex: string; notBefore: Date; notAfter: Date };
    profile?: Record<string, unknown>;
  } = {},
): Promise<string> {
  const keyid = `${opts.prefix ?? 'fw'}-${randomBytes(4).toString('hex')}`;
  await new KeyRepository(db).create({
    keyid,
    type: opts.type ?? 'FW',
    algorithm: opts.algorithm ?? 'EC_P256',
    hash: 'SHA256',
    requiredApprovers: opts.requiredApprovers ?? 0,
    hsmKeyId: opts.hsmKeyId ?? randomBytes(8).toString('hex'),
    parentKeyid: opts.parentKeyid ?? null,
    certificatePem: opts.certificate?.pem ?? '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n',
    certificateSerial: opts.certificate?.serialHex ?? randomBytes(8).toString('hex'),
    notBefore: opts.certificate?.notBefore ?? new Date(Date.now() - 86_400_000),
    notAfter: opts.certificate?.notAfter ?? new Date(Date.now() + 365 * 86_400_000),
    product: 'demo',
    profile: opts.profile ?? {},
  });
  return keyid;
}

/**
 * A ROOT and a CA under it, both EC P-256 keys generated on `signer` with real certificates, stored as ACTIVE
 * keys (the CA with the default device profile): what certificate issuance signs with. Returns the CA's keyid,
 * its HSM key and both certificates (PEM).
 */
export async function seedCaChain(
  db: Db,
  signer: HsmSigner,
  opts: { requiredApprovers?: number } = {},
): Promise<{ caKeyid: string; caKey: HsmKeyInfo; caCertificatePem: string; rootCertificatePem: string }> {
  const tag = randomBytes(4).toString('hex');
  // Whole seconds (X.509 times), the CA inside the root's validity.
  const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 86_400_000);
  const notAfter = new Date(notBefore.getTime() + 365 * 86_400_000);
  const rootKey = await signer.generateKey({ algorithm: 'EC-P256', label: `medium-root-${tag}` });
  const root = await createRootCertificate(signer, rootKey, { subject: { commonName: `Medium Root ${tag}` }, notBefore, notAfter });
  const rootKeyid = await seedKey(db, { type: 'ROOT', prefix: 'root', hsmKeyId: rootKey.hsmKeyId, certificate: { pem: root.certificatePem, serialHex: root.serialHex, notBefore, notAfter } });
  const caKey = await signer.generateKey({ algorithm: 'EC-P256', label: `medium-ca-${tag}` });
  const caNotBefore = new Date(notBefore.getTime() + 1000);
  const caNotAfter = new Date(notAfter.getTime() - 1000);
  const ca = await createCaCertificate(signer, { key: rootKey, certificate: root.certificatePem }, caKey, { subject: { commonName: `Medium CA ${tag}` }, notBefore: caNotBefore, notAfter: caNotAfter });
  const caKeyid = await seedKey(db, {
    type: 'CA',
    prefix: 'ca',
    requiredApprovers: opts.requiredApprovers ?? 0,
    hsmKeyId: caKey.hsmKeyId,
    parentKeyid: rootKeyid,
    certificate: { pem: ca.certificatePem, serialHex: ca.serialHex, notBefore: caNotBefore, notAfter: caNotAfter },
    profile: { ...DEFAULT_DEVICE_PROFILE },
  });
  return { caKeyid, caKey, caCertificatePem: ca.certificatePem, rootCertificatePem: root.certificatePem };
}

/**
 * An ACTIVE FW key under the CA `caKeyid` (see {@link seedCaChain}): an EC P-256 key generated on `signer` with a
 * real code-signing certificate the CA signed, inside the CA's validity. What firmware signatures sign with.
 */
/** `ed25519`: an Ed25519 FW key stored with hash SHA256, as keys created before RFC 8419's rule was enforced may be. */
export async function seedFirmwareKey(db: Db, signer: HsmSigner, caKeyid: string, opts: { ed25519?: boolean } = {}): Promise<{ keyid: string; fwKey: HsmKeyInfo; certificatePem: string }> {
  const ca = await new KeyRepository(db).findByKeyid(caKeyid);
  if (!ca) throw new Error(`no CA key ${caKeyid}`);
  const tag = randomBytes(4).toString('hex');
  const notBefore = new Date(ca.notBefore.getTime() + 1000);
  const notAfter = new Date(ca.notAfter.getTime() - 1000);
  const fwKey = await signer.generateKey({ algorithm: opts.ed25519 ? 'Ed25519' : 'EC-P256', label: `medium-fw-${tag}` });
  const cert = await createFirmwareSigningCertificate(signer, { key: await signer.getKey(ca.hsmKeyId), certificate: ca.certificatePem }, fwKey, {
    subject: { commonName: `Medium FW ${tag}` },
    notBefore,
    notAfter,
  });
  const keyid = await seedKey(db, { type: 'FW', prefix: 'fw', algorithm: opts.ed25519 ? 'ED25519' : 'EC_P256', hsmKeyId: fwKey.hsmKeyId, parentKeyid: caKeyid, certificate: { pem: cert.certificatePem, serialHex: cert.serialHex, notBefore, notAfter } });
  return { keyid, fwKey, certificatePem: cert.certificatePem };
}

/**
 * The real `openssl` CLI over files in a throwaway directory (made before the suite's tests, removed after them):
 * `write` puts a file there and returns its path; `run` returns the exit status and output.
 */
export function mediumOpenssl(prefix: string): {
  write(name: string, data: string | Uint8Array): string;
  run(...args: string[]): { status: number | null; out: string };
} {
  let dir: string | undefined;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const here = () => {
    if (!dir) throw new Error('the medium work directory exists inside the suite\'s hooks and tests only');
    return dir;
  };
  return {
    write(name, data) {
      const file = join(here(), name);
      writeFileSync(file, data);
      return file;
    },
    run(...args) {
      const r = spawnSync('openssl', args, { cwd: here(), encoding: 'utf8' });
      return { status: r.status, out: `${r.stdout}${r.stderr}` };
    },
  };
}

/**
 * A registered, enabled USER holding one new role with `natures` and `grants` on `keyids`, as the guard hands it to
 * services (`authorize` with the route's `permission`, which the role must open). The token proves a member account
 * (`acct` 0) unless `account` says otherwise (`guest`, or `none`: no acct claim; ADR 0040).
 */
export async function mediumActor(
  db: Db,
  access: { natures: Nature[]; grants?: KeyGrant[]; keyids?: string[] },
  permission: Permission,
  channel: PrincipalChannel = 'provisioning',
  account: PrincipalAccount | 'none' = 'member',
): Promise<Actor> {
  const subjects = new SubjectRepository(db);
  const role = `role-${randomBytes(4).toString('hex')}`;
  await subjects.upsertRole(role, access.natures);
  for (const k of access.keyids ?? []) await subjects.setRoleKeyPermissions(role, k, access.grants ?? []);
  const oid = randomUUID();
  const s = await subjects.create({ kind: 'USER', tid: MEDIUM_TENANT, oid, displayName: role, roles: [role] });
  const found = await subjects.findByTidOid(MEDIUM_TENANT, oid);
  const principal: Principal = { kind: 'user', channel, tid: MEDIUM_TENANT, oid, sub: 's', azp: 'a', scopes: ['keyserver'], roles: [], expiresAt: 0, ...(account !== 'none' ? { account } : {}) };
  return authorize(principal, { subjectId: s.id, kind: 'USER', enabled: true, natures: found?.natures ?? [], keyGrants: found?.keyPermissions ?? {} }, permission);
}

/**
 * An administrator (with `permission`) in an ACTIVE administrative session that a second administrator authorized
 * (four eyes): what every administrative change needs.
 */
export async function adminInSession(db: Db, permission: Permission): Promise<{ admin: Actor; session: string }> {
  const admin = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, permission);
  const second = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, permission);
  const sessions = new AdminSessionRepository(db);
  const s = await sessions.open({ description: 'medium test', creatorId: admin.subjectId, requiredApprovals: 1, expiresAt: new Date(Date.now() + 3_600_000) });
  await sessions.authorize(s.id, second.subjectId);
  return { admin, session: s.id };
}

/**
 * Certificate issuance and the CRLs, wired by constructor as the composition root wires them (real repositories on
 * `db`, the real signer, the configuration main.ts loads, a silent logger): a revocation refreshes the issuer's CRL
 * through the same CrlService.
 */
export function mediumCertificates(db: Db, signer: HsmSigner): { certificates: CertificatesService; crls: CrlService } {
  const config = mediumConfig();
  const crls = new CrlService(new CrlRepository(db), signer, pino({ level: 'silent' }));
  const certificates = new CertificatesService(
    new KeyRepository(db),
    new CertificateRepository(db),
    new CertificateIssuanceRepository(db, { leaseMs: config.usageLeaseMs }),
    new DeviceProfileRepository(db),
    signer,
    config,
    new Audited(new AuditRepository(db)),
    crls,
    new KeyLifecycleRepository(db),
  );
  return { certificates, crls };
}

/** A provisioner holding ISSUE on the CA `caKeyid` and an operation with `usages` (default one) of it. */
export async function mediumIssuer(db: Db, caKeyid: string, usages = 1): Promise<{ provisioner: Actor; operationId: string }> {
  const provisioner = await mediumActor(db, { natures: ['PROVISIONER'], grants: ['ISSUE'], keyids: [caKeyid] }, Permission.CertificatesIssue);
  const op = await new OperationRepository(db).create({
    description: 'medium certificates',
    ordererId: provisioner.subjectId,
    validFrom: new Date(Date.now() - 60_000),
    validTo: new Date(Date.now() + 3_600_000),
    keys: [{ keyid: caKeyid, usagesAllowed: usages }],
  });
  return { provisioner, operationId: op.id };
}

/** A device CSR (PEM, CN only) signed by its own fresh EC P-256 key, or by another key when `forged`. */
export function deviceCsr(cn: string, forged = false, o: { caRequested?: boolean; extensions?: Uint8Array[] } = {}): string {
  const device = generateTestKey('EC-P256');
  const signer = forged ? generateTestKey('EC-P256') : device;
  // basicConstraints cA TRUE: refused by the policy (csr_ca_requested).
  const extensions = [...(o.caRequested ? [extensionDer(OID.basicConstraints, new Uint8Array([0x30, 0x03, 0x01, 0x01, 0xff]), true)] : []), ...(o.extensions ?? [])];
  const attributes = extensions.length ? [extensionRequest(...extensions)] : undefined;
  return csrPem(buildCsr({ subject: nameDer([[OID.commonName, cn]]), spki: device.spki, attributes, signatureAlgorithm: signer.signatureAlgorithm, sign: signer.sign }));
}

/**
 * The four-eyes gate, then `between` (another replica's change: a close, a disable) before the service goes on: the
 * window between the gate's read of the session and the change's transaction.
 */
export class LateGate extends AdminSessionGate {
  constructor(
    sessions: AdminSessionRepository,
    private readonly between: (sessionId: string) => Promise<unknown>,
  ) {
    super(sessions);
  }
  override async require(actor: Actor, sessionId: string | undefined) {
    const s = await super.require(actor, sessionId);
    await this.between(s.id);
    return s;
  }
}
