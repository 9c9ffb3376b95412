import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, sign as nodeSign, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { freePort, repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, type Api } from './admin-helpers';
import { call, ciToken, operationBody } from './operations-support';

// RFC 3161 (issue 17 item 3, ADR 0024): the Keyserver as a TSA at a public route, and the signature timestamps of
// CMS firmware signatures, checked by tools we did not write (openssl ts, openssl cms) and by ksctl.

const KSCTL = join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js');
const TS_ATTR = '1.2.840.113549.1.9.16.2.14';
const DAY = 86_400_000;

const sh = (program: string, args: string[]) => {
  const r = spawnSync(program, args, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
};
const ok = (program: string, args: string[]) => {
  const r = sh(program, args);
  if (r.status !== 0) throw new Error(`${program} ${args.join(' ')}: ${r.out}`);
  return r.out;
};
/** ksctl offline: no token, no API. */
const ksctl = (...args: string[]) => {
  const r = spawnSync(process.execPath, [KSCTL, '--json', ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' }, timeout: 60_000 });
  return { status: r.status, json: r.stdout.trim() ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
};

const ab = (b: Uint8Array) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/** What a broken or hostile TSA changes in an honest token before it signs it again with its own key (ADR 0046). */
type Twist = 'resigned' | 'genTime+2min' | 'no-ess' | 'ess-other' | 'genTime+10min' | 'genTime-10min' | 'ess-issuer-serial' | 'ess-issuer-serial-other';
const ESS_V1 = '1.2.840.113549.1.9.16.2.12';
const ESS_V2 = '1.2.840.113549.1.9.16.2.47';
const MESSAGE_DIGEST = '1.2.840.113549.1.9.4';
const tlv = (tag: number, body: Buffer) => {
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
};
/** The issuer Name (DER as the certificate encodes it) and the serial INTEGER (DER) of a certificate. */
function issuerAndSerial(certDer: Buffer): { issuer: Buffer; serial: Buffer } {
  const [, serial, , issuer] = ((asn1js.fromBER(ab(certDer)).result as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence).valueBlock.value;
  return { issuer: Buffer.from((issuer as asn1js.BaseBlock).valueBeforeDecodeView), serial: Buffer.from((serial as asn1js.BaseBlock).valueBeforeDecodeView) };
}
/**
 * openssl's reply with its token changed by `twist` and signed again with the TSA's key `keyPem` (EC P-256,
 * ecdsa-with-SHA256 as openssl signed it): the ESS signing-certificate attribute dropped or naming `otherDer`, or
 * given an issuerSerial (openssl writes none) naming the signer `signerDer` or, with the signer's hash, `otherDer`
 * (same issuer, another serial), or the genTime moved (message-digest updated); `resigned` changes nothing, the
 * control that the forging is sound.
 */
function twisted(reply: Buffer, twist: Twist, keyPem: string, otherDer: Buffer, signerDer: Buffer): Buffer {
  const [status, tokenEl] = (asn1js.fromBER(ab(reply)).result as asn1js.Sequence).valueBlock.value;
  const sd = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(ab(Buffer.from((tokenEl as asn1js.BaseBlock).valueBeforeDecodeView))).content });
  const si = sd.signerInfos[0];
  let attrs = (si.signedAttrs as pkijs.SignedAndUnsignedAttributes).attributes;
  if (twist === 'no-ess') attrs = attrs.filter((a) => a.type !== ESS_V1 && a.type !== ESS_V2);
  if (twist === 'ess-other') {
    // SigningCertificateV2 { certs { ESSCertIDv2 { certHash = SHA-256 of another certificate } } } (hashAlgorithm DEFAULT sha256)
    const names = new asn1js.Sequence({ value: [new asn1js.Sequence({ value: [new asn1js.Sequence({ value: [new asn1js.OctetString({ valueHex: ab(createHash('sha256').update(otherDer).digest()) })] })] })] });
    attrs = attrs.map((a) => (a.type === ESS_V2 ? new pkijs.Attribute({ type: ESS_V2, values: [names] }) : a));
  }
  if (twist === 'ess-issuer-serial' || twist === 'ess-issuer-serial-other') {
    const named = issuerAndSerial(twist === 'ess-issuer-serial' ? signerDer : otherDer);
    // ESSCertIDv2 { certHash = SHA-256 of the signer, issuerSerial { GeneralNames { [4] issuer }, serialNumber } }
    const issuerSerial = tlv(0x30, Buffer.concat([tlv(0x30, tlv(0xa4, named.issuer)), named.serial]));
    const certId = tlv(0x30, Buffer.concat([tlv(0x04, createHash('sha256').update(signerDer).digest()), issuerSerial]));
    const names = asn1js.fromBER(ab(tlv(0x30, tlv(0x30, certId)))).result;
    attrs = attrs.map((a) => (a.type === ESS_V2 ? new pkijs.Attribute({ type: ESS_V2, values: [names] }) : a));
  }
  const shift = { 'genTime+2min': 2, 'genTime+10min': 10, 'genTime-10min': -10 }[twist as string];
  if (shift) {
    const tst = Buffer.from((sd.encapContentInfo.eContent as asn1js.OctetString).getValue());
    const gen = (asn1js.fromBER(ab(tst)).result as asn1js.Sequence).valueBlock.value[4] as asn1js.GeneralizedTime;
    const before = Buffer.from(gen.valueBeforeDecodeView);
    const text = new Date(gen.toDate().getTime() + shift * 60_000).toISOString().slice(0, 19).replace(/[-T:]/g, '') + 'Z';
    const after = tlv(0x18, Buffer.from(text));
    expect(after.length).toBe(before.length); // openssl states whole seconds: same length, same TSTInfo otherwise
    const at = tst.indexOf(before);
    const moved = Buffer.concat([tst.subarray(0, at), after, tst.subarray(at + before.length)]);
    sd.encapContentInfo.eContent = new asn1js.OctetString({ valueHex: ab(moved) });
    attrs = attrs.map((a) => (a.type === MESSAGE_DIGEST ? new pkijs.Attribute({ type: MESSAGE_DIGEST, values: [new asn1js.OctetString({ valueHex: ab(createHash('sha256').update(moved).digest()) })] }) : a));
  }
  // DER: a SET OF in the order of its encodings.
  attrs = [...attrs].sort((x, y) => Buffer.compare(Buffer.from(x.toSchema().toBER(false)), Buffer.from(y.toSchema().toBER(false))));
  const toBeSigned = Buffer.from(new asn1js.Set({ value: attrs.map((a) => a.toSchema()) }).toBER(false));
  si.signedAttrs = new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes: attrs });
  si.signature = new asn1js.OctetString({ valueHex: ab(nodeSign('sha256', toBeSigned, keyPem)) });
  const token = Buffer.from(new pkijs.ContentInfo({ contentType: '1.2.840.113549.1.7.2', content: sd.toSchema(true) }).toSchema().toBER(false));
  return tlv(0x30, Buffer.concat([Buffer.from((status as asn1js.BaseBlock).valueBeforeDecodeView), token]));
}
const signedDataOf = (p7s: Buffer) => new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(ab(p7s)).content });
/** The signature value and the timestamp token of the first SignerInfo, byte for byte. */
function tokenOf(p7s: Buffer): { signature: Buffer; token?: Buffer } {
  const si = signedDataOf(p7s).signerInfos[0];
  const attr = si.unsignedAttrs?.attributes.find((a) => a.type === TS_ATTR);
  return { signature: Buffer.from(si.signature.valueBlock.valueHexView), token: attr ? Buffer.from((attr.values[0] as asn1js.BaseBlock).valueBeforeDecodeView) : undefined };
}
/** The same CMS with its unsigned attributes replaced (or dropped): the signature itself is untouched. */
function withUnsigned(p7s: Buffer, token?: Buffer): Buffer {
  const sd = signedDataOf(p7s);
  sd.signerInfos[0].unsignedAttrs = token
    ? new pkijs.SignedAndUnsignedAttributes({ type: 1, attributes: [new pkijs.Attribute({ type: TS_ATTR, values: [asn1js.fromBER(ab(token)).result] })] })
    : undefined;
  return Buffer.from(new pkijs.ContentInfo({ contentType: '1.2.840.113549.1.7.2', content: sd.toSchema(true) }).toSchema().toBER(false));
}

async function upload(api: string, token: string, q: Record<string, string>, body: Buffer): Promise<{ status: number; body: Buffer; type: string }> {
  const r = await fetch(`${api}/api/v1/firmware/signatures?${new URLSearchParams(q)}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
    body: new Uint8Array(body),
  });
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()), type: r.headers.get('content-type') ?? '' };
}

describe('RFC 3161 time-stamping', () => {
  let p: RunningPlatform;
  let work: string;
  let ci: string;
  const f = (n: string) => join(work, n);
  const tsa = (body: Uint8Array, type = 'application/timestamp-query') =>
    fetch(`${p.env.urls.api}/api/v1/tsa`, { method: 'POST', headers: { 'content-type': type }, body: new Uint8Array(body) });
  const newOp = async (keyid: string, usages = 1) => {
    const r = await call<{ id: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody(keyid, usages));
    if (r.status !== 201) throw new Error(`operation: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.id;
  };
  const fwSign = async (keyid: string, image: Buffer) => upload(p.env.urls.api, ci, { operationid: await newOp(keyid), keyid, description: 'e2e timestamped firmware' }, image);

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-tsa-'));
    ci = await ciToken(p);
    const [root] = await sql<{ certificatePem: string }>(p, `SELECT "certificatePem" FROM "key" WHERE keyid = 'demo-root'`);
    writeFileSync(f('root.pem'), root.certificatePem);
  });

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('issues the seeded TSA key a certificate under the ROOT whose only extended key usage is timeStamping, critical', async () => {
    const [k] = await sql<{ certificatePem: string; type: string }>(p, `SELECT "certificatePem", type FROM "key" WHERE keyid = 'demo-tsa'`);
    expect(k.type).toBe('TSA');
    writeFileSync(f('tsa.pem'), k.certificatePem);
    expect(ok('openssl', ['x509', '-in', f('tsa.pem'), '-noout', '-ext', 'extendedKeyUsage'])).toMatch(/Extended Key Usage: critical\s+Time Stamping\s*$/);
    expect(ok('openssl', ['verify', '-CAfile', f('root.pem'), '-purpose', 'timestampsign', f('tsa.pem')])).toContain('OK');
  });

  it.each([
    ['SHA-256 with a nonce and certReq', ['-sha256', '-cert']],
    ['SHA-512 with a nonce, no certReq', ['-sha512']],
  ])('ok %s: openssl ts -verify accepts the reply, -reply -text shows it, the register holds its serial', async (_n, args) => {
    writeFileSync(f('data.bin'), randomBytes(1000));
    ok('openssl', ['ts', '-query', '-data', f('data.bin'), ...args, '-out', f('q.tsq')]);
    const r = await tsa(readFileSync(f('q.tsq')));
    expect([r.status, r.headers.get('content-type')]).toEqual([200, 'application/timestamp-reply']);
    writeFileSync(f('r.tsr'), Buffer.from(await r.arrayBuffer()));
    const untrusted = args.includes('-cert') ? [] : ['-untrusted', f('tsa.pem')];
    expect(ok('openssl', ['ts', '-verify', '-in', f('r.tsr'), '-queryfile', f('q.tsq'), '-CAfile', f('root.pem'), ...untrusted])).toContain('Verification: OK');
    const text = ok('openssl', ['ts', '-reply', '-in', f('r.tsr'), '-text']);
    expect(text).toContain('Status: Granted.');
    expect(text).toContain('Policy OID: 2.25.71464660586911067804008473257468327654');
    expect(text).toContain('Accuracy: 0x01 seconds, unspecified millis');
    expect(text).toMatch(/Nonce: 0x[0-9A-F]+/);
    const serial = /Serial number: 0x([0-9A-F]+)/.exec(text)?.[1]?.toLowerCase() ?? '';
    const rows = await sql<{ serialHex: string; source: string }>(p, `SELECT "serialHex", source FROM timestamp_token WHERE ltrim("serialHex", '0') = $1`, [serial.replace(/^0+/, '')]);
    expect(rows).toEqual([expect.objectContaining({ source: 'public' })]);
  });

  const der = (tag: number, ...parts: Uint8Array[]) => {
    const body = Buffer.concat(parts);
    return Buffer.concat([Buffer.from([tag, body.length]), body]);
  };
  const oid = (o: string) => Buffer.from(new asn1js.ObjectIdentifier({ value: o }).toBER(false));
  it.each([
    ['fail bytes that are not DER', Buffer.concat([Buffer.from([0x04, 0x01]), randomBytes(62)]) /* one element, then trailing bytes: never one DER element (random bytes were, about once in 256 runs) */, 'query_not_der', 'the data submitted has the wrong format'],
    ['fail an unknown hash algorithm', der(0x30, Buffer.from([2, 1, 1]), der(0x30, der(0x30, oid('1.2.3.4.5')), der(0x04, Buffer.alloc(32)))), 'hash_not_accepted', 'unrecognized or unsupported algorithm'],
    ['fail a 2 MiB query', Buffer.alloc(2 * 1024 * 1024, 0x30), 'query_too_large', 'the data submitted has the wrong format'],
  ])('%s: a TimeStampResp with PKIStatus rejection, and an audit record', async (_n, body, code, failText) => {
    const r = await tsa(body);
    expect([r.status, r.headers.get('content-type')]).toEqual([200, 'application/timestamp-reply']);
    writeFileSync(f('rej.tsr'), Buffer.from(await r.arrayBuffer()));
    const text = ok('openssl', ['ts', '-reply', '-in', f('rej.tsr'), '-text']);
    expect(text).toContain('Status: Rejected.');
    expect(text).toContain(code);
    expect(text).toContain(failText);
    const audited = await sql(p, `SELECT 1 FROM audit_event WHERE action = 'timestamp.rejected' AND "errorCode" = $1`, [code]);
    expect(audited.length).toBeGreaterThan(0);
  });

  it('fail a query that is not application/timestamp-query: 415 problem+json, audited', async () => {
    const r = await tsa(Buffer.from('{}'), 'application/json');
    expect(r.status).toBe(415);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(((await r.json()) as { code: string }).code).toBe('unsupported_media_type');
    const audited = await sql(p, `SELECT 1 FROM audit_event WHERE action = 'timestamp.rejected' AND "errorCode" = 'unsupported_media_type'`);
    expect(audited.length).toBe(1);
  });

  it('timestamps a CMS firmware signature over its signature value; openssl cms -verify, openssl ts -verify and ksctl accept it', async () => {
    const image = randomBytes(100_000);
    writeFileSync(f('fw.bin'), image);
    const r = await fwSign('demo-fw-dev', image);
    expect(r.status).toBe(201);
    writeFileSync(f('fw.p7s'), r.body);
    ok('openssl', ['cms', '-verify', '-binary', '-content', f('fw.bin'), '-inform', 'DER', '-in', f('fw.p7s'), '-CAfile', f('root.pem'), '-purpose', 'any', '-out', '/dev/null']);
    const { signature, token } = tokenOf(r.body);
    expect(token).toBeDefined();
    writeFileSync(f('sig.bin'), signature);
    writeFileSync(f('token.der'), token as Buffer);
    expect(ok('openssl', ['ts', '-verify', '-token_in', '-in', f('token.der'), '-data', f('sig.bin'), '-CAfile', f('root.pem')])).toContain('Verification: OK');
    expect(ok('openssl', ['ts', '-reply', '-token_in', '-in', f('token.der'), '-token_out', '-text'])).toContain('TSA: DirName:');
    const v = ksctl('verify', '--cms', '--signature', f('fw.p7s'), '--file', f('fw.bin'), '--ca', f('root.pem'));
    expect(v.status).toBe(0);
    expect(v.json.signers[0].timestamp).toMatchObject({ tsa: expect.stringContaining('Time-Stamping Authority'), accuracyMs: 1000, chain: [expect.any(String), expect.stringContaining('Root')] });
    const [audit] = await sql<{ details: { timestamp: { serial: string; tsa: string } } }>(p, `SELECT details FROM audit_event WHERE action = 'firmware.sign' AND outcome = 'SUCCESS' ORDER BY seq DESC LIMIT 1`);
    expect(audit.details.timestamp).toMatchObject({ serial: v.json.signers[0].timestamp.serial, tsa: 'self' });
    const [reg] = await sql<{ source: string }>(p, `SELECT source FROM timestamp_token WHERE "serialHex" = $1`, [v.json.signers[0].timestamp.serial]);
    expect(reg.source).toBe('firmware');
  });

  it('stamps with a TSA key administrators create in a four-eyes session; once it is revoked the previous one stamps and its tokens fail a CRL check', async () => {
    const ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    const alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    const body = { keyid: 'e2e-tsa-2', type: 'TSA', algorithm: 'EC_P384', requiredApprovers: 0, validityDays: 365, commonName: 'Second TSA', product: 'ignored' };
    const refused = await ada<{ code: string }>('POST', '/api/v1/keys', { body });
    expect([refused.status, refused.body.code]).toEqual([403, 'admin_session_required']);
    const session = await activeSession(ada, alan, 'second TSA key');
    const created = await ada<{ type: string; product: string | null; certificate: string }>('POST', '/api/v1/keys', { session, body });
    expect([created.status, created.body.type, created.body.product]).toEqual([201, 'TSA', null]);
    writeFileSync(f('tsa2.pem'), created.body.certificate);
    expect(ok('openssl', ['x509', '-in', f('tsa2.pem'), '-noout', '-ext', 'extendedKeyUsage'])).toMatch(/critical\s+Time Stamping\s*$/);
    const stampedBy = async () => {
      ok('openssl', ['ts', '-query', '-data', f('tsa2.pem'), '-sha256', '-cert', '-out', f('q2.tsq')]);
      writeFileSync(f('r2.tsr'), Buffer.from(await (await tsa(readFileSync(f('q2.tsq')))).arrayBuffer()));
      expect(ok('openssl', ['ts', '-verify', '-in', f('r2.tsr'), '-queryfile', f('q2.tsq'), '-CAfile', f('root.pem')])).toContain('Verification: OK');
      return /TSA: DirName:.*CN\s?=\s?([^,/\n]+)/.exec(ok('openssl', ['ts', '-reply', '-in', f('r2.tsr'), '-text']))?.[1]?.trim();
    };
    expect(await stampedBy()).toBe('Second TSA');
    // A firmware signature stamped by it verifies with CRLs, until the TSA key is revoked (a compromised TSA).
    writeFileSync(f('fw2.bin'), randomBytes(3000));
    const signed = await fwSign('demo-fw-dev', readFileSync(f('fw2.bin')));
    expect(signed.status).toBe(201);
    writeFileSync(f('fw2.p7s'), signed.body);
    const withCrls = () => ksctl('verify', '--cms', '--signature', f('fw2.p7s'), '--file', f('fw2.bin'), '--ca', f('root.pem'), '--crl-fetch');
    const before = withCrls();
    // The whole answer in the expectation, so a failure shows ksctl's code and message.
    expect({ status: before.status, json: before.json, stderr: before.stderr }).toMatchObject({ status: 0, json: { revocation: 'checked', signers: [{ timestamp: { tsa: expect.stringContaining('Second TSA') } }] } });
    const revoked = await ada('POST', '/api/v1/keys/e2e-tsa-2/revocation', { session, body: { reason: 'keyCompromise' } });
    expect(revoked.status).toBe(200);
    expect(await stampedBy()).toBe('Demo Devices Time-Stamping Authority');
    const after = withCrls();
    expect([after.status, after.json.code]).toEqual([6, 'certificate_revoked']);
    const audit = await sql<{ action: string }>(p, `SELECT action FROM audit_event WHERE keyid = 'e2e-tsa-2' AND outcome = 'SUCCESS' ORDER BY seq`);
    expect(audit.map((a) => a.action)).toEqual(['key.create', 'key.revoke']);
  });

  describe('a signature whose FW certificate expired since', () => {
    let admin: Api;
    beforeAll(async () => {
      admin = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
      const session = await activeSession(admin, apiAs(p, await bffUserToken(p, 'alan.admin@demo.test')), 'short-lived FW key for the timestamp test');
      const created = await admin('POST', '/api/v1/keys', {
        session,
        body: { keyid: 'e2e-fw-short', type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 1, commonName: 'Short-lived Firmware', product: 'e2e' },
      });
      expect(created.status).toBe(201);
      const role = await admin('PATCH', '/api/v1/roles/demo-ci', {
        session,
        body: {
          keys: [
            { keyid: 'demo-ca-dev', permissions: ['ORDER', 'SIGN', 'ISSUE'] },
            { keyid: 'demo-fw-dev', permissions: ['ORDER', 'SIGN', 'ISSUE'] },
            { keyid: 'demo-fw-prod', permissions: ['SIGN'] },
            { keyid: 'e2e-fw-short', permissions: ['ORDER', 'SIGN'] },
          ],
        },
      });
      expect(role.status).toBe(200);
      ci = await ciToken(p);
    });

    it('ok with the timestamp at --at two days later (inside the TSA chain), fail without it (certificate_expired) or with a token over another signature', async () => {
      const image = randomBytes(5000);
      writeFileSync(f('short.bin'), image);
      const r = await fwSign('e2e-fw-short', image);
      expect(r.status).toBe(201);
      writeFileSync(f('short.p7s'), r.body);
      const [fw] = await sql<{ notAfter: Date }>(p, `SELECT "notAfter" FROM "key" WHERE keyid = 'e2e-fw-short'`);
      const later = new Date(fw.notAfter.getTime() + DAY).toISOString();
      const verify = (file: string, ...more: string[]) => ksctl('verify', '--cms', '--signature', file, '--file', f('short.bin'), '--ca', f('root.pem'), ...more);

      const stamped = verify(f('short.p7s'), '--at', later);
      expect(stamped.status).toBe(0);
      expect(stamped.json.signers[0].validAt).toBe(stamped.json.signers[0].timestamp.time);
      expect(Date.parse(stamped.json.signers[0].timestamp.time)).toBeLessThan(fw.notAfter.getTime());
      // openssl judges the certificate at the time it is told: expired then, valid at the timestamp.
      const at = (d: string) => String(Math.floor(Date.parse(d) / 1000));
      expect(sh('openssl', ['cms', '-verify', '-binary', '-content', f('short.bin'), '-inform', 'DER', '-in', f('short.p7s'), '-CAfile', f('root.pem'), '-purpose', 'any', '-attime', at(later), '-out', '/dev/null']).status).not.toBe(0);
      ok('openssl', ['cms', '-verify', '-binary', '-content', f('short.bin'), '-inform', 'DER', '-in', f('short.p7s'), '-CAfile', f('root.pem'), '-purpose', 'any', '-attime', at(stamped.json.signers[0].timestamp.time), '-out', '/dev/null']);

      writeFileSync(f('bare.p7s'), withUnsigned(r.body));
      ok('openssl', ['cms', '-verify', '-binary', '-content', f('short.bin'), '-inform', 'DER', '-in', f('bare.p7s'), '-CAfile', f('root.pem'), '-purpose', 'any', '-out', '/dev/null']);
      expect(verify(f('bare.p7s')).status).toBe(0);
      const bare = verify(f('bare.p7s'), '--at', later);
      expect([bare.status, bare.json.code]).toEqual([6, 'certificate_expired']);

      const other = await fwSign('demo-fw-dev', randomBytes(100));
      const foreign = tokenOf(other.body).token as Buffer;
      writeFileSync(f('swapped.p7s'), withUnsigned(r.body, foreign));
      const swapped = verify(f('swapped.p7s'), '--at', later);
      expect([swapped.status, swapped.json.code]).toEqual([6, 'timestamp_imprint_mismatch']);
      const garbled = Buffer.from(tokenOf(r.body).token as Buffer);
      garbled[garbled.length - 5] ^= 0x01;
      writeFileSync(f('garbled.p7s'), withUnsigned(r.body, garbled));
      expect(verify(f('garbled.p7s')).status).toBe(6);
    });
  });
});

describe('signature timestamps from a configured TSA URL', () => {
  let p: RunningPlatform;
  let proxy: Server;
  let work: string;
  let mode: 'pinned' | 'sibling' | 'rogue' | 'forward' | 'down' | 'garbage' | Twist = 'pinned';
  let ci: string;
  const f = (n: string) => join(work, n);
  let queries = 0;

  /** An EC P-256 key and certificate: self-signed (a root) or issued by `ca` with the extensions of `section`. */
  const certificate = (name: string, subject: string, section: 'root' | 'tsa', ca?: string) => {
    if (!ca) {
      ok('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-subj', subject, '-days', '30', '-config', f('ext.cnf'), '-extensions', section, '-out', f(`${name}.pem`)]);
      return;
    }
    ok('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-subj', subject, '-config', f('ext.cnf'), '-out', f(`${name}.csr`)]);
    ok('openssl', ['x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${ca}.pem`), '-CAkey', f(`${ca}.key`), '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '20', '-extfile', f('ext.cnf'), '-extensions', section, '-out', f(`${name}.pem`)]);
  };
  /** A CRL of ext-root from the `db` index (clean, or listing ext-tsa), put in place of CMS_TSA_CRL by a rename. */
  const extRootCrl = (db: 'clean' | 'revoked', lastUpdateMs: number, nextUpdateMs: number) => {
    const utc = (ms: number) => new Date(Date.now() + ms).toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
    ok('openssl', ['ca', '-gencrl', '-config', f(`${db}-ca.cnf`), '-keyfile', f('ext-root.key'), '-cert', f('ext-root.pem'), '-crl_lastupdate', utc(lastUpdateMs), '-crl_nextupdate', utc(nextUpdateMs), '-out', f('next.crl')]);
    renameSync(f('next.crl'), f('ext-root.crl'));
  };
  /** An external TSA we did not write: openssl ts -reply signs the query with the named TSA key and its chain. */
  const opensslTsa = (signer: string, ca: string, query: Buffer): Buffer => {
    const n = ++queries;
    writeFileSync(f(`q${n}.tsq`), query);
    ok('openssl', ['ts', '-reply', '-config', f('ts.cnf'), '-queryfile', f(`q${n}.tsq`), '-signer', f(`${signer}.pem`), '-inkey', f(`${signer}.key`), '-chain', f(`${ca}.pem`), '-out', f(`r${n}.tsr`)]);
    return readFileSync(f(`r${n}.tsr`));
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'ks-ext-tsa-'));
    writeFileSync(
      f('ext.cnf'),
      [
        '[req]', 'distinguished_name = dn', '[dn]',
        '[root]', 'basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign, cRLSign', 'subjectKeyIdentifier = hash',
        '[tsa]', 'basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', 'extendedKeyUsage = critical, timeStamping',
        'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid',
      ].join('\n'),
    );
    writeFileSync(f('tsaserial'), '01\n');
    writeFileSync(
      f('ts.cnf'),
      [
        '[tsa]', 'default_tsa = ext', '[ext]', `serial = ${f('tsaserial')}`, 'crypto_device = builtin', 'signer_digest = sha256',
        'default_policy = 1.3.6.1.4.1.99999.43.1', 'digests = sha256, sha384, sha512', 'accuracy = secs:1', 'ordering = no', 'tsa_name = yes',
        'ess_cert_id_chain = no', 'ess_cert_id_alg = sha256',
      ].join('\n'),
    );
    // The TSA the device maker chose (its root is the anchor, its certificate pinned), a second TSA under that root,
    // and a rogue TSA of the same name under a root of its own.
    certificate('ext-root', '/CN=External TSA Root', 'root');
    certificate('ext-tsa', '/CN=External TSA', 'tsa', 'ext-root');
    certificate('ext-sibling', '/CN=External TSA', 'tsa', 'ext-root');
    certificate('rogue-root', '/CN=External TSA Root', 'root');
    certificate('rogue-tsa', '/CN=External TSA', 'tsa', 'rogue-root');
    // The pin as openssl prints it (colon-separated, upper case).
    const pin = ok('openssl', ['x509', '-in', f('ext-tsa.pem'), '-noout', '-fingerprint', '-sha256']).split('=')[1].trim();
    // The external root's CRL as its operator makes it (openssl ca), refreshed in place by the tests below.
    for (const db of ['clean', 'revoked']) {
      writeFileSync(f(`${db}-index.txt`), '');
      writeFileSync(f(`${db}-ca.cnf`), ['[ca]', 'default_ca = d', '[d]', `database = ${f(`${db}-index.txt`)}`, 'default_md = sha256'].join('\n'));
    }
    ok('openssl', ['ca', '-config', f('revoked-ca.cnf'), '-keyfile', f('ext-root.key'), '-cert', f('ext-root.pem'), '-revoke', f('ext-tsa.pem'), '-crl_reason', 'keyCompromise']);
    extRootCrl('clean', -3 * 3_600_000, DAY);

    const port = await freePort();
    proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (mode === 'down') return void res.writeHead(503).end();
        if (mode === 'garbage') return void res.writeHead(200, { 'content-type': 'application/timestamp-reply' }).end(randomBytes(40));
        if (mode === 'forward') {
          // A genuine TSA, only not the one the configuration names: this Keyserver's own.
          const fwd = request(`${p.env.urls.api}/api/v1/tsa`, { method: 'POST', headers: { 'content-type': req.headers['content-type'] ?? '' } }, (up) => {
            res.writeHead(up.statusCode ?? 502, { 'content-type': up.headers['content-type'] ?? '' });
            up.pipe(res);
          });
          return void fwd.end(Buffer.concat(chunks));
        }
        if (mode !== 'pinned' && mode !== 'sibling' && mode !== 'rogue') {
          const honest = opensslTsa('ext-tsa', 'ext-root', Buffer.concat(chunks));
          const other = new X509Certificate(readFileSync(f('ext-sibling.pem'))).raw;
          const own = new X509Certificate(readFileSync(f('ext-tsa.pem'))).raw;
          return void res.writeHead(200, { 'content-type': 'application/timestamp-reply' }).end(twisted(honest, mode, readFileSync(f('ext-tsa.key'), 'utf8'), other, own));
        }
        const [signer, ca] = { pinned: ['ext-tsa', 'ext-root'], sibling: ['ext-sibling', 'ext-root'], rogue: ['rogue-tsa', 'rogue-root'] }[mode];
        res.writeHead(200, { 'content-type': 'application/timestamp-reply' }).end(opensslTsa(signer, ca, Buffer.concat(chunks)));
      });
    });
    await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));
    p = await startPlatform({
      extraApiEnv: {
        CMS_TSA_URL: `http://127.0.0.1:${port}/tsa`,
        CMS_TSA_CA_CERT: f('ext-root.pem'),
        CMS_TSA_CERT_SHA256: pin,
        CMS_TSA_CRL: f('ext-root.crl'),
        CMS_TSA_TIMEOUT_MS: '3000',
        REFUSAL_RATE_BURST: '8',
        REFUSAL_RATE_PER_MINUTE: '1',
      },
    });
    ci = await ciToken(p);
    const [root] = await sql<{ certificatePem: string }>(p, `SELECT "certificatePem" FROM "key" WHERE keyid = 'demo-root'`);
    writeFileSync(f('root.pem'), root.certificatePem);
  });

  afterAll(async () => {
    await p?.stop();
    await new Promise((resolve) => proxy?.close(resolve));
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const sign = async () => {
    const op = await call<{ id: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1));
    const image = randomBytes(2000);
    const r = await upload(p.env.urls.api, ci, { operationid: op.body.id, keyid: 'demo-fw-dev', description: 'external TSA' }, image);
    const used = (await call<{ keys: { usagesUsed: number }[] }>(p.env.urls.api, ci, 'GET', `/api/v1/operations/${op.body.id}`)).body.keys[0].usagesUsed;
    const stored = (await sql(p, `SELECT 1 FROM sign_order WHERE "operationId" = $1`, [op.body.id])).length;
    return { r, used, stored, image };
  };

  it('ok embeds the token of the pinned TSA under the configured anchor; openssl cms -verify and openssl ts -verify (its root) accept it', async () => {
    mode = 'pinned';
    const { r, used, stored, image } = await sign();
    expect([r.status, used, stored]).toEqual([201, 1, 1]);
    writeFileSync(f('ext-fw.bin'), image);
    writeFileSync(f('ext-fw.p7s'), r.body);
    ok('openssl', ['cms', '-verify', '-binary', '-content', f('ext-fw.bin'), '-inform', 'DER', '-in', f('ext-fw.p7s'), '-CAfile', f('root.pem'), '-purpose', 'any', '-out', '/dev/null']);
    const { signature, token } = tokenOf(r.body);
    writeFileSync(f('ext-sig.bin'), signature);
    writeFileSync(f('ext-token.der'), token as Buffer);
    expect(ok('openssl', ['ts', '-verify', '-token_in', '-in', f('ext-token.der'), '-data', f('ext-sig.bin'), '-CAfile', f('ext-root.pem')])).toContain('Verification: OK');
    expect(ok('openssl', ['ts', '-reply', '-token_in', '-in', f('ext-token.der'), '-token_out', '-text'])).toMatch(/Policy OID: 1\.3\.6\.1\.4\.1\.99999\.43\.1[\s\S]*TSA: DirName:.*CN\s?=\s?External TSA/);
    // The rogue TSA's root does not vouch for it.
    expect(sh('openssl', ['ts', '-verify', '-token_in', '-in', f('ext-token.der'), '-data', f('ext-sig.bin'), '-CAfile', f('rogue-root.pem')]).status).not.toBe(0);
    const [audit] = await sql<{ details: { timestamp: { tsa: string } } }>(p, `SELECT details FROM audit_event WHERE action = 'firmware.sign' AND outcome = 'SUCCESS' ORDER BY seq DESC LIMIT 1`);
    expect(audit.details.timestamp.tsa).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it.each([
    ['fail a TSA under the configured root that is not the pinned one', 'sibling' as const],
    ['fail a TSA of the same name under another root', 'rogue' as const],
    ["fail a genuine TSA the operator did not choose (this Keyserver's own, forwarded)", 'forward' as const],
  ])('%s: 502 timestamp_tsa_untrusted, no signature stored, the usage given back, the failure audited', async (_n, m) => {
    mode = m;
    const before = await sql(p, `SELECT 1 FROM audit_event WHERE action = 'firmware.sign' AND outcome = 'FAILED' AND "errorCode" = 'timestamp_tsa_untrusted'`);
    const { r, used, stored } = await sign();
    expect(r.type).toMatch(/^application\/problem\+json/);
    expect([r.status, JSON.parse(r.body.toString()).code, used, stored]).toEqual([502, 'timestamp_tsa_untrusted', 0, 0]);
    const audited = await sql(p, `SELECT 1 FROM audit_event WHERE action = 'firmware.sign' AND outcome = 'FAILED' AND "errorCode" = 'timestamp_tsa_untrusted'`);
    expect(audited.length).toBe(before.length + 1);
  });

  it.each<[string, Twist]>([
    ['ok the pinned TSA token signed again unchanged (the forging below is sound)', 'resigned'],
    ['ok a genTime 2 minutes ahead of our clock (within CMS_TSA_MAX_SKEW_MS, 5 minutes by default)', 'genTime+2min'],
    ['ok an ESS certificate id with an issuerSerial naming the TSA certificate', 'ess-issuer-serial'],
  ])('%s: 201, openssl ts -verify accepts the embedded token', async (_n, m) => {
    mode = m;
    const { r, used, stored } = await sign();
    expect([r.status, used, stored]).toEqual([201, 1, 1]);
    const { signature, token } = tokenOf(r.body);
    writeFileSync(f(`${m}-sig.bin`), signature);
    writeFileSync(f(`${m}-token.der`), token as Buffer);
    expect(ok('openssl', ['ts', '-verify', '-token_in', '-in', f(`${m}-token.der`), '-data', f(`${m}-sig.bin`), '-CAfile', f('ext-root.pem')])).toContain('Verification: OK');
  });

  it.each<[string, Twist, string]>([
    ['fail a trusted TSA token without the ESS signing-certificate attribute', 'no-ess', 'timestamp_reply_invalid'],
    ['fail a trusted TSA token whose ESS signing-certificate attribute names another certificate', 'ess-other', 'timestamp_reply_invalid'],
    ['fail a trusted TSA token whose ESS issuerSerial names its sibling (same issuer, another serial) next to its own hash', 'ess-issuer-serial-other', 'timestamp_reply_invalid'],
    ['fail a trusted TSA token stating a genTime 10 minutes in the future', 'genTime+10min', 'timestamp_clock_skew'],
    ['fail a trusted TSA token stating a genTime 10 minutes in the past', 'genTime-10min', 'timestamp_clock_skew'],
  ])('%s: 502, no signature stored, the usage given back, the failure audited', async (_n, m, code) => {
    mode = m;
    const before = await sql(p, `SELECT 1 FROM audit_event WHERE action = 'firmware.sign' AND outcome = 'FAILED' AND "errorCode" = $1`, [code]);
    const { r, used, stored } = await sign();
    expect(r.type).toMatch(/^application\/problem\+json/);
    expect([r.status, JSON.parse(r.body.toString()).code, used, stored]).toEqual([502, code, 0, 0]);
    const audited = await sql(p, `SELECT 1 FROM audit_event WHERE action = 'firmware.sign' AND outcome = 'FAILED' AND "errorCode" = $1`, [code]);
    expect(audited.length).toBe(before.length + 1);
  });

  it.each([
    ['fail the TSA answering 503', 'down' as const, 503, 'timestamp_unavailable'],
    ['fail the TSA answering garbage', 'garbage' as const, 502, 'timestamp_reply_invalid'],
  ])('%s: no signature without its timestamp, the usage given back, the failure audited', async (_n, m, status, code) => {
    mode = m;
    const before = await sql(p, `SELECT 1 FROM audit_event WHERE action = 'firmware.sign' AND outcome = 'FAILED' AND "errorCode" = $1`, [code]);
    const { r, used, stored } = await sign();
    expect(r.type).toMatch(/^application\/problem\+json/);
    expect([r.status, JSON.parse(r.body.toString()).code, used, stored]).toEqual([status, code, 0, 0]);
    const audited = await sql(p, `SELECT 1 FROM audit_event WHERE action = 'firmware.sign' AND outcome = 'FAILED' AND "errorCode" = $1`, [code]);
    expect(audited.length).toBe(before.length + 1);
  });

  it('fail the pinned TSA once its CA revoked it (CMS_TSA_CRL refreshed in place, no restart), then a stale CRL, then ok with a fresh one: 502 with its code, no signature stored, the usage given back, the failure audited', async () => {
    mode = 'pinned';
    const refused = async (code: string) => {
      const before = await sql(p, `SELECT 1 FROM audit_event WHERE action = 'firmware.sign' AND outcome = 'FAILED' AND "errorCode" = $1`, [code]);
      const { r, used, stored } = await sign();
      expect(r.type).toMatch(/^application\/problem\+json/);
      expect([r.status, JSON.parse(r.body.toString()).code, used, stored]).toEqual([502, code, 0, 0]);
      expect((await sql(p, `SELECT 1 FROM audit_event WHERE action = 'firmware.sign' AND outcome = 'FAILED' AND "errorCode" = $1`, [code])).length).toBe(before.length + 1);
    };
    extRootCrl('revoked', -2 * 3_600_000, DAY);
    // openssl agrees: the CRL is the root's, and it revokes the TSA certificate.
    expect(ok('openssl', ['crl', '-in', f('ext-root.crl'), '-CAfile', f('ext-root.pem'), '-noout'])).toMatch(/verify OK/);
    expect(sh('openssl', ['verify', '-crl_check', '-CRLfile', f('ext-root.crl'), '-CAfile', f('ext-root.pem'), f('ext-tsa.pem')]).out).toMatch(/certificate revoked/);
    await refused('timestamp_tsa_revoked');
    extRootCrl('clean', -3_600_000, -60_000);
    await refused('timestamp_tsa_crl_stale');
    extRootCrl('clean', -60_000, DAY);
    const { r, used, stored } = await sign();
    expect([r.status, used, stored]).toEqual([201, 1, 1]);
  });

  it('rate-limits anonymous callers of the TSA route per IP like every public route (429 problem+json, Retry-After)', async () => {
    const query = randomBytes(32); // any query: the edge decides before the TSA reads it
    const answers = [];
    for (let i = 0; i < 12; i++) {
      answers.push(await fetch(`${p.env.urls.api}/api/v1/tsa`, { method: 'POST', headers: { 'content-type': 'application/timestamp-query' }, body: new Uint8Array(query) }));
    }
    const limited = answers.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0].headers.get('retry-after')).toMatch(/^\d+$/);
    expect(((await limited[0].json()) as { code: string }).code).toBe('rate_limited');
    expect(answers[0].headers.get('content-type')).toBe('application/timestamp-reply');
  });
});
