import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_DEVICE_PROFILE } from '@keyserver/api-contract';
import { KeyRepository, SubjectRepository, type Db, type Key, type KeyPermission, type Nature } from '@keyserver/data-access';
import {
  createCaCertificate,
  createFirmwareSigningCertificate,
  createRootCertificate,
  createTimestampingCertificate,
  type HsmKeyInfo,
  type HsmSigner,
  type IssuedCertificate,
} from '@keyserver/pki';
import { fromPkiAlgorithm, hashForAlgorithm, toPkiAlgorithm } from '../keys/key-algorithms';
import { crlUrl } from '../crl/crl-url';

interface DemoKeySpec {
  keyid: string;
  type: 'ROOT' | 'CA' | 'FW' | 'TSA';
  algorithm: 'EC-P256' | 'EC-P384' | 'RSA-3072';
  requiredApprovers: number;
  parent?: string;
  product?: string;
  commonName: string;
  validityDays: number;
}

/**
 * The demo tenant's key hierarchy (issue #5 §10): ROOT, two CAs and two FW keys, dev (0) and prod (2 approvers), and
 * the TSA key that answers RFC 3161 queries and timestamps firmware signatures (ADR 0024).
 */
export const DEMO_KEYS: DemoKeySpec[] = [
  { keyid: 'demo-root', type: 'ROOT', algorithm: 'EC-P384', requiredApprovers: 2, commonName: 'Demo Devices Root CA', validityDays: 3650 },
  { keyid: 'demo-ca-dev', type: 'CA', algorithm: 'EC-P256', requiredApprovers: 0, parent: 'demo-root', commonName: 'Demo Devices Development Device CA', validityDays: 1825 },
  { keyid: 'demo-ca-prod', type: 'CA', algorithm: 'EC-P256', requiredApprovers: 2, parent: 'demo-root', commonName: 'Demo Devices Production Device CA', validityDays: 1825 },
  { keyid: 'demo-fw-dev', type: 'FW', algorithm: 'EC-P256', requiredApprovers: 0, parent: 'demo-root', product: 'demo-gadget', commonName: 'Demo Gadget Firmware (development)', validityDays: 730 },
  { keyid: 'demo-fw-prod', type: 'FW', algorithm: 'RSA-3072', requiredApprovers: 2, parent: 'demo-root', product: 'demo-gadget', commonName: 'Demo Gadget Firmware (production)', validityDays: 730 },
  { keyid: 'demo-tsa', type: 'TSA', algorithm: 'EC-P256', requiredApprovers: 0, parent: 'demo-root', commonName: 'Demo Devices Time-Stamping Authority', validityDays: 3000 },
];

interface DemoTenantFile {
  tenant: { id: string; name: string };
  ciClients: { name: string; clientId: string; servicePrincipalOid: string; appRoles: string[] }[];
  users: { username: string; name: string; oid: string; natures: string[] }[];
}

const DEV_KEYS = ['demo-ca-dev', 'demo-fw-dev'];
const ALL_SIGNING_KEYS = ['demo-ca-dev', 'demo-ca-prod', 'demo-fw-dev', 'demo-fw-prod'];

/** Roles of the demo tenant: natures plus per-key permissions. */
const DEMO_ROLES: { name: string; natures: Nature[]; keys: [string[], KeyPermission[]][]; description: string }[] = [
  { name: 'demo-administrators', natures: ['ADMINISTRATOR'], keys: [], description: 'Administrators (four-eyes admin sessions)' },
  { name: 'demo-approvers', natures: ['APPROVER'], keys: [[ALL_SIGNING_KEYS, ['APPROVE']]], description: 'Approve operations on every demo key' },
  { name: 'demo-orderers', natures: ['ORDERER', 'PROVISIONER', 'SIGNER'], keys: [[ALL_SIGNING_KEYS, ['ORDER', 'SIGN', 'ISSUE']]], description: 'Order operations and sign or issue under them' },
  { name: 'demo-auditors', natures: ['AUDITOR'], keys: [], description: 'Read the audit log' },
  {
    name: 'demo-ci',
    natures: ['ORDERER', 'SIGNER', 'PROVISIONER'],
    keys: [
      [DEV_KEYS, ['ORDER', 'SIGN', 'ISSUE']],
      [['demo-fw-prod'], ['SIGN']],
    ],
    description: 'CI pipelines: order, sign and issue on development keys; sign on the production FW key',
  },
];

const NATURE_ROLE: Record<string, string> = {
  administrator: 'demo-administrators',
  approver: 'demo-approvers',
  orderer: 'demo-orderers',
  provisioner: 'demo-orderers',
  auditor: 'demo-auditors',
};

async function issueFor(
  signer: HsmSigner,
  spec: DemoKeySpec,
  key: HsmKeyInfo,
  parent: { key: HsmKeyInfo; pem: string } | undefined,
  publicUrl: string,
  notBefore: Date,
  notAfter: Date,
): Promise<IssuedCertificate> {
  const subject = { commonName: spec.commonName, organization: 'Demo Devices Ltd', country: 'DK' };
  if (spec.type === 'ROOT') return createRootCertificate(signer, key, { subject, notBefore, notAfter });
  if (!parent) throw new Error(`${spec.keyid}: parent key missing`);
  const issuer = { key: parent.key, certificate: parent.pem };
  // Demo keys are created at version 1 (their issuer's too).
  const crlDistributionPointUrl = crlUrl(publicUrl, String(spec.parent), 1);
  if (spec.type === 'CA') return createCaCertificate(signer, issuer, key, { subject, notBefore, notAfter, crlDistributionPointUrl });
  if (spec.type === 'TSA') return createTimestampingCertificate(signer, issuer, key, { subject, notBefore, notAfter, crlDistributionPointUrl });
  return createFirmwareSigningCertificate(signer, issuer, key, { subject, notBefore, notAfter, crlDistributionPointUrl });
}

/**
 * Idempotent: creates the demo keys inside the HSM (non-extractable) with their certificates, and the demo
 * subjects and roles. Keys already in the database are kept.
 */
export async function seedDemoTenant(deps: { db: Db; signer: HsmSigner; logger: Logger; publicUrl: string; tenantFile?: string }): Promise<void> {
  const { db, signer, logger } = deps;
  const keys = new KeyRepository(db);
  const subjects = new SubjectRepository(db);
  const file = deps.tenantFile ?? join(process.cwd(), 'config', 'demo-tenant.json');
  const tenant = JSON.parse(readFileSync(file, 'utf8')) as DemoTenantFile;

  const made = new Map<string, { key: HsmKeyInfo; pem: string; row: Key }>();
  for (const spec of DEMO_KEYS) {
    const existing = await keys.findByKeyid(spec.keyid);
    if (existing) {
      made.set(spec.keyid, { key: await signer.getKey(existing.hsmKeyId), pem: existing.certificatePem, row: existing });
      continue;
    }
    const hsmKey = await signer.generateKey({ algorithm: spec.algorithm, label: spec.keyid });
    const parent = spec.parent ? made.get(spec.parent) : undefined;
    // Children start a second after their issuer and end before it, so no validity exceeds the issuer's.
    const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000 + (spec.parent ? 1000 : 0));
    const notAfter = new Date(notBefore.getTime() + spec.validityDays * 86_400_000);
    const cert = await issueFor(signer, spec, hsmKey, parent, deps.publicUrl, notBefore, notAfter);
    const algorithm = fromPkiAlgorithm(spec.algorithm);
    const row = await keys.create({
      keyid: spec.keyid,
      type: spec.type,
      algorithm,
      hash: hashForAlgorithm(algorithm),
      requiredApprovers: spec.requiredApprovers,
      hsmKeyId: hsmKey.hsmKeyId,
      parentKeyid: spec.parent ?? null,
      certificatePem: cert.certificatePem,
      certificateSerial: cert.serialHex,
      notBefore,
      notAfter,
      product: spec.product ?? null,
      profile: spec.type === 'CA' ? { ...DEFAULT_DEVICE_PROFILE } : {},
    });
    made.set(spec.keyid, { key: hsmKey, pem: cert.certificatePem, row });
    logger.info({ keyid: spec.keyid, algorithm: toPkiAlgorithm(algorithm) }, 'demo key created in the HSM');
  }

  for (const role of DEMO_ROLES) {
    await subjects.upsertRole(role.name, role.natures, role.description);
    for (const [keyids, perms] of role.keys) {
      for (const keyid of keyids) await subjects.setRoleKeyPermissions(role.name, keyid, perms);
    }
  }

  const ensureSubject = async (kind: 'USER' | 'CLIENT', oid: string, displayName: string, username: string | null, roles: string[]) => {
    const found = await subjects.findByTidOid(tenant.tenant.id, oid);
    if (found) return;
    await subjects.create({ kind, tid: tenant.tenant.id, oid, displayName, username, roles });
  };
  for (const u of tenant.users) {
    const roles = [...new Set(u.natures.map((n) => NATURE_ROLE[n]).filter(Boolean))];
    if (roles.length === 0) continue; // an Entra user the Keyserver does not know: stays an unknown principal
    await ensureSubject('USER', u.oid, u.name, u.username, roles);
  }
  for (const c of tenant.ciClients) {
    if (c.name === 'demo-norole') continue;
    await ensureSubject('CLIENT', c.servicePrincipalOid, c.name, null, ['demo-ci']);
  }
  logger.info({ keys: made.size, roles: DEMO_ROLES.length }, 'demo tenant seeded');
}
