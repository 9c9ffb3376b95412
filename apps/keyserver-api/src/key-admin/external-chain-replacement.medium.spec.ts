// Medium tier: the external chain (and certificate) of an imported ROOT replaced when the offline CA above it renews
// (ADR 0020 addendum "the renewed external chain"), on a real PostgreSQL and a real SoftHSM token; what is stored is
// checked with openssl.
import { randomBytes, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import fc from 'fast-check';
import * as pkijs from 'pkijs';
import { Permission } from '@keyserver/api-contract';
import type { Actor } from '@keyserver/authz';
import { AdminSessionRepository, AuditRepository, CrlRepository, KeyLifecycleRepository, KeyLimitsRepository, KeyRepository, OperationRepository, SubjectRepository, type Db } from '@keyserver/data-access';
import { akiExtension, basicConstraintsExtension, buildName, createRootCertificate, keyUsageExtension, nameOf, OID, signCertificate, skiExtension, splitPemCertificates, type HsmKeyInfo } from '@keyserver/pki';
import pino from 'pino';
import { AdminSessionGate } from '../admin-sessions/admin-session-gate';
import { Audited } from '../common/audited';
import { CrlService } from '../crl/crl.service';
import { KeysService } from '../keys/keys.service';
import { certificateChain, externalChainAbove, usableKey } from '../certificates/key-chain';
import { adminInSession, codeOf, mediumActor, mediumConfig, mediumDatabase, mediumOpenssl, mediumSigner } from '../testing/medium';
import { KeyAdminService } from './key-admin.service';
import { KeyLifecycleService } from './key-lifecycle.service';

const DAY = 86_400_000;
const whole = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

describe(`${KeyLifecycleService.name} replacing the external chain of an imported ROOT (medium: real PostgreSQL and SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_chain_replace');
  const hsm = mediumSigner('ks-chain-replace');
  const openssl = mediumOpenssl('ks-api-medium-chain-replace');
  const now = Date.now();
  let db: Db;
  let keys: KeyRepository;
  let versions: KeyLifecycleRepository;
  let audit: AuditRepository;
  let lifecycle: KeyLifecycleService;
  let admin: KeyAdminService;
  let ada: Actor;
  let session: string;
  let anchor: { key: HsmKeyInfo; name: string; pem: string };
  let intermediate: { key: HsmKeyInfo; name: string; pem: string };

  const requestId = () => `req-${randomBytes(4).toString('hex')}`;
  const newKeyid = (prefix: string) => `${prefix}-${randomBytes(4).toString('hex')}`;
  const eventsOf = async (id: string) => (await audit.list({ requestId: id })).items.map((e) => [e.action, e.outcome, e.errorCode ?? null]);
  /** The problem a refusal becomes: status and code (never a message). */
  const problemOf = (p: Promise<unknown>): Promise<[number, string]> =>
    p.then(
      () => [200, 'ok'],
      (e: { status?: number; code?: string }) => [e.status ?? 500, e.code ?? 'untyped'],
    );

  /** A CA certificate for `spki` signed by `by` (`subject`: a Name; `pathLen` optional), as an offline CA issues it. */
  const certify = async (by: { key: HsmKeyInfo; name: string }, subject: string | pkijs.RelativeDistinguishedNames, spki: Uint8Array, notBefore: Date, notAfter: Date, pathLen?: number) =>
    (
      await signCertificate(hsm.signer, by.key, {
        issuerName: buildName({ commonName: by.name }),
        subject: typeof subject === 'string' ? buildName({ commonName: subject }) : subject,
        spki,
        validity: { notBefore, notAfter },
        extensions: [basicConstraintsExtension(true, pathLen), keyUsageExtension(['keyCertSign', 'cRLSign']), skiExtension(spki), akiExtension(by.key.spki)],
      })
    ).certificatePem;

  /** The offline intermediate renewed: same key pair and name, a new certificate from the anchor. */
  const renewedIntermediate = (notBefore: Date, notAfter: Date, pathLen?: number) => certify(anchor, intermediate.name, intermediate.key.spki, notBefore, notAfter, pathLen);

  /** An externally certified ROOT (ceremony + import below the intermediate, which ends in 10 days). */
  const externalRoot = async (): Promise<{ keyid: string; key: HsmKeyInfo; name: string }> => {
    const keyid = newKeyid('online');
    const name = `Online ${keyid}`;
    await lifecycle.rootCeremony(ada, session, { keyid, algorithm: 'EC_P256', subject: { commonName: name }, validityDays: 3650, mode: 'external' }, requestId());
    const key = await hsm.signer.getKey((await versions.findPending(keyid))?.hsmKeyId ?? '');
    await lifecycle.importCertificate(ada, session, keyid, { certificate: await certify(intermediate, name, key.spki, whole(now - DAY), whole(now + 3000 * DAY)), chain: [intermediate.pem, anchor.pem] }, requestId());
    return { keyid, key, name };
  };
  const caBelow = async (root: string, validityDays: number) => {
    const ca = newKeyid('ca');
    await admin.create(ada, session, { keyid: ca, type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays, commonName: `CA ${ca}`, issuer: root, pathLen: 0 }, requestId());
    return ca;
  };
  const stored = async (keyid: string) => {
    const k = await keys.getByKeyid(keyid);
    return { certificatePem: k.certificatePem, issuerChainPem: k.issuerChainPem, currentVersion: k.currentVersion, hsmKeyId: k.hsmKeyId, pathLen: k.pathLen };
  };

  beforeAll(async () => {
    db = pg.db;
    keys = new KeyRepository(db);
    versions = new KeyLifecycleRepository(db);
    audit = new AuditRepository(db);
    const config = mediumConfig();
    const logger = pino({ level: 'silent' });
    const views = new KeysService(keys, new KeyLimitsRepository(db), new KeyLifecycleRepository(db));
    const crls = new CrlService(new CrlRepository(db), hsm.signer, logger);
    const gate = new AdminSessionGate(new AdminSessionRepository(db));
    lifecycle = new KeyLifecycleService(keys, versions, new SubjectRepository(db), hsm.signer, config, logger, gate, new Audited(audit), views, crls);
    admin = new KeyAdminService(keys, hsm.signer, config, logger, gate, new Audited(audit), views, crls);
    ({ admin: ada, session } = await adminInSession(db, Permission.KeysAdmin));

    const tag = randomBytes(3).toString('hex');
    const anchorKey = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: `rep-anchor-${tag}` });
    anchor = { key: anchorKey, name: `Offline Anchor ${tag}`, pem: '' };
    anchor.pem = (await createRootCertificate(hsm.signer, anchorKey, { subject: { commonName: anchor.name }, notBefore: whole(now - 2 * DAY), notAfter: whole(now + 3650 * DAY) })).certificatePem;
    const intermediateKey = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: `rep-intermediate-${tag}` });
    intermediate = { key: intermediateKey, name: `Offline Intermediate ${tag}`, pem: '' };
    intermediate.pem = await certify(anchor, intermediate.name, intermediateKey.spki, whole(now - 2 * DAY), whole(now + 10 * DAY));
  });

  describe('the offline intermediate renewed (same key pair): only the chain changes', () => {
    it('ok the renewed chain replaces the stored one: the ROOT keeps its certificate and version, issuance below it reaches the new end, one SUCCESS event', async () => {
      const root = await externalRoot();
      const before = await stored(root.keyid);
      // Before: nothing below the ROOT may outlive the old intermediate (10 days).
      expect(await codeOf(admin.create(ada, session, { keyid: newKeyid('ca'), type: 'CA', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 30, commonName: 'CA 30', issuer: root.keyid, pathLen: 0 }, requestId()))).toBe('validity_exceeds_root');
      const renewed = await renewedIntermediate(whole(now - 60_000), whole(now + 400 * DAY));
      const id = requestId();
      expect(await codeOf(lifecycle.replaceExternalChain(ada, session, root.keyid, { chain: [renewed, anchor.pem] }, id))).toBe('ok');
      expect(await eventsOf(id)).toEqual([['key.external_chain_replace', 'SUCCESS', null]]);
      const after = await stored(root.keyid);
      expect([after.certificatePem, after.currentVersion, after.hsmKeyId]).toEqual([before.certificatePem, before.currentVersion, before.hsmKeyId]);
      expect(splitPemCertificates(after.issuerChainPem ?? '').map((p) => new X509Certificate(p).fingerprint256)).toEqual([renewed, anchor.pem].map((p) => new X509Certificate(p).fingerprint256));

      // After: a CA for 30 days is issued, and openssl verifies it up to the anchor through the renewed intermediate
      // past the old intermediate's end.
      const ca = await caBelow(root.keyid, 30);
      const chain = await certificateChain(keys, versions, await keys.getByKeyid(ca));
      expect(chain.map((p) => new X509Certificate(p).fingerprint256)).toEqual([(await keys.getByKeyid(ca)).certificatePem, after.certificatePem, renewed, anchor.pem].map((p) => new X509Certificate(p).fingerprint256));
      const leaf = openssl.write(`${ca}.pem`, chain[0]);
      const untrusted = openssl.write(`${ca}-untrusted.pem`, chain.slice(1, -1).join(''));
      const anchorFile = openssl.write('anchor.pem', anchor.pem);
      const at = (ms: number) => openssl.run('verify', '-x509_strict', '-attime', String(Math.floor(ms / 1000)), '-CAfile', anchorFile, '-untrusted', untrusted, leaf);
      expect(at(now + 20 * DAY)).toMatchObject({ status: 0 });
      // The sign path reads the new bound too.
      expect(await codeOf(usableKey(keys, ca, 'CA', 'certificates', now + 20 * DAY))).toBe('ok');
      expect((await externalChainAbove(keys, await keys.getByKeyid(ca)))?.notAfter.getTime()).toBe(whole(now + 400 * DAY).getTime());
    });

    it('ok a notBefore a minute ahead of this clock (an offline CA whose clock runs ahead): inside the allowed skew', async () => {
      const root = await externalRoot();
      const renewed = await renewedIntermediate(whole(now + 60_000), whole(now + 400 * DAY));
      expect(await codeOf(lifecycle.replaceExternalChain(ada, session, root.keyid, { chain: [renewed, anchor.pem] }, requestId()))).toBe('ok');
    });
  });

  describe('the ROOT certificate re-issued by the offline CA (same key pair, same subject)', () => {
    it('ok the re-issued certificate becomes a new version of the same key pair; the keys below chain to it and verify with openssl', async () => {
      const root = await externalRoot();
      const ca = await caBelow(root.keyid, 9);
      const before = await stored(root.keyid);
      const renewed = await renewedIntermediate(whole(now - 60_000), whole(now + 400 * DAY));
      const reissued = await certify(intermediate, root.name, root.key.spki, whole(now - 60_000), whole(now + 3650 * DAY));
      const id = requestId();
      expect(await codeOf(lifecycle.replaceExternalChain(ada, session, root.keyid, { certificate: reissued, chain: [renewed, anchor.pem] }, id))).toBe('ok');
      expect(await eventsOf(id)).toEqual([['key.external_chain_replace', 'SUCCESS', null]]);
      const after = await stored(root.keyid);
      expect(after.currentVersion).toBe(before.currentVersion + 1);
      expect(after.hsmKeyId).toBe(before.hsmKeyId);
      expect(new X509Certificate(after.certificatePem).fingerprint256).toBe(new X509Certificate(reissued).fingerprint256);
      const all = await versions.versions(root.keyid);
      expect(all.map((v) => [v.version, v.state, v.hsmKeyId])).toEqual([
        [1, 'RETIRED', before.hsmKeyId],
        [2, 'ACTIVE', before.hsmKeyId],
      ]);
      // The CA certified by version 1 verifies under version 2 (same key, same name): its chain now carries it.
      const chain = await certificateChain(keys, versions, await keys.getByKeyid(ca));
      expect(new X509Certificate(chain[1]).fingerprint256).toBe(new X509Certificate(reissued).fingerprint256);
      const leaf = openssl.write(`${ca}.pem`, chain[0]);
      const untrusted = openssl.write(`${ca}-untrusted.pem`, chain.slice(1, -1).join(''));
      const anchorFile = openssl.write('anchor.pem', anchor.pem);
      expect(openssl.run('verify', '-x509_strict', '-attime', String(Math.floor((now + 5 * DAY) / 1000)), '-CAfile', anchorFile, '-untrusted', untrusted, leaf)).toMatchObject({ status: 0 });
    });
  });

  describe('a key certified by an earlier version of a rotated external ROOT is judged by that version\'s chain', () => {
    // v1 of the ROOT under the intermediate (ends in 10 days) certified a CA for 9 days; the ROOT was then rotated
    // (a new key pair) under another offline intermediate that ends in 5 days.
    let root: { keyid: string; key: HsmKeyInfo; name: string };
    let ca: string;
    let v1: string;
    const otherEnd = whole(now + 5 * DAY);
    beforeAll(async () => {
      root = await externalRoot();
      v1 = (await keys.getByKeyid(root.keyid)).certificatePem;
      ca = await caBelow(root.keyid, 9);
      const otherKey = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: `rep-other-intermediate-${randomBytes(3).toString('hex')}` });
      const other = { key: otherKey, name: `Other Intermediate ${randomBytes(3).toString('hex')}` };
      const otherPem = await certify(anchor, other.name, otherKey.spki, whole(now - DAY), otherEnd);
      await lifecycle.rotate(ada, session, root.keyid, { validityDays: 365 }, requestId());
      const pending = await hsm.signer.getKey((await versions.findPendingVersion(root.keyid))?.hsmKeyId ?? '');
      await lifecycle.importCertificate(ada, session, root.keyid, { certificate: await certify(other, root.name, pending.spki, whole(now - DAY), whole(now + 3000 * DAY)), chain: [otherPem, anchor.pem] }, requestId());
      expect((await keys.getByKeyid(root.keyid)).currentVersion).toBe(2);
    });

    it("ok the CA's chain runs through version 1 and its own intermediate up to the anchor (openssl verifies it)", async () => {
      const chain = await certificateChain(keys, versions, await keys.getByKeyid(ca));
      expect(chain.map((p) => new X509Certificate(p).fingerprint256)).toEqual([(await keys.getByKeyid(ca)).certificatePem, v1, intermediate.pem, anchor.pem].map((p) => new X509Certificate(p).fingerprint256));
      const leaf = openssl.write(`${ca}.pem`, chain[0]);
      const untrusted = openssl.write(`${ca}-untrusted.pem`, chain.slice(1, -1).join(''));
      const anchorFile = openssl.write('anchor.pem', anchor.pem);
      expect(openssl.run('verify', '-x509_strict', '-attime', String(Math.floor((now + 7 * DAY) / 1000)), '-CAfile', anchorFile, '-untrusted', untrusted, leaf)).toMatchObject({ status: 0 });
    });

    it("ok the CA signs after the newer version's intermediate ended, inside its own path (7 days; version 2's chain ends at 5)", async () => {
      expect((await externalChainAbove(keys, await keys.getByKeyid(ca)))?.notAfter.getTime()).toBe(new X509Certificate(intermediate.pem).validToDate.getTime());
      expect(await codeOf(usableKey(keys, ca, 'CA', 'certificates', now + 7 * DAY))).toBe('ok');
      expect(await codeOf(usableKey(keys, ca, 'CA', 'certificates', new X509Certificate(intermediate.pem).validToDate.getTime()))).toBe('key_not_usable');
    });

    it('ok a key issued below that CA may reach past the newer chain, up to its own path (8 days)', async () => {
      const fw = newKeyid('fw');
      expect(await codeOf(admin.create(ada, session, { keyid: fw, type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 8, commonName: `FW ${fw}`, issuer: ca }, requestId()))).toBe('ok');
    });

    // The operation-window check (SQL, at ordering and approval) reads the chain of the ROOT version that certified
    // the path, as the sign path does: a window both allow is one the key can sign in (ADR 0017, ADR 0020 addenda).
    // The clock is frozen `at` days from now so that a window of hours lies past version 2's chain (5 days).
    const windowOf = (keyid: string, from: number, to: number) =>
      codeOf(new OperationRepository(db).create({ description: 'past the newer chain', ordererId: ada.subjectId, validFrom: new Date(now + from * DAY), validTo: new Date(now + to * DAY), keys: [{ keyid, usagesAllowed: 1 }], now: new Date(now + from * DAY) }));
    it.each<[string, () => Promise<string>, string, number, number, string]>([
      ["ok an operation of the CA in its own path, after version 2's chain ended (6 to 7 days)", async () => ca, 'CA', 6, 7, 'ok'],
      ['ok an operation of an FW key below that CA, after version 2\'s chain ended (6 to 7.5 days)', async () => {
        const fw = newKeyid('fw');
        await admin.create(ada, session, { keyid: fw, type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 8, commonName: `FW ${fw}`, issuer: ca }, requestId());
        return fw;
      }, 'FW', 6, 7.5, 'ok'],
      ["fail an operation of the CA past its own certificate (9 days; version 1's chain ends at 10)", async () => ca, 'CA', 8.5, 9.5, 'window_outside_certificate'],
      ["fail an operation of the ROOT itself past its current version's chain (5 days; its certificate ends in 3000)", async () => root.keyid, 'ROOT', 4.5, 5.5, 'window_outside_certificate'],
    ])('%s', async (_n, keyOf, type, from, to, expected) => {
      const keyid = await keyOf();
      expect(await windowOf(keyid, from, to)).toBe(expected);
      // The sign path agrees: usable at the window's end exactly when the window was allowed.
      expect(await codeOf(usableKey(keys, keyid, type as 'ROOT' | 'CA' | 'FW', 'operations', now + to * DAY - 1000))).toBe(expected === 'ok' ? 'ok' : 'key_not_usable');
    });

    it("ok an approval of the CA's operation after version 2's chain ended (6 to 7 days): judged again by the same rule", async () => {
      const approver = await mediumActor(db, { natures: ['APPROVER'], grants: ['APPROVE'], keyids: [ca] }, Permission.OperationsApprove);
      const operations = new OperationRepository(db);
      await db.prisma.key.update({ where: { keyid: ca }, data: { requiredApprovers: 1 } });
      try {
        const op = await operations.create({ description: 'approved past the newer chain', ordererId: ada.subjectId, validFrom: new Date(now + 6 * DAY), validTo: new Date(now + 7 * DAY), keys: [{ keyid: ca, usagesAllowed: 1 }], now: new Date(now + 6 * DAY) });
        const approved = await operations.approve(op.id, [ca], approver.subjectId, undefined, () => new Date(now + 6.5 * DAY));
        expect(approved.operation.state).toBe('APPROVED');
      } finally {
        await db.prisma.key.update({ where: { keyid: ca }, data: { requiredApprovers: 0 } });
      }
    });

    it('fail a key issued by the ROOT now (version 2) past its chain: validity_exceeds_root', async () => {
      expect(await codeOf(admin.create(ada, session, { keyid: newKeyid('fw'), type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 6, commonName: 'FW six', issuer: root.keyid }, requestId()))).toBe('validity_exceeds_root');
    });
  });

  describe('a key below an earlier ROOT version whose chain is not known (superseded before chains were kept per version)', () => {
    // As above, then version 1's recorded chain removed, as the migration left versions superseded before it: both the
    // operation-window check and the sign path fall back to the ROOT's current chain (5 days), as before.
    it('fail an operation of the CA after the current chain ended; the sign path refuses the same instant', async () => {
      const root = await externalRoot();
      const ca = await caBelow(root.keyid, 9);
      const otherKey = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: `rep-unknown-intermediate-${randomBytes(3).toString('hex')}` });
      const other = { key: otherKey, name: `Unknown Intermediate ${randomBytes(3).toString('hex')}` };
      const otherPem = await certify(anchor, other.name, otherKey.spki, whole(now - DAY), whole(now + 5 * DAY));
      await lifecycle.rotate(ada, session, root.keyid, { validityDays: 365 }, requestId());
      const pending = await hsm.signer.getKey((await versions.findPendingVersion(root.keyid))?.hsmKeyId ?? '');
      await lifecycle.importCertificate(ada, session, root.keyid, { certificate: await certify(other, root.name, pending.spki, whole(now - DAY), whole(now + 3000 * DAY)), chain: [otherPem, anchor.pem] }, requestId());
      await db.prisma.$executeRaw`UPDATE "key_version" SET "issuerChainPem" = NULL WHERE "version" = 1 AND "keyId" = (SELECT "id" FROM "key" WHERE "keyid" = ${root.keyid})`;
      const window = { description: 'unknown chain', ordererId: ada.subjectId, validFrom: new Date(now + 6 * DAY), validTo: new Date(now + 7 * DAY), keys: [{ keyid: ca, usagesAllowed: 1 }], now: new Date(now + 6 * DAY) };
      expect(await codeOf(new OperationRepository(db).create(window))).toBe('window_outside_certificate');
      expect(await codeOf(usableKey(keys, ca, 'CA', 'operations', now + 6 * DAY))).toBe('key_not_usable');
      expect(await codeOf(new OperationRepository(db).create({ ...window, validFrom: new Date(now + 4 * DAY), validTo: new Date(now + 4.9 * DAY), now: new Date(now + 4 * DAY) }))).toBe('ok');
    });
  });

  describe('refusals: a 4xx problem with a stable code, audited DENIED, nothing changed', () => {
    let root: { keyid: string; key: HsmKeyInfo; name: string };
    let renewed: string;
    beforeAll(async () => {
      root = await externalRoot();
      await caBelow(root.keyid, 9);
      renewed = await renewedIntermediate(whole(now - 60_000), whole(now + 400 * DAY));
    });

    const otherKey = () => hsm.signer.generateKey({ algorithm: 'EC-P256', label: `rep-other-${randomBytes(3).toString('hex')}` });
    const garbage = '-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGUgYXQgYWxsLCBqdXN0IHNvbWUgdGV4dCBpbiBhIFBFTSBhcm1vdXI=\n-----END CERTIFICATE-----\n';
    const cases: [string, () => Promise<unknown>, number, string][] = [
      ['fail a certificate for another key pair (same subject)', async () => ({ certificate: await certify(intermediate, root.name, (await otherKey()).spki, whole(now - 60_000), whole(now + 3650 * DAY)), chain: [renewed, anchor.pem] }), 400, 'certificate_key_mismatch'],
      ['fail a certificate for the same key pair under another subject', async () => ({ certificate: await certify(intermediate, `${root.name} 2`, root.key.spki, whole(now - 60_000), whole(now + 3650 * DAY)), chain: [renewed, anchor.pem] }), 400, 'subject_mismatch'],
      [
        'fail the same subject text in another string type (PrintableString, not the UTF8String the keys below name as their issuer)',
        async () => ({
          certificate: await certify(intermediate, nameOf([new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.PrintableString({ value: root.name }) })]), root.key.spki, whole(now - 60_000), whole(now + 3650 * DAY)),
          chain: [renewed, anchor.pem],
        }),
        400,
        'subject_mismatch',
      ],
      ['fail garbage in a PEM armour as the certificate', async () => ({ certificate: garbage, chain: [renewed, anchor.pem] }), 400, 'invalid_certificate'],
      ['fail garbage in a PEM armour in the chain', async () => ({ chain: [garbage, anchor.pem] }), 400, 'invalid_certificate'],
      ['fail text that is no PEM at all as the chain', async () => ({ chain: ['x'.repeat(100)] }), 400, 'invalid_certificate'],
      ['fail a chain that does not link (the anchor alone)', async () => ({ chain: [anchor.pem] }), 400, 'chain_invalid'],
      ['fail a chain in the wrong order (anchor first)', async () => ({ chain: [anchor.pem, renewed] }), 400, 'chain_invalid'],
      ['fail an intermediate that expired', async () => ({ chain: [await renewedIntermediate(whole(now - 20 * DAY), whole(now - DAY)), anchor.pem] }), 400, 'chain_invalid'],
      ['fail an intermediate valid only from tomorrow (past the allowed clock skew)', async () => ({ chain: [await renewedIntermediate(whole(now + DAY), whole(now + 400 * DAY)), anchor.pem] }), 400, 'chain_invalid'],
      ['fail a re-issued ROOT certificate that expired', async () => ({ certificate: await certify(intermediate, root.name, root.key.spki, whole(now - 20 * DAY), whole(now - DAY)), chain: [renewed, anchor.pem] }), 400, 'chain_invalid'],
      [
        'fail a chain up to another anchor (another key pair under the same name)',
        async () => {
          const k = await otherKey();
          const fake = (await createRootCertificate(hsm.signer, k, { subject: { commonName: anchor.name }, notBefore: whole(now - DAY), notAfter: whole(now + 3650 * DAY) })).certificatePem;
          return { chain: [await certify({ key: k, name: anchor.name }, intermediate.name, intermediate.key.spki, whole(now - 60_000), whole(now + 400 * DAY)), fake] };
        },
        400,
        'anchor_mismatch',
      ],
      ['fail the chain already stored (nothing to replace)', async () => ({ chain: splitPemCertificates((await keys.getByKeyid(root.keyid)).issuerChainPem ?? '') }), 409, 'external_chain_unchanged'],
      ['fail an intermediate ending before a CA below the ROOT (5 days; the CA runs 9)', async () => ({ chain: [await renewedIntermediate(whole(now - 60_000), whole(now + 5 * DAY)), anchor.pem] }), 409, 'keys_below_outlive_chain'],
      ['fail a re-issued ROOT certificate ending before a CA below it', async () => ({ certificate: await certify(intermediate, root.name, root.key.spki, whole(now - 60_000), whole(now + 5 * DAY)), chain: [renewed, anchor.pem] }), 409, 'keys_below_outlive_chain'],
      ['fail an intermediate whose pathLen leaves no CA level below the ROOT (a CA is there)', async () => ({ chain: [await renewedIntermediate(whole(now - 60_000), whole(now + 400 * DAY), 1), anchor.pem] }), 409, 'chain_path_len_too_small'],
      ['fail a certificate of 65 KiB (over the PEM limit)', async () => ({ certificate: `-----BEGIN CERTIFICATE-----\n${'A'.repeat(66 * 1024)}\n-----END CERTIFICATE-----\n`, chain: [renewed, anchor.pem] }), 400, 'validation_failed'],
      ['fail nine chain certificates', async () => ({ chain: Array.from({ length: 9 }, () => anchor.pem) }), 400, 'validation_failed'],
      ['fail an empty chain', async () => ({ chain: [] }), 400, 'validation_failed'],
      ['fail an unknown field', async () => ({ chain: [renewed, anchor.pem], version: 2 }), 400, 'validation_failed'],
    ];

    it.each(cases)('%s', async (_n, body, status, code) => {
      const before = await stored(root.keyid);
      const id = requestId();
      expect(await problemOf(lifecycle.replaceExternalChain(ada, session, root.keyid, await body(), id))).toEqual([status, code]);
      expect(await eventsOf(id)).toEqual([['key.external_chain_replace', 'DENIED', code]]);
      expect(await stored(root.keyid)).toEqual(before);
      expect((await versions.versions(root.keyid)).length).toBe(before.currentVersion);
    });

    it.each([
      ['fail a self-signed ROOT (no external chain to replace)', 'self-signed', 409, 'not_externally_certified'],
      ['fail a CA key', 'ca', 409, 'not_externally_certified'],
      ['fail an unknown key', 'unknown', 404, 'key_not_found'],
    ] as const)('%s', async (_n, which, status, code) => {
      let keyid = newKeyid('missing');
      if (which === 'self-signed') {
        keyid = newKeyid('root');
        await lifecycle.rootCeremony(ada, session, { keyid, algorithm: 'EC_P256', subject: { commonName: `Root ${keyid}` }, validityDays: 3650, mode: 'self-signed' }, requestId());
      }
      if (which === 'ca') keyid = await caBelow(root.keyid, 5);
      const id = requestId();
      expect(await problemOf(lifecycle.replaceExternalChain(ada, session, keyid, { chain: [renewed, anchor.pem] }, id))).toEqual([status, code]);
      expect(await eventsOf(id)).toEqual([['key.external_chain_replace', 'DENIED', code]]);
    });

    it('fail in a session one administrator activated alone: ceremony_needs_two_administrators (the ROOT is a trust anchor)', async () => {
      const solo = await mediumActor(db, { natures: ['ADMINISTRATOR'] }, Permission.KeysAdmin);
      const soloSession = (await new AdminSessionRepository(db).open({ description: 'alone', creatorId: solo.subjectId, requiredApprovals: 0, expiresAt: new Date(Date.now() + 3_600_000) })).id;
      const before = await stored(root.keyid);
      const id = requestId();
      expect(await problemOf(lifecycle.replaceExternalChain(solo, soloSession, root.keyid, { chain: [renewed, anchor.pem] }, id))).toEqual([403, 'ceremony_needs_two_administrators']);
      expect(await eventsOf(id)).toEqual([['key.external_chain_replace', 'DENIED', 'ceremony_needs_two_administrators']]);
      expect(await stored(root.keyid)).toEqual(before);
    });

    it('fail hostile bodies of any shape (property): only 4xx with a known code, audited, nothing changed', async () => {
      const before = await stored(root.keyid);
      const known = new Set(['validation_failed', 'invalid_certificate', 'chain_invalid', 'certificate_key_mismatch', 'issuer_not_ca', 'subject_mismatch', 'anchor_mismatch', 'external_chain_unchanged']);
      const pem = fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.uint8Array({ minLength: 0, maxLength: 400 }).map((b) => `-----BEGIN CERTIFICATE-----\n${Buffer.from(b).toString('base64')}\n-----END CERTIFICATE-----\n`),
        fc.constantFrom(renewed, anchor.pem, intermediate.pem).chain((p) => fc.nat({ max: p.length }).map((n) => p.slice(0, n))),
        fc.constantFrom(renewed, anchor.pem, intermediate.pem),
      );
      const body = fc.oneof(
        fc.record({ certificate: pem, chain: fc.array(pem, { maxLength: 9 }) }, { requiredKeys: ['chain'] }),
        fc.record({ chain: fc.array(pem, { maxLength: 3 }) }),
        fc.jsonValue({ maxDepth: 3 }),
      );
      await fc.assert(
        fc.asyncProperty(body, async (b) => {
          const id = requestId();
          const [status, code] = await problemOf(lifecycle.replaceExternalChain(ada, session, root.keyid, b, id));
          if (code === 'ok') return true; // a valid renewed chain drawn by chance is a legitimate replacement
          expect(status).toBeGreaterThanOrEqual(400);
          expect(status).toBeLessThan(500);
          expect(known.has(code)).toBe(true);
          expect(await eventsOf(id)).toEqual([['key.external_chain_replace', 'DENIED', code]]);
          return true;
        }),
        { numRuns: 60, seed: 20261217 },
      );
      const after = await stored(root.keyid);
      expect(after.certificatePem).toBe(before.certificatePem);
    });
  });

  describe('exactly once under concurrency', () => {
    /**
     * Runs `changes` while a test transaction holds the keyid's lock, released once all of them wait for a lock: each read
     * the key before either could commit, so they race for real (a change made after another committed is a second,
     * legitimate change).
     */
    const race = async (keyid: string, changes: (() => Promise<string>)[]): Promise<string[]> => {
      const holder = await db.pool.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`keyid:${keyid}`]);
        const running = changes.map((c) => c());
        for (let i = 0; i < 400; i++) {
          // Waiting for the keyid's lock, or (a change of the same session) for the session's administrators' rows,
          // which the first holds from the start of its transaction (ADR 0012 addendum: the session is held first).
          const { rows } = await holder.query<{ n: number }>(`SELECT count(*)::int AS "n" FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
          if (rows[0].n >= changes.length) break;
          await new Promise((r) => setTimeout(r, 25));
        }
        await holder.query('COMMIT');
        return await Promise.all(running);
      } finally {
        holder.release();
      }
    };

    it('ok of two different replacements at once exactly one commits; the other is version_conflict, one SUCCESS event (3 rounds)', async () => {
      for (let round = 0; round < 3; round++) {
        const root = await externalRoot();
        const a = await renewedIntermediate(whole(now - 60_000), whole(now + (400 + round) * DAY));
        const b = await renewedIntermediate(whole(now - 120_000), whole(now + (500 + round) * DAY));
        const codes = await race(root.keyid, [a, b].map((c) => () => codeOf(lifecycle.replaceExternalChain(ada, session, root.keyid, { chain: [c, anchor.pem] }, requestId()))));
        expect([...codes].sort()).toEqual(['ok', 'version_conflict']);
        const successes = (await audit.list({ keyid: root.keyid })).items.filter((e) => e.action === 'key.external_chain_replace' && e.outcome === 'SUCCESS');
        expect(successes).toHaveLength(1);
        const winner = codes[0] === 'ok' ? a : b;
        expect(new X509Certificate(splitPemCertificates((await keys.getByKeyid(root.keyid)).issuerChainPem ?? '')[0]).fingerprint256).toBe(new X509Certificate(winner).fingerprint256);
      }
    });

    it('ok two identical replacements at once: one commits, the other version_conflict', async () => {
      const root = await externalRoot();
      const a = await renewedIntermediate(whole(now - 60_000), whole(now + 444 * DAY));
      const codes = await race(root.keyid, [0, 1].map(() => () => codeOf(lifecycle.replaceExternalChain(ada, session, root.keyid, { chain: [a, anchor.pem] }, requestId()))));
      expect([...codes].sort()).toEqual(['ok', 'version_conflict']);
      // Sent again later: the chain is in place, nothing to do.
      expect(await codeOf(lifecycle.replaceExternalChain(ada, session, root.keyid, { chain: [a, anchor.pem] }, requestId()))).toBe('external_chain_unchanged');
    });

    it('ok two re-issued ROOT certificates at once: one new version, the other version_conflict', async () => {
      const root = await externalRoot();
      const renewed = await renewedIntermediate(whole(now - 60_000), whole(now + 400 * DAY));
      const certs = await Promise.all([3000, 3100].map((d) => certify(intermediate, root.name, root.key.spki, whole(now - 60_000), whole(now + d * DAY))));
      const codes = await race(root.keyid, certs.map((c) => () => codeOf(lifecycle.replaceExternalChain(ada, session, root.keyid, { certificate: c, chain: [renewed, anchor.pem] }, requestId()))));
      expect([...codes].sort()).toEqual(['ok', 'version_conflict']);
      expect((await keys.getByKeyid(root.keyid)).currentVersion).toBe(2);
      expect((await versions.versions(root.keyid)).map((v) => v.version)).toEqual([1, 2]);
    });
  });
});
