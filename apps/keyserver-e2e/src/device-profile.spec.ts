import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { domainToASCII } from 'node:url';
import * as asn1js from 'asn1js';
import { OID, derTlv, toPem } from '@keyserver/pki';
import { clientCredentialsToken, demoTenant, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, auditOf, bffUserToken, type Api } from './admin-helpers';
import { operationBody, run } from './operations-support';

interface Problem {
  code: string;
}
interface ProfileView {
  keyid: string;
  validityDays: number;
  allowedSanTypes: string[];
  maxSanCount: number;
  dnsDomains: string[];
  uriSchemes: string[];
  keyAgreement: boolean;
}

const oid = (o: string) => new Uint8Array(new asn1js.ObjectIdentifier({ value: o }).toBER(false));

/** An Ed25519 CSR with the identity point as key and the forgery R = identity, S = 0 (valid for any message in OpenSSL). */
function smallOrderEd25519Csr(cn: string): string {
  const identity = new Uint8Array(32);
  identity[0] = 1;
  const spki = derTlv(0x30, derTlv(0x30, oid(OID.ed25519)), derTlv(0x03, new Uint8Array([0]), identity));
  const subject = derTlv(0x30, derTlv(0x31, derTlv(0x30, oid(OID.commonName), derTlv(0x0c, new Uint8Array(Buffer.from(cn))))));
  const info = derTlv(0x30, new Uint8Array([2, 1, 0]), subject, spki, derTlv(0xa0));
  const sig = new Uint8Array([...identity, ...new Uint8Array(32)]);
  return toPem('CERTIFICATE REQUEST', derTlv(0x30, info, derTlv(0x30, oid(OID.ed25519)), derTlv(0x03, new Uint8Array([0]), sig)));
}

describe('device profile of CA keys (PUT/GET /api/v1/keys/{keyid}/device-profile) and its enforcement', () => {
  let p: RunningPlatform;
  let ada: Api;
  let alan: Api;
  let ci: Api;
  let work: string;
  let session: string;
  let operationid: string;

  const f = (name: string) => join(work, name);
  function csr(name: string, subject: string, extra: string[] = []): string {
    run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-subj', subject, ...extra, '-out', f(`${name}.csr`)]);
    return readFileSync(f(`${name}.csr`), 'utf8');
  }
  const issue = (pem: string) => ci<Problem & { certificate: string; ignoredExtensions: string[] }>('POST', '/api/v1/certificates', { body: { operationid, keyid: 'demo-ca-dev', csr: pem } });

  const tight = { validityDays: 30, allowedSanTypes: ['dns'], maxSanCount: 1, dnsDomains: ['devices.demo.test'], uriSchemes: [], keyAgreement: false };

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-profile-'));
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    const demoCi = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
    if (!demoCi?.clientSecret) throw new Error('demo-ci missing');
    ci = apiAs(p, await clientCredentialsToken(p.facts, demoCi.clientId, demoCi.clientSecret));
    session = await activeSession(ada, alan, 'device profile of the development CA');
    const op = await ci<{ id: string }>('POST', '/api/v1/operations', { body: operationBody('demo-ca-dev', 20) });
    expect(op.status).toBe(201);
    operationid = op.body.id;
  });

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('shows the default profile to whoever may see the CA key; FW keys have none; unknown keys are 404', async () => {
    for (const api of [ada, ci]) {
      const r = await api<ProfileView>('GET', '/api/v1/keys/demo-ca-dev/device-profile');
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ keyid: 'demo-ca-dev', validityDays: 365, allowedSanTypes: ['dns', 'uri'], maxSanCount: 8, dnsDomains: [], uriSchemes: ['https', 'urn'], keyAgreement: false });
    }
    expect((await ada<Problem>('GET', '/api/v1/keys/demo-fw-dev/device-profile')).body.code).toBe('device_profile_not_applicable');
    expect((await ada<Problem>('GET', '/api/v1/keys/nope/device-profile')).status).toBe(404);
  });

  it.each([
    ['fail without an admin session', () => ada<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: tight }), 403, 'admin_session_required'],
    ['fail a CI client (not an administrator)', () => ci<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: tight, session }), 403, undefined],
    ['fail on a FW key', () => ada<Problem>('PUT', '/api/v1/keys/demo-fw-dev/device-profile', { body: tight, session }), 409, 'device_profile_not_applicable'],
    ['fail on an unknown key', () => ada<Problem>('PUT', '/api/v1/keys/nope/device-profile', { body: tight, session }), 404, 'key_not_found'],
    ['fail an extra field', () => ada<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: { ...tight, ekus: ['serverAuth'] }, session }), 400, 'validation_failed'],
    ['fail a missing field', () => ada<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: { ...tight, keyAgreement: undefined }, session }), 400, 'validation_failed'],
    ['fail a wildcard domain', () => ada<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: { ...tight, dnsDomains: ['*.demo.test'] }, session }), 400, 'validation_failed'],
    ['fail a non-ASCII domain', () => ada<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: { ...tight, dnsDomains: ['dévices.demo.test'] }, session }), 400, 'validation_failed'],
    ['fail a zero-width character in a domain', () => ada<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: { ...tight, dnsDomains: ['devices\u200b.demo.test'] }, session }), 400, 'validation_failed'],
    ['fail an IP address as domain', () => ada<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: { ...tight, dnsDomains: ['10.0.0.1'] }, session }), 400, 'validation_failed'],
    ['fail a SAN type twice', () => ada<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: { ...tight, allowedSanTypes: ['dns', 'dns'] }, session }), 400, 'validation_failed'],
    ['fail an unknown SAN type', () => ada<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: { ...tight, allowedSanTypes: ['otherName'] }, session }), 400, 'validation_failed'],
    ['fail a validity of 0 days', () => ada<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: { ...tight, validityDays: 0 }, session }), 400, 'validation_failed'],
    ['fail a huge SAN cap', () => ada<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: { ...tight, maxSanCount: 1e9 }, session }), 400, 'validation_failed'],
    ['fail an upper-case URI scheme', () => ada<Problem>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: { ...tight, uriSchemes: ['HTTPS'] }, session }), 400, 'validation_failed'],
  ])('%s: refused, audited, nothing changed', async (_n, send, status, code) => {
    const r = await send();
    expect(r.status).toBe(status);
    if (code) expect(r.body.code).toBe(code);
    const now = await ada<ProfileView>('GET', '/api/v1/keys/demo-ca-dev/device-profile');
    expect(now.body.validityDays).toBe(365);
  });

  it('records refused changes in the audit log as DENIED with their code', async () => {
    const denied = (await auditOf(ada, 'action=key.device_profile')).filter((e) => e.outcome === 'DENIED');
    expect(denied.map((e) => e.errorCode)).toEqual(expect.arrayContaining(['admin_session_required', 'validation_failed', 'device_profile_not_applicable']));
  });

  it('changes the profile inside an ACTIVE admin session, audited with before and after and the session', async () => {
    const r = await ada<ProfileView>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body: tight, session });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ keyid: 'demo-ca-dev', ...tight });
    expect((await ci<ProfileView>('GET', '/api/v1/keys/demo-ca-dev/device-profile')).body).toEqual({ keyid: 'demo-ca-dev', ...tight });
    const [event] = (await auditOf(ada, 'action=key.device_profile')).filter((e) => e.outcome === 'SUCCESS');
    expect(event).toMatchObject({ keyid: 'demo-ca-dev', adminSessionId: session, details: { deviceProfile: { before: { validityDays: 365 }, after: tight } } });
  });

  it.each([
    ['fail a dNSName outside the allowed domains', '/CN=device-a', ['-addext', 'subjectAltName=DNS:device-a.evil.test'], 'csr_san_not_allowed'],
    ['fail a suffix that is not a label boundary', '/CN=device-a', ['-addext', 'subjectAltName=DNS:xdevices.demo.test'], 'csr_san_not_allowed'],
    ['fail two SANs over a cap of one', '/CN=device-a', ['-addext', 'subjectAltName=DNS:a.devices.demo.test,DNS:b.devices.demo.test'], 'csr_san_too_many'],
    ['fail a URI (type not allowed any more)', '/CN=device-a', ['-addext', 'subjectAltName=URI:urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100'], 'csr_san_not_allowed'],
    ['fail two CNs', '/CN=device-a/CN=device-b', [], 'csr_subject_duplicate_attribute'],
    ['fail the DN of the development CA', '/C=DK/O=Demo Devices Ltd/CN=Demo Devices Development Device CA', [], 'csr_subject_reserved'],
    ['fail the DN of the ROOT, in upper case and another order', '/CN=DEMO DEVICES ROOT CA/O=demo devices ltd/C=DK', [], 'csr_subject_reserved'],
    ['fail a right-to-left override in the CN', '/CN=device\u202egpj.exe', [], 'csr_subject_invalid'],
    ['fail the CN of the development CA under another organisation (UIs show the CN alone)', '/CN=Demo Devices Development Device CA/O=Other Ltd', [], 'csr_subject_reserved'],
    ['fail the DN of the ROOT with an invisible soft hyphen in its CN', '/C=DK/O=Demo Devices Ltd/CN=Demo Devices\u00ad Root CA', [], 'csr_subject_invalid'],
    ['fail a fake A-label (xn-- that is not Punycode) in a dNSName', '/CN=device-a', ['-addext', 'subjectAltName=DNS:xn--abc.devices.demo.test'], 'csr_san_invalid'],
    // Look-alike letters: UTS #39 Highly Restrictive per subject value and per IDN label (ADR 0010 addendum).
    ['fail mixed Latin+Cyrillic: the CN of the development CA with a Cyrillic е', '/CN=Demo D\u0435vices Development Device CA/O=Other Ltd', [], 'csr_subject_invalid'],
    ['fail mixed Latin+Greek: a Greek omicron in a Latin CN', '/CN=R\u03bfot device', [], 'csr_subject_invalid'],
    ['fail mixed Latin+Cyrillic in an IDN label of a dNSName', '/CN=device-a', ['-addext', `subjectAltName=DNS:${domainToASCII('p\u0430ypal')}.devices.demo.test`], 'csr_san_invalid'],
    // Whole-script look-alikes and mixed numbers (ADR 0010 addendum "whole-script look-alikes, mixed numbers, ...").
    ['fail a CN written only in Cyrillic look-alikes of Latin letters (СА)', '/CN=\u0421\u0410', [], 'csr_subject_invalid'],
    ['fail an all-Cyrillic look-alike IDN label (рауре)', '/CN=device-a', ['-addext', `subjectAltName=DNS:${domainToASCII('\u0440\u0430\u0443\u0440\u0435')}.devices.demo.test`], 'csr_san_invalid'],
    ['fail ASCII and fullwidth digits in one CN', '/CN=device-1\uff12', [], 'csr_subject_invalid'],
    // Compatibility characters: a value must be its own NFKC form (ADR 0010 addendum of session 25).
    ['fail the CN of the ROOT in mathematical bold letters', '/CN=\u{1d403}\u{1d41e}\u{1d426}\u{1d428} Devices Root CA/O=Other Ltd', [], 'csr_subject_invalid'],
    ['fail the CN of the ROOT in full-width letters (before: csr_subject_reserved)', '/CN=\uff24\uff45\uff4d\uff4f Devices Root CA/O=Other Ltd', [], 'csr_subject_invalid'],
    ['fail a ligature in the CN', '/CN=\ufb01rmware-7', [], 'csr_subject_invalid'],
    ['fail an IDN label whose U-label starts with a hyphen (xn----eha)', '/CN=device-a', ['-addext', 'subjectAltName=DNS:xn----eha.devices.demo.test'], 'csr_san_invalid'],
    // NFKC-stable look-alikes, IDNA2008 and the Bidi Rule (ADR 0010 addendum of session 26).
    ['fail the CN of the ROOT in Latin small capitals', '/CN=\u1d05\u1d07\u1d0d\u1d0f Devices Root CA/O=Other Ltd', [], 'csr_subject_invalid'],
    ['fail an IPA script g in the CN', '/CN=\u0261ateway-7', [], 'csr_subject_invalid'],
    ['fail a modifier letter apostrophe in the CN', '/CN=O\u02bcBrien device', [], 'csr_subject_invalid'],
    ['fail an estimated sign drawn as e in the CN', '/CN=D\u212emo device', [], 'csr_subject_invalid'],
    ['fail an emoji IDN label in a dNSName (IDNA2008 DISALLOWED)', '/CN=device-a', ['-addext', 'subjectAltName=DNS:xn--ls8h.devices.demo.test'], 'csr_san_invalid'],
    ['fail a middle dot not between two l in an IDN label (CONTEXTO)', '/CN=device-a', ['-addext', 'subjectAltName=DNS:xn--ab-0ea.devices.demo.test'], 'csr_san_invalid'],
    ['fail a Hebrew label beside a label starting with a digit (Bidi Rule)', '/CN=device-a', ['-addext', 'subjectAltName=DNS:xn--9dbne9b.1device.devices.demo.test'], 'csr_san_invalid'],
    // Requested extensions: a critical one the profile does not honour refuses the request.
    ['fail a critical extKeyUsage asking for serverAuth', '/CN=device-a', ['-addext', 'extendedKeyUsage=critical,serverAuth'], 'csr_extension_unsupported'],
    ['fail a critical keyUsage asking for keyEncipherment', '/CN=device-a', ['-addext', 'keyUsage=critical,digitalSignature,keyEncipherment'], 'csr_extension_unsupported'],
  ])('%s: 400 with the pki code', async (_n, subject, extra, code) => {
    const r = await issue(csr('refused', subject, ['-utf8', ...extra]));
    expect(r.status).toBe(400);
    expect(r.body.code).toBe(code);
  });

  it('fail an Ed25519 CSR with a small-order key and a forged signature: 400 csr_public_key_invalid, audited', async () => {
    const r = await issue(smallOrderEd25519Csr('forged-device'));
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('csr_public_key_invalid');
    const events = await auditOf(ada, 'action=certificate.issue');
    expect(events.some((e) => e.outcome === 'DENIED' && e.errorCode === 'csr_public_key_invalid')).toBe(true);
  });

  it('ok a request within the profile: issued for at most the profile validity, dNSName lower-cased', async () => {
    const r = await issue(csr('ok', '/CN=device-ok', ['-addext', 'subjectAltName=DNS:Device-OK.Devices.Demo.Test']));
    expect(r.status).toBe(201);
    const x = new X509Certificate(r.body.certificate);
    expect(x.subjectAltName).toBe('DNS:device-ok.devices.demo.test');
    expect(new Date(x.validTo).getTime() - new Date(x.validFrom).getTime()).toBe(30 * 86_400_000);
  });

  it('records a refused critical extension as DENIED csr_extension_unsupported', async () => {
    const events = await auditOf(ada, 'action=certificate.issue');
    expect(events.some((e) => e.outcome === 'DENIED' && e.errorCode === 'csr_extension_unsupported')).toBe(true);
  });

  it('ok an all-Cyrillic CN, a Latin+Han+Katakana O, non-critical extensions not honoured: issued without them, named in the answer and the audit', async () => {
    const r = await issue(csr('ok-scripts', '/CN=Устройство 7/O=Acme 装置 デバイス', ['-utf8', '-addext', 'extendedKeyUsage=serverAuth,clientAuth', '-addext', 'nsComment=factory line 7']));
    expect(r.status).toBe(201);
    expect(r.body.ignoredExtensions).toEqual(['2.5.29.37', '2.16.840.1.113730.1.13']);
    const x = new X509Certificate(r.body.certificate);
    expect(x.subject).toBe('CN=Устройство 7\nO=Acme 装置 デバイス');
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(x.toString()).not.toContain('factory line 7');
    const events = await auditOf(ada, 'action=certificate.issue');
    expect(events.find((e) => e.outcome === 'SUCCESS' && (e.details as { ignoredExtensions?: string[] }).ignoredExtensions)?.details).toMatchObject({ ignoredExtensions: ['2.5.29.37', '2.16.840.1.113730.1.13'] });
  });

  it('serialises concurrent changes: each audit event\'s "before" is the previous change\'s "after"', async () => {
    const bodies = [10, 20, 40, 80].map((validityDays) => ({ ...tight, validityDays }));
    const answers = await Promise.all(bodies.map((body) => ada<ProfileView>('PUT', '/api/v1/keys/demo-ca-dev/device-profile', { body, session })));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    const events = (await auditOf(ada, 'action=key.device_profile')).filter((e) => e.outcome === 'SUCCESS').reverse();
    const changes = events.map((e) => (e.details as { deviceProfile: { before: { validityDays: number }; after: { validityDays: number } } }).deviceProfile);
    for (let i = 1; i < changes.length; i++) expect(changes[i].before.validityDays).toBe(changes[i - 1].after.validityDays);
    const final = await ada<ProfileView>('GET', '/api/v1/keys/demo-ca-dev/device-profile');
    expect(final.body.validityDays).toBe(changes[changes.length - 1].after.validityDays);
  });
});
