// Medium tier: revoking a CA revokes every key below it (docs/adr/0041-revocation-below-a-revoked-ca.md), with the
// real repositories on a real PostgreSQL and a real SoftHSM token (src/testing/medium.ts); CRLs are read with openssl.
import { spawnSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { Permission } from '@keyserver/api-contract';
import type { Actor } from '@keyserver/authz';
import { AdminSessionRepository, AuditRepository, CrlRepository, KeyLifecycleRepository, KeyLimitsRepository, KeyRepository, SubjectRepository, type Db } from '@keyserver/data-access';
import type { HsmSigner } from '@keyserver/pki';
import pino from 'pino';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { CrlService } from '../crl/crl.service';
import { KeysService } from '../keys/keys.service';
import { adminInSession, codeOf, mediumConfig, mediumDatabase, mediumOpenssl, mediumSigner } from '../testing/medium';
import { KeyAdminService } from './key-admin.service';
import { KeyLifecycleService } from './key-lifecycle.service';

describe(`${KeyAdminService.name} revocation (medium: real PostgreSQL and SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_key_revocation');
  const hsm = mediumSigner('ks-key-revocation');
  const openssl = mediumOpenssl('ks-api-medium-key-revocation');
  let db: Db;
  let audit: AuditRepository;
  let keys: KeyRepository;
  let admin: KeyAdminService;
  let lifecycle: KeyLifecycleService;
  let ada: Actor;
  let session: string;

  const build = (signer: HsmSigner) => {
    const config = mediumConfig();
    const logger = pino({ level: 'silent' });
    const views = new KeysService(keys, new KeyLimitsRepository(db), new KeyLifecycleRepository(db));
    const crls = new CrlService(new CrlRepository(db), signer, logger);
    const gate = new AdminSessionGate(new AdminSessionRepository(db));
    return {
      admin: new KeyAdminService(keys, signer, config, logger, gate, new Audited(audit), views, crls),
      lifecycle: new KeyLifecycleService(keys, new KeyLifecycleRepository(db), new SubjectRepository(db), signer, config, logger, gate, new Audited(audit), views, crls),
    };
  };

  beforeAll(async () => {
    db = pg.db;
    audit = new AuditRepository(db);
    keys = new KeyRepository(db);
    ({ admin, lifecycle } = build(hsm.signer));
    ({ admin: ada, session } = await adminInSession(db, Permission.KeysAdmin));
  });

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  const newKeyid = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
  const eventsOf = async (id: string) => (await audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome, e.errorCode ?? null, e.keyid]).reverse();
  /** A key `issuer` certifies; each level ends before the one above it. */
  const create = (service: KeyAdminService, keyid: string, type: 'CA' | 'FW', issuer: string, validityDays: number, pathLen?: number, id = requestId()) =>
    service.create(ada, session, { keyid, type, algorithm: 'EC_P256', requiredApprovers: 0, validityDays, commonName: `${type} ${keyid}`, issuer, ...(pathLen === undefined ? {} : { pathLen }) }, id);
  /** ROOT -> CA (pathLen 1) -> sub-CA -> FW, made by the services in the HSM. */
  const chain = async () => {
    const [root, ca, sub, fw] = [newKeyid('root'), newKeyid('ca'), newKeyid('sub'), newKeyid('fw')];
    await lifecycle.rootCeremony(ada, session, { keyid: root, algorithm: 'EC_P256', subject: { commonName: `Root ${root}` }, validityDays: 3650, mode: 'self-signed' }, requestId());
    await create(admin, ca, 'CA', root, 300, 1);
    await create(admin, sub, 'CA', ca, 200);
    await create(admin, fw, 'FW', sub, 100);
    return { root, ca, sub, fw };
  };
  /** The text of the CRL a key version signed (stored by the refresh the revocation ran), verified against its certificate. */
  const crlText = async (keyid: string, version = 1) => {
    const crls = new CrlRepository(db);
    const scope = await crls.scope(keyid, version);
    const stored = scope ? await crls.stored(scope.versionId) : null;
    if (!scope || !stored) throw new Error(`no CRL stored for ${keyid} v${version}`);
    const r = openssl.run('crl', '-inform', 'DER', '-in', openssl.write(`${keyid}-${version}.crl`, stored.der), '-CAfile', openssl.write(`${keyid}-${version}.pem`, scope.certificatePem), '-verify', '-noout', '-text');
    expect(r.out).toContain('verify OK');
    return r.out.replace(/\s/g, '');
  };
  const serialOnCrl = (serialHex: string) => serialHex.toUpperCase().replace(/^0+/, '');

  it('ok the hierarchy the services make passes RFC 5280 checks of tools we did not write: openssl -x509_strict, certtool, the extensions per role, validity nested, CRL numbers increasing', async () => {
    const k = await chain();
    const fw2 = newKeyid('fw2');
    await create(admin, fw2, 'FW', k.sub, 50);
    const [root, ca, sub, fw] = await Promise.all([k.root, k.ca, k.sub, k.fw].map((x) => keys.getByKeyid(x)));
    const f = (name: string, pem: string) => openssl.write(`${k.root}-${name}.pem`, pem);
    const untrusted = f('untrusted', ca.certificatePem + sub.certificatePem);
    expect(openssl.run('verify', '-x509_strict', '-purpose', 'any', '-CAfile', f('root', root.certificatePem), '-untrusted', untrusted, f('fw', fw.certificatePem)).out).toMatch(/: OK\s*$/);
    const gnutls = spawnSync('certtool', ['--verify-chain', '--infile', f('chain', fw.certificatePem + sub.certificatePem + ca.certificatePem + root.certificatePem)], { encoding: 'utf8' });
    expect(gnutls.stdout).toMatch(/Chain verification output: Verified/);
    const text = (pem: string) => openssl.run('x509', '-noout', '-text', '-in', f(`t-${randomBytes(3).toString('hex')}`, pem)).out;
    const ids = (pem: string) => {
      const t = text(pem);
      return { ski: /Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/.exec(t)?.[1], aki: /Authority Key Identifier:\s*\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(t)?.[1], t };
    };
    const levels = [root, ca, sub, fw];
    for (let i = 0; i < levels.length; i++) {
      const { ski, aki, t } = ids(levels[i].certificatePem);
      const x = new X509Certificate(levels[i].certificatePem);
      // Serial: positive, at most 20 octets, at least 64 bits of entropy, DER-minimal.
      expect(levels[i].certificateSerial).toMatch(/^(?:0[1-9a-f]|[1-7][0-9a-f])(?:[0-9a-f]{2}){7,19}$/);
      // No extension twice.
      const names = [...t.matchAll(/^\s{12}(X509v3 [A-Za-z ]+):/gm)].map((m) => m[1]);
      expect(new Set(names).size).toBe(names.length);
      expect(t).toMatch(i < 3 ? /X509v3 Basic Constraints: critical\s*\n\s*CA:TRUE/ : /X509v3 Basic Constraints: critical\s*\n\s*CA:FALSE/);
      expect(t).toMatch(i < 3 ? /X509v3 Key Usage: critical\s*\n\s*Certificate Sign, CRL Sign\s*\n/ : /X509v3 Key Usage: critical\s*\n\s*Digital Signature\s*\n/);
      expect(x.ca).toBe(i < 3);
      if (i === 1) expect(t).toMatch(/CA:TRUE, pathlen:1/);
      if (i === 2) expect(t).toMatch(/CA:TRUE, pathlen:0/);
      if (i === 3) expect(t).toMatch(/X509v3 Extended Key Usage:\s*\n\s*Code Signing\s*\n/);
      if (i > 0) {
        const parent = new X509Certificate(levels[i - 1].certificatePem);
        expect(aki).toMatch(/^[0-9A-F]{2}(?::[0-9A-F]{2}){7,}$/);
        expect(aki).toBe(ids(levels[i - 1].certificatePem).ski);
        expect(x.issuer).toBe(parent.subject);
        expect(x.checkIssued(parent)).toBe(true);
        expect(+new Date(x.validFrom) >= +new Date(parent.validFrom) && +new Date(x.validTo) <= +new Date(parent.validTo)).toBe(true);
      } else {
        expect(ski).toBeDefined();
      }
    }
    // pathLen 0 below the sub-CA: no CA can be made there.
    expect(await codeOf(create(admin, newKeyid('ca3'), 'CA', k.sub, 10))).toBe('issuer_not_usable');
    // The sub-CA's CRL: its number goes up with each revocation, AKI = its SKI, nextUpdate after thisUpdate, each serial once.
    const numbers: bigint[] = [];
    for (const [keyid, reason] of [[k.fw, 'superseded'], [fw2, 'keyCompromise']] as const) {
      await admin.revoke(ada, session, keyid, { reason }, requestId());
      const scope = await new CrlRepository(db).scope(k.sub, 1);
      const stored = scope && (await new CrlRepository(db).stored(scope.versionId));
      if (!stored) throw new Error('no CRL');
      const out = openssl.run('crl', '-inform', 'DER', '-in', openssl.write(`${keyid}.crl`, stored.der), '-CAfile', f('sub', sub.certificatePem), '-verify', '-noout', '-text').out;
      expect(out).toContain('verify OK');
      numbers.push(BigInt(/X509v3 CRL Number:\s*\n\s*(0x[0-9A-Fa-f]+|[0-9]+)/.exec(out)?.[1] ?? 'x')); // decimal, or hex after 0x
      expect(/Authority Key Identifier:\s*\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(out)?.[1]).toBe(ids(sub.certificatePem).ski);
      expect(stored.nextUpdate.getTime()).toBeGreaterThan(stored.thisUpdate.getTime());
      expect(out.split(serialOnCrl(fw.certificateSerial)).length - 1).toBe(1);
    }
    expect(numbers[1]).toBeGreaterThan(numbers[0]);
  });

  it('ok revoking a CA: the answer lists the sub-CA and the FW key revoked with it, one event each, and every issuer\'s CRL lists them at once', async () => {
    const k = await chain();
    const id = requestId();
    const r = await admin.revoke(ada, session, k.ca, { reason: 'keyCompromise' }, id);
    expect(r.state).toBe('REVOKED');
    expect(r.revokedBelow.map((b) => [b.keyid, b.type, b.issuer, b.previousState, b.versions, b.reason])).toEqual([
      [k.sub, 'CA', k.ca, 'ACTIVE', [1], 'cACompromise'],
      [k.fw, 'FW', k.sub, 'ACTIVE', [1], 'cACompromise'],
    ]);
    expect(await eventsOf(id)).toEqual([
      ['key.revoke', 'SUCCESS', null, k.ca],
      ['key.revoke_cascade', 'SUCCESS', null, k.sub],
      ['key.revoke_cascade', 'SUCCESS', null, k.fw],
    ]);
    for (const keyid of [k.sub, k.fw]) expect((await keys.getByKeyid(keyid)).state).toBe('REVOKED');
    expect((await keys.getByKeyid(k.root)).state).toBe('ACTIVE');
    const [ca, sub, fw] = await Promise.all([k.ca, k.sub, k.fw].map((x) => keys.getByKeyid(x)));
    const root = await crlText(k.root);
    expect(root).toContain(serialOnCrl(ca.certificateSerial));
    expect(root).toContain('KeyCompromise');
    const caCrl = await crlText(k.ca);
    expect(caCrl).toContain(serialOnCrl(sub.certificateSerial));
    expect(caCrl).toContain('CACompromise');
    expect(await crlText(k.sub)).toContain(serialOnCrl(fw.certificateSerial));
  });

  it('fail a key under a CA revoked while its key pair was being generated: issuer_not_usable, audited, nothing stored and the HSM key destroyed again', async () => {
    const k = await chain();
    // The HSM call of the creation is where the revocation of its issuer commits (another administrator, another replica).
    const racing = new Proxy(hsm.signer, {
      get(target, prop) {
        if (prop === 'generateKey')
          return async (...args: Parameters<HsmSigner['generateKey']>) => {
            const generated = await target.generateKey(...args);
            await keys.revoke(k.ca, 'keyCompromise');
            return generated;
          };
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const id = requestId();
    const fw = newKeyid('fw');
    expect(await codeOf(create(build(racing).admin, fw, 'FW', k.ca, 100, undefined, id))).toBe('issuer_not_usable');
    expect(await eventsOf(id)).toEqual([['key.create', 'DENIED', 'issuer_not_usable', fw]]);
    expect((await audit.list({ requestId: id })).items[0].details).toMatchObject({ hsmKey: 'destroyed' });
    expect(await keys.findByKeyid(fw)).toBeNull();
  });

  it('fail a renewal of a key below a revoked CA: key_not_active, the key and its versions stay REVOKED', async () => {
    const k = await chain();
    await admin.revoke(ada, session, k.ca, { reason: 'cACompromise' }, requestId());
    const id = requestId();
    expect(await codeOf(lifecycle.renew(ada, session, k.fw, { validityDays: 30 }, id))).toBe('key_not_active');
    expect((await new KeyLifecycleRepository(db).versions(k.fw)).map((v) => v.state)).toEqual(['REVOKED']);
  });

  it('fail revoking a RETIRED key after its issuer signed its final CRL (a destruction under way): issuer_not_usable, audited, the key stays RETIRED', async () => {
    const k = await chain();
    await lifecycle.retire(ada, session, k.fw, {}, requestId());
    await lifecycle.retire(ada, session, k.sub, {}, requestId());
    // The first step of the sub-CA's destruction; the HSM key and the key row are not gone yet (ADR 0045).
    await new CrlService(new CrlRepository(db), hsm.signer, pino({ level: 'silent' })).finalCrls(k.sub);
    const id = requestId();
    expect(await codeOf(admin.revoke(ada, session, k.fw, { reason: 'keyCompromise' }, id))).toBe('issuer_not_usable');
    expect(await eventsOf(id)).toEqual([['key.revoke', 'DENIED', 'issuer_not_usable', k.fw]]);
    expect((await keys.getByKeyid(k.fw)).state).toBe('RETIRED');
  });
});
