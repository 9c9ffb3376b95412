import { spawn, spawnSync } from 'node:child_process';
import { X509Certificate, createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signInAt } from '@keyserver/entra-emulator';
import { demoTenant, repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken } from './admin-helpers';
import { call, ciToken, operationBody } from './operations-support';

// The Keyserver PKCS#11 module (tools/pkcs11-module) driven by tools we did not write: OpenSC's pkcs11-tool,
// OpenSSL 3 through pkcs11-provider (bookworm-backports) and through the libp11 engine (what osslsigncode, mkimage
// and sbsign load), osslsigncode, and pkcs11js in this process for a long-running signer. Every signature is
// verified with openssl or Node's crypto.

const MODULE = join(repoRoot, 'dist', 'tools', 'pkcs11-module', 'libkeyserver-pkcs11.so');
const KSCTL = join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js');
/** libp11's engine in OpenSSL's engines directory (`ENGINESDIR: "/usr/lib/x86_64-linux-gnu/engines-3"`). */
const ENGINE = join(/"(.*)"/.exec(spawnSync('openssl', ['version', '-e'], { encoding: 'utf8' }).stdout)?.[1] ?? '/usr/lib/x86_64-linux-gnu/engines-3', 'pkcs11.so');
/** pkcs11-provider in OpenSSL's modules directory (`MODULESDIR: "/usr/lib/x86_64-linux-gnu/ossl-modules"`). */
const PROVIDER = join(/"(.*)"/.exec(spawnSync('openssl', ['version', '-m'], { encoding: 'utf8' }).stdout)?.[1] ?? '/usr/lib/x86_64-linux-gnu/ossl-modules', 'pkcs11.so');
const DEMO_CERT = join(repoRoot, 'config', 'demo-credentials', 'demo-ci-cert.crt.pem');
const DEMO_KEY = join(repoRoot, 'config', 'demo-credentials', 'demo-ci-cert.key.pem');
/** Access tokens live this long here, so the long-running signer below outlives one. */
const TOKEN_TTL_SECONDS = 10;
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

/**
 * A signing process that lives longer than a token (plain Node + pkcs11js, its own process so the module
 * reads this environment): signs, waits, signs from six sessions at once (pkcs11js runs async C_Sign on
 * worker threads), then a length query and a refused mechanism. Prints [data, signature hex] pairs.
 */
const LONG_RUNNING_SIGNER = `
const [pkcs11jsPath, modulePath, waitSeconds] = process.argv.slice(1);
const pkcs11js = require(pkcs11jsPath);
const m = new pkcs11js.PKCS11();
m.load(modulePath);
m.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
const [slot] = m.C_GetSlotList(true);
const open = () => m.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
const key = (s) => {
  m.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_ID, value: Buffer.from('demo-fw-dev') }]);
  const [h] = m.C_FindObjects(s, 2);
  m.C_FindObjectsFinal(s);
  return h;
};
const sign = (s, data) => new Promise((resolve, reject) => {
  m.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA_SHA256 }, key(s));
  m.C_Sign(s, Buffer.from(data), Buffer.alloc(64), (err, sig) => (err ? reject(err) : resolve([data, sig.toString('hex')])));
});
const refused = (f) => { try { f(); return 'no error'; } catch (e) { return e.message; } };
(async () => {
  const s0 = open();
  const signed = [await sign(s0, 'signed with the first token')];
  await new Promise((r) => setTimeout(r, Number(waitSeconds) * 1000));
  const sessions = Array.from({ length: 6 }, open);
  signed.push(...(await Promise.all(sessions.map((s, i) => sign(s, 'parallel image ' + i)))));
  m.C_SignInit(s0, { mechanism: pkcs11js.CKM_ECDSA_SHA256 }, key(s0));
  const shortBuffer = refused(() => m.C_Sign(s0, Buffer.from('after a length query'), Buffer.alloc(10)));
  signed.push(['after a length query', m.C_Sign(s0, Buffer.from('after a length query'), Buffer.alloc(64)).toString('hex')]);
  const oaep = refused(() => m.C_SignInit(s0, { mechanism: pkcs11js.CKM_RSA_PKCS_OAEP }, key(s0)));
  m.C_Finalize();
  process.stdout.write(JSON.stringify({ signed, shortBuffer, oaep }));
})().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
`;

/**
 * A minimal PE32 image (DOS header, PE header, one .text section holding `ret`): enough for Authenticode,
 * written byte by byte so the test needs no compiler.
 */
function tinyPe(): Buffer {
  const b = Buffer.alloc(1024);
  b.write('MZ', 0, 'latin1');
  b.writeUInt32LE(0x40, 0x3c); // e_lfanew
  b.write('PE\0\0', 0x40, 'latin1');
  b.writeUInt16LE(0x14c, 0x44); // i386
  b.writeUInt16LE(1, 0x46); // one section
  b.writeUInt16LE(0xe0, 0x54); // size of the PE32 optional header
  b.writeUInt16LE(0x0102, 0x56); // executable, 32-bit
  const oh = 0x58;
  b.writeUInt16LE(0x10b, oh); // PE32
  b.writeUInt32LE(0x1000, oh + 16); // entry point
  b.writeUInt32LE(0x400000, oh + 28); // image base
  b.writeUInt32LE(0x1000, oh + 32); // section alignment
  b.writeUInt32LE(0x200, oh + 36); // file alignment
  b.writeUInt16LE(4, oh + 40);
  b.writeUInt16LE(4, oh + 48);
  b.writeUInt32LE(0x2000, oh + 56); // size of image
  b.writeUInt32LE(0x200, oh + 60); // size of headers
  b.writeUInt16LE(3, oh + 68); // console subsystem
  b.writeUInt32LE(16, oh + 92); // data directories
  const sec = oh + 0xe0;
  b.write('.text', sec, 'latin1');
  [0x200, 0x1000, 0x200, 0x200].forEach((v, i) => b.writeUInt32LE(v, sec + 8 + 4 * i));
  b.writeUInt32LE(0x60000020, sec + 36); // code, execute, read
  b[0x200] = 0xc3; // ret
  return b;
}

describe('keyserver-pkcs11 module', () => {
  let p: RunningPlatform;
  let work: string;
  let operation: string;
  const ci = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
  const certs = new Map<string, string>();

  const file = (name: string) => join(work, name);
  const env = (extra: Record<string, string> = {}): Record<string, string> => ({
    PATH: process.env['PATH'] ?? '',
    HOME: work,
    KEYSERVER_URL: p.facts.urls.api,
    KEYSERVER_TOKEN_ENDPOINT: p.facts.tokenEndpoint,
    KEYSERVER_SCOPE: p.facts.defaultScope,
    KEYSERVER_CLIENT_ID: ci?.clientId ?? '',
    KEYSERVER_CLIENT_SECRET: ci?.clientSecret ?? '',
    KEYSERVER_OPERATION_ID: operation,
    ...extra,
  });
  const tool = (program: string, args: string[], e: Record<string, string> = env()) => {
    const r = spawnSync(program, args, { env: e, encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };
  const p11 = (args: string[], e?: Record<string, string>) => tool('pkcs11-tool', ['--module', MODULE, ...args], e);
  /** pkcs11-tool --sign picks its key by CKA_ID, which is the keyid's bytes. */
  const id = (keyid: string) => ['--id', Buffer.from(keyid).toString('hex')];
  const opensslOk = (...args: string[]) => tool('openssl', args).status === 0;
  const usages = async (id: string) => {
    const r = await call<{ keys: { keyid: string; usagesUsed: number }[] }>(p.facts.urls.api, await ciToken(p), 'GET', `/api/v1/operations/${id}`);
    return Object.fromEntries(r.body.keys.map((k) => [k.keyid, k.usagesUsed]));
  };
  const newOperation = async (keys: { keyid: string; usages: number }[]) => {
    const r = await call<{ id: string }>(p.facts.urls.api, await ciToken(p), 'POST', '/api/v1/operations', operationBody(keys[0].keyid, 1, { keys }));
    expect(r.status).toBe(201);
    return r.body.id;
  };

  beforeAll(async () => {
    process.env['EMULATOR_ACCESS_TOKEN_TTL'] = String(TOKEN_TTL_SECONDS);
    try {
      p = await startPlatform();
    } finally {
      delete process.env['EMULATOR_ACCESS_TOKEN_TTL'];
    }
    work = mkdtempSync(join(tmpdir(), 'ks-p11-'));
    // Firmware keys of every kind the module maps, made as administrators make keys, granted to demo-ci.
    const ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    const alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    const session = await activeSession(ada, alan, 'PKCS#11 module test keys');
    for (const [keyid, algorithm] of [['p11-rsa', 'RSA_2048'], ['p11-p384', 'EC_P384'], ['p11-ed', 'ED25519']]) {
      const r = await ada('POST', '/api/v1/keys', { session, body: { keyid, type: 'FW', algorithm, requiredApprovers: 0, validityDays: 30, commonName: `PKCS#11 ${keyid}`, product: 'p11-gadget' } });
      expect([keyid, r.status]).toEqual([keyid, 201]);
    }
    const keys = ['p11-rsa', 'p11-p384', 'p11-ed'].map((keyid) => ({ keyid, permissions: ['ORDER', 'SIGN'] }));
    expect((await ada('POST', '/api/v1/roles', { session, body: { name: 'p11-signer', natures: ['ORDERER', 'SIGNER'], keys } })).status).toBe(201);
    const subjects = await ada<{ items: { id: string; oid: string; roles: string[] }[] }>('GET', '/api/v1/subjects');
    const subject = subjects.body.items.find((s) => s.oid === ci?.servicePrincipalOid);
    if (!subject) throw new Error('demo-ci subject missing');
    expect((await ada('PATCH', `/api/v1/subjects/${subject.id}`, { session, body: { roles: [...subject.roles, 'p11-signer'] } })).status).toBe(200);

    const token = await ciToken(p);
    for (const keyid of ['demo-fw-dev', 'p11-rsa', 'p11-p384', 'p11-ed']) {
      const k = await call<{ chain: string[] }>(p.facts.urls.api, token, 'GET', `/api/v1/keys/${keyid}`);
      certs.set(keyid, k.body.chain[0]);
      writeFileSync(file(`${keyid}.pem`), k.body.chain[0]);
      writeFileSync(file(`${keyid}.chain.pem`), k.body.chain.join('\n'));
      writeFileSync(file(`${keyid}.pub.pem`), new X509Certificate(k.body.chain[0]).publicKey.export({ type: 'spki', format: 'pem' }));
      writeFileSync(file('root.pem'), k.body.chain[k.body.chain.length - 1]);
    }
    operation = await newOperation(['demo-fw-dev', 'p11-rsa', 'p11-p384', 'p11-ed'].map((keyid) => ({ keyid, usages: 50 })));
    writeFileSync(file('msg.bin'), 'firmware 1.2.3 signed through PKCS#11\n');
    // The OpenSSL configuration that points the libp11 engine at the module (see tools/pkcs11-module/README.md).
    writeFileSync(
      file('engine.cnf'),
      ['openssl_conf = openssl_init', '[openssl_init]', 'engines = engine_section', '[engine_section]', 'pkcs11 = pkcs11_section',
        '[pkcs11_section]', 'engine_id = pkcs11', `dynamic_path = ${ENGINE}`, `MODULE_PATH = ${MODULE}`, 'init = 0', ''].join('\n'),
    );
    // The OpenSSL configuration that loads pkcs11-provider (next to the default provider) on the module (README).
    writeFileSync(
      file('provider.cnf'),
      ['openssl_conf = openssl_init', '[openssl_init]', 'providers = provider_section', '[provider_section]', 'default = default_section',
        'pkcs11 = pkcs11_section', '[default_section]', 'activate = 1', '[pkcs11_section]', `module = ${PROVIDER}`,
        `pkcs11-module-path = ${MODULE}`, 'activate = 1', ''].join('\n'),
    );
  });

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('lists one token with a private key, a public key and a certificate per firmware key (pkcs11-tool -L -O)', () => {
    const r = p11(['-L', '-O']);
    expect(r.status).toBe(0);
    expect(r.out).toMatch(/token label\s+: Keyserver/);
    const labels = (kind: string) => [...r.out.matchAll(new RegExp(`${kind}[^]*?label:\\s+(\\S+)`, 'g'))].map((m) => m[1]).sort();
    // Ed25519 keys only with KEYSERVER_PKCS11_EDDSA=on (libp11 0.4.12 fails on every key of a token listing one).
    const fw = ['demo-fw-dev', 'demo-fw-prod', 'p11-p384', 'p11-rsa'];
    expect(labels('Private Key Object')).toEqual(fw);
    expect(labels('Public Key Object')).toEqual(fw);
    expect(labels('Certificate Object')).toEqual(fw);
    // CA keys sign no sign orders: not objects of the token.
    expect(r.out).not.toContain('demo-ca-');
    expect(r.out).not.toContain('p11-ed');
    expect(r.out.match(/Access:\s+sensitive, always sensitive, never extractable/g)).toHaveLength(fw.length);
    // The certificate object is the key's certificate, byte for byte.
    const der = file('demo-fw-dev.der');
    expect(p11(['--read-object', '--type', 'cert', '--label', 'demo-fw-dev', '-o', der]).status).toBe(0);
    expect(readFileSync(der).equals(new X509Certificate(certs.get('demo-fw-dev') ?? '').raw)).toBe(true);
  });

  const message = () => readFileSync(file('msg.bin'));
  const digestOf = (hash: string, m: Buffer = message()) => createHash(hash).update(m).digest();
  const digestInfo = (hash: 'sha256' | 'sha384', m: Buffer = message()) =>
    Buffer.concat([Buffer.from(hash === 'sha256' ? '3031300d060960864801650304020105000420' : '3041300d060960864801650304020205000430', 'hex'), digestOf(hash, m)]);
  // mechanism, key, what pkcs11-tool is given for a message, extra pkcs11-tool options, hash and openssl -pkeyopt for the verification
  const mechanisms: [string, string, (m: Buffer) => Buffer, string[], string, string[]][] = [
    ['ECDSA', 'demo-fw-dev', (m) => digestOf('sha256', m), [], 'sha256', []],
    ['ECDSA-SHA256', 'demo-fw-dev', (m) => m, [], 'sha256', []],
    ['ECDSA-SHA384', 'p11-p384', (m) => m, [], 'sha384', []],
    ['RSA-PKCS', 'p11-rsa', (m) => digestInfo('sha256', m), [], 'sha256', []],
    ['SHA256-RSA-PKCS', 'p11-rsa', (m) => m, [], 'sha256', []],
    ['RSA-PKCS-PSS', 'p11-rsa', (m) => digestOf('sha256', m), ['--hash-algorithm', 'SHA256', '--mgf', 'MGF1-SHA256', '--salt-len', '32'], 'sha256', ['rsa_padding_mode:pss', 'rsa_pss_saltlen:32']],
    ['SHA256-RSA-PKCS-PSS', 'p11-rsa', (m) => m, ['--mgf', 'MGF1-SHA256'], 'sha256', ['rsa_padding_mode:pss', 'rsa_pss_saltlen:32']],
  ];

  it.each(mechanisms)('signs with %s (key %s) through pkcs11-tool --sign, openssl pkeyutl -verify accepts it, and so does the token\'s C_Verify', (mech, keyid, input, opts, hash, pkeyopts) => {
    const name = `${mech}-${keyid}`;
    writeFileSync(file(`${name}.in`), input(message()));
    const r = p11(['--sign', '-m', mech, ...id(keyid), '-i', file(`${name}.in`), '-o', file(`${name}.sig`), '--signature-format', 'openssl', ...opts]);
    expect([r.status, r.out]).toEqual([0, expect.stringContaining(`Using signature algorithm ${mech}`)]);
    writeFileSync(file(`${name}.digest`), digestOf(hash));
    const verify = (digestFile: string) =>
      opensslOk('pkeyutl', '-verify', '-pubin', '-inkey', file(`${keyid}.pub.pem`), '-in', digestFile, '-sigfile', file(`${name}.sig`), '-pkeyopt', `digest:${hash}`, ...pkeyopts.flatMap((o) => ['-pkeyopt', o]));
    expect(verify(file(`${name}.digest`))).toBe(true);
    writeFileSync(file(`${name}.other`), createHash(hash).update('another image').digest());
    expect(verify(file(`${name}.other`))).toBe(false);
    // The token verifies locally with the certificate's public key (C_Verify): the data signed, not other data.
    writeFileSync(file(`${name}.other-in`), input(Buffer.from('another image')));
    const tokenVerify = (inFile: string) => p11(['--verify', '-m', mech, ...id(keyid), '-i', inFile, '--signature-file', file(`${name}.sig`), '--signature-format', 'openssl', ...opts]).out;
    expect(tokenVerify(file(`${name}.in`))).toContain('Signature is valid');
    expect(tokenVerify(file(`${name}.other-in`))).toContain('Invalid signature');
  });

  it('lists the Ed25519 key with KEYSERVER_PKCS11_EDDSA=on: CKK_EC_EDWARDS, CKA_EC_PARAMS the OID 1.3.101.112, CKM_EDDSA only', () => {
    const e = env({ KEYSERVER_PKCS11_EDDSA: 'on' });
    const r = p11(['-L', '-O', '-M'], e);
    expect(r.status).toBe(0);
    const labels = [...r.out.matchAll(/Private Key Object[^]*?label:\s+(\S+)/g)].map((m) => m[1]).sort();
    expect(labels).toEqual(['demo-fw-dev', 'demo-fw-prod', 'p11-ed', 'p11-p384', 'p11-rsa']);
    expect(r.out).toMatch(/EDDSA, keySize=\{255,255\}, hw, sign/);
    const ed = r.out.slice(r.out.indexOf('label:      p11-ed') - 200);
    expect(ed).toMatch(/Private Key Object; EC_EDWARDS[^]*?label:\s+p11-ed[^]*?Allowed mechanisms: EDDSA/);
    // CKA_EC_POINT is the certificate's 32-byte key in an OCTET STRING; CKA_EC_PARAMS the Ed25519 OID.
    const pubDer = file('p11-ed.pub.der');
    expect(p11(['--read-object', '--type', 'pubkey', '--label', 'p11-ed', '-o', pubDer], e).status).toBe(0);
    // OpenSC 0.23 writes an Edwards public key as PEM: the same SubjectPublicKeyInfo as the certificate's.
    const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' }).toString('hex');
    expect(spki(createPublicKey(readFileSync(pubDer)))).toBe(spki(new X509Certificate(certs.get('p11-ed') ?? '').publicKey));
  });

  // PureEdDSA: pkcs11-tool gives the message itself (C_Sign up to 1 KiB, C_SignUpdate parts beyond), the module
  // sends it whole as a message sign order; openssl verifies with -rawin and the public key of the key's certificate.
  it.each([
    ['a 39-byte message (C_Sign)', () => message()],
    ['a 4 KiB message (C_SignUpdate parts)', () => Buffer.alloc(4096, 0x42)],
    ['a message of exactly 64 KiB', () => Buffer.alloc(64 * 1024, 0x43)],
  ])('signs %s with EDDSA (key p11-ed) through pkcs11-tool and openssl pkeyutl -verify -rawin accepts it', async (_n, input) => {
    const name = `eddsa-${input().length}`;
    writeFileSync(file(`${name}.in`), input());
    const before = await usages(operation);
    const r = p11(['--sign', '-m', 'EDDSA', ...id('p11-ed'), '-i', file(`${name}.in`), '-o', file(`${name}.sig`)], env({ KEYSERVER_PKCS11_EDDSA: 'on' }));
    expect([r.status, r.out]).toEqual([0, expect.stringContaining('Using signature algorithm EDDSA')]);
    const sig = readFileSync(file(`${name}.sig`));
    expect(sig).toHaveLength(64);
    const verify = (msgFile: string) => opensslOk('pkeyutl', '-verify', '-pubin', '-inkey', file('p11-ed.pub.pem'), '-rawin', '-in', msgFile, '-sigfile', file(`${name}.sig`));
    expect(verify(file(`${name}.in`))).toBe(true);
    writeFileSync(file(`${name}.other`), Buffer.concat([input(), Buffer.from([0])]));
    expect(verify(file(`${name}.other`))).toBe(false);
    expect(cryptoVerify(null, input(), new X509Certificate(certs.get('p11-ed') ?? '').publicKey, sig)).toBe(true);
    expect((await usages(operation))['p11-ed']).toBe(before['p11-ed'] + 1);
  });

  it('refuses what the key does not allow before asking the Keyserver, with the CKR_ code and the reason', async () => {
    const before = await usages(operation);
    writeFileSync(file('refused.in'), message());
    const cases: [string[], string, RegExp][] = [
      [['-m', 'SHA384-RSA-PKCS', ...id('p11-rsa')], 'CKR_MECHANISM_INVALID', /p11-rsa signs SHA-256 digests/],
      [['-m', 'SHA256-RSA-PKCS-PSS', '--mgf', 'MGF1-SHA256', '--salt-len', '20', ...id('p11-rsa')], 'CKR_MECHANISM_PARAM_INVALID', /32-byte salt only/],
      [['-m', 'ECDSA-SHA256', ...id('p11-rsa')], 'CKR_KEY_TYPE_INCONSISTENT', /p11-rsa is not an EC key/],
      [['-m', 'ECDSA', ...id('demo-fw-dev')], 'CKR_DATA_LEN_RANGE', new RegExp(`signs 32-byte SHA-256 digests, got ${message().length} bytes`)],
      [['-m', 'EDDSA', ...id('demo-fw-dev')], 'CKR_KEY_TYPE_INCONSISTENT', /demo-fw-dev is not an Ed25519 key: CKM_EDDSA refused/],
      [['-m', 'ECDSA-SHA256', ...id('p11-ed')], 'CKR_KEY_TYPE_INCONSISTENT', /p11-ed is not an EC key/],
      [['-m', 'EDDSA', ...id('p11-ed'), '-i', file('too-big.in')], 'CKR_DATA_LEN_RANGE', /CKM_EDDSA signs messages of at most 65536 bytes/],
    ];
    writeFileSync(file('too-big.in'), Buffer.alloc(64 * 1024 + 1, 0x44));
    for (const [args, code, why] of cases) {
      const r = p11(['--sign', '-i', file('refused.in'), '-o', file('refused.sig'), ...args], env({ KEYSERVER_PKCS11_EDDSA: 'on' }));
      expect([args.join(' '), r.status === 0, r.out]).toEqual([args.join(' '), false, expect.stringContaining(code)]);
      expect(r.out).toMatch(why);
    }
    expect(await usages(operation)).toEqual(before);
  });

  it('signs through OpenSSL 3 (libp11 engine, pkcs11: URIs): pkeyutl -sign and cms -sign, verified by openssl', () => {
    const e = env({ OPENSSL_CONF: file('engine.cnf') });
    writeFileSync(file('engine.digest'), digestOf('sha256'));
    for (const keyid of ['p11-rsa', 'demo-fw-dev']) {
      const sig = file(`engine-${keyid}.sig`);
      const r = tool('openssl', ['pkeyutl', '-engine', 'pkcs11', '-keyform', 'engine', '-sign', '-inkey', `pkcs11:object=${keyid};type=private`, '-in', file('engine.digest'), '-out', sig, '-pkeyopt', 'digest:sha256'], e);
      expect([keyid, r.status]).toEqual([keyid, 0]);
      expect(opensslOk('pkeyutl', '-verify', '-pubin', '-inkey', file(`${keyid}.pub.pem`), '-in', file('engine.digest'), '-sigfile', sig, '-pkeyopt', 'digest:sha256')).toBe(true);
    }
    const p7s = file('msg.p7s');
    const cms = tool('openssl', ['cms', '-sign', '-engine', 'pkcs11', '-keyform', 'engine', '-inkey', 'pkcs11:object=p11-rsa;type=private', '-signer', file('p11-rsa.pem'), '-binary', '-in', file('msg.bin'), '-outform', 'DER', '-out', p7s], e);
    expect([cms.status, cms.out]).toEqual([0, expect.any(String)]);
    const ok = tool('openssl', ['cms', '-verify', '-binary', '-content', file('msg.bin'), '-inform', 'DER', '-in', p7s, '-CAfile', file('root.pem'), '-purpose', 'any', '-out', file('cms.out')]);
    expect([ok.status, ok.out]).toEqual([0, expect.stringContaining('Verification successful')]);
    writeFileSync(file('msg.tampered'), Buffer.concat([message(), Buffer.from('x')]));
    expect(tool('openssl', ['cms', '-verify', '-binary', '-content', file('msg.tampered'), '-inform', 'DER', '-in', p7s, '-CAfile', file('root.pem'), '-purpose', 'any']).status).not.toBe(0);
  });

  /** pkcs11-provider on the command line, pointed at the module by PKCS11_PROVIDER_MODULE (no configuration file). */
  const providerEnv = (extra: Record<string, string> = {}) => env({ PKCS11_PROVIDER_MODULE: MODULE, ...extra });
  const PROVIDERS = ['-provider', 'pkcs11', '-provider', 'default'];
  const pkcs11Uri = (keyid: string) => `pkcs11:token=Keyserver;object=${keyid};type=private`;
  // case, key, the key's URI, hash, -pkeyopt for signing, -pkeyopt for the verification
  const providerSignatures: [string, string, string, 'sha256' | 'sha384', string[], string[]][] = [
    ['ECDSA P-256', 'demo-fw-dev', pkcs11Uri('demo-fw-dev'), 'sha256', [], []],
    ['ECDSA P-384', 'p11-p384', pkcs11Uri('p11-p384'), 'sha384', [], []],
    ['RSA PKCS#1 v1.5', 'p11-rsa', pkcs11Uri('p11-rsa'), 'sha256', [], []],
    ['RSA PKCS#1 v1.5, key by CKA_ID', 'p11-rsa', `pkcs11:id=${[...Buffer.from('p11-rsa')].map((b) => `%${b.toString(16)}`).join('')};type=private`, 'sha256', [], []],
    ['RSA-PSS', 'p11-rsa', pkcs11Uri('p11-rsa'), 'sha256', ['rsa_padding_mode:pss'], ['rsa_padding_mode:pss', 'rsa_pss_saltlen:32']],
  ];

  it.each(providerSignatures)(
    'signs %s (key %s) with openssl pkeyutl -sign through pkcs11-provider, one usage each; openssl pkeyutl -verify accepts it with the certificate and with the token\'s public key',
    async (name, keyid, uri, hash, signOpts, verifyOpts) => {
      const before = await usages(operation);
      const digest = file(`prov-${keyid}.${hash}`);
      writeFileSync(digest, digestOf(hash));
      const sig = file(`prov-${name.replace(/\W+/g, '-')}.sig`);
      const r = tool('openssl', ['pkeyutl', ...PROVIDERS, '-sign', '-inkey', uri, '-in', digest, '-out', sig, '-pkeyopt', `digest:${hash}`, ...signOpts.flatMap((o) => ['-pkeyopt', o])], providerEnv());
      expect([name, r.status, r.out]).toEqual([name, 0, '']);
      // The public key of the certificate the API returned for the key, not one read through the token.
      const verify = (digestFile: string) =>
        opensslOk('pkeyutl', '-verify', '-certin', '-inkey', file(`${keyid}.pem`), '-in', digestFile, '-sigfile', sig, '-pkeyopt', `digest:${hash}`, ...verifyOpts.flatMap((o) => ['-pkeyopt', o]));
      expect(verify(digest)).toBe(true);
      writeFileSync(file('prov.other'), createHash(hash).update('another image').digest());
      expect(verify(file('prov.other'))).toBe(false);
      // Through the token's public key as well (pkcs11-provider -> C_Verify, checked locally by the module).
      const tokenVerify = (digestFile: string) =>
        tool('openssl', ['pkeyutl', ...PROVIDERS, '-verify', '-pubin', '-inkey', uri.replace('type=private', 'type=public'), '-in', digestFile, '-sigfile', sig, '-pkeyopt', `digest:${hash}`, ...verifyOpts.flatMap((o) => ['-pkeyopt', o])], providerEnv()).out;
      expect([name, tokenVerify(digest)]).toEqual([name, 'Signature Verified Successfully\n']);
      expect([name, tokenVerify(file('prov.other'))]).toEqual([name, expect.stringContaining('Signature Verification Failure')]);
      // One sign order per signature: the provider's length query asked the Keyserver nothing.
      expect(await usages(operation)).toEqual({ ...before, [keyid]: before[keyid] + 1 });
    },
  );

  it('signs with the Ed25519 key through pkcs11-provider (KEYSERVER_PKCS11_EDDSA=on): pkeyutl -sign -rawin, verified by openssl; the other keys still sign', async () => {
    const e = providerEnv({ KEYSERVER_PKCS11_EDDSA: 'on' });
    const before = await usages(operation);
    const sig = file('prov-ed.sig');
    const r = tool('openssl', ['pkeyutl', ...PROVIDERS, '-sign', '-rawin', '-inkey', pkcs11Uri('p11-ed'), '-in', file('msg.bin'), '-out', sig], e);
    expect([r.status, r.out]).toEqual([0, '']);
    const verify = (msgFile: string) => opensslOk('pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', file('p11-ed.pub.pem'), '-in', msgFile, '-sigfile', sig);
    expect(verify(file('msg.bin'))).toBe(true);
    writeFileSync(file('prov-ed.other'), Buffer.concat([message(), Buffer.from('x')]));
    expect(verify(file('prov-ed.other'))).toBe(false);
    // An Edwards key on the token does not stop pkcs11-provider from using the others (libp11 0.4.12 would).
    writeFileSync(file('prov-ed.sha256'), digestOf('sha256'));
    const ec = tool('openssl', ['pkeyutl', ...PROVIDERS, '-sign', '-inkey', pkcs11Uri('demo-fw-dev'), '-in', file('prov-ed.sha256'), '-out', file('prov-ed-ec.sig'), '-pkeyopt', 'digest:sha256'], e);
    expect([ec.status, ec.out]).toEqual([0, '']);
    expect(opensslOk('pkeyutl', '-verify', '-pubin', '-inkey', file('demo-fw-dev.pub.pem'), '-in', file('prov-ed.sha256'), '-sigfile', file('prov-ed-ec.sig'), '-pkeyopt', 'digest:sha256')).toBe(true);
    expect(await usages(operation)).toEqual({ ...before, 'p11-ed': before['p11-ed'] + 1, 'demo-fw-dev': before['demo-fw-dev'] + 1 });
  });

  it('signs CMS with openssl cms -sign through pkcs11-provider (openssl.cnf), and openssl cms -verify accepts it with the CA chain', () => {
    // A tool configured to always log in with a PIN (a habit for HSMs): the token takes the login, the PIN is ignored.
    writeFileSync(file('provider-login.cnf'), `${readFileSync(file('provider.cnf'), 'utf8')}pkcs11-module-login-behavior = always\npkcs11-module-token-pin = 4711-provider-pin\n`);
    const debugLog = file('provider-debug.log');
    // key, extra -keyopt, the SignerInfo's signatureAlgorithm (openssl cms -cmsout -print), configuration
    const cases: [string, string[], string, string][] = [
      ['p11-rsa', [], 'rsaEncryption', 'provider.cnf'],
      ['p11-rsa', ['-keyopt', 'rsa_padding_mode:pss'], 'rsassaPss', 'provider.cnf'],
      ['demo-fw-dev', [], 'ecdsa-with-SHA256', 'provider.cnf'],
      ['demo-fw-dev', [], 'ecdsa-with-SHA256', 'provider-login.cnf'],
    ];
    for (const [keyid, keyopts, algorithm, cnf] of cases) {
      const label = [keyid, ...keyopts, cnf].join(' ');
      const p7s = file(`prov-${keyid}${keyopts.length ? '-pss' : ''}.p7s`);
      const e = env({ OPENSSL_CONF: file(cnf), PKCS11_PROVIDER_DEBUG: `file:${debugLog},level:2` });
      rmSync(debugLog, { force: true });
      const signed = tool('openssl', ['cms', '-sign', '-binary', '-md', 'sha256', '-signer', file(`${keyid}.pem`), '-inkey', pkcs11Uri(keyid), ...keyopts, '-in', file('msg.bin'), '-outform', 'DER', '-out', p7s], e);
      expect([label, signed.status, signed.out]).toEqual([label, 0, '']);
      // The provider's own trace: the module signed in parts, and logged in only when told to.
      const trace = readFileSync(debugLog, 'utf8');
      expect([label, trace.includes('Calling C_SignFinal'), trace.includes('Calling C_Login')]).toEqual([label, true, cnf === 'provider-login.cnf']);
      expect(trace).not.toContain('4711-provider-pin');
      const printed = tool('openssl', ['cms', '-cmsout', '-print', '-inform', 'DER', '-in', p7s]);
      expect([label, /signatureAlgorithm: *\n *algorithm: (\S+)/.exec(printed.out)?.[1]]).toEqual([label, algorithm]);
      const verify = (content: string) =>
        tool('openssl', ['cms', '-verify', '-binary', '-content', content, '-inform', 'DER', '-in', p7s, '-CAfile', file('root.pem'), '-certfile', file(`${keyid}.chain.pem`), '-purpose', 'any', '-signer', file('prov-signer.pem'), '-out', file('prov-cms.out')]);
      const ok = verify(file('msg.bin'));
      expect([label, ok.status, ok.out]).toEqual([label, 0, expect.stringContaining('Verification successful')]);
      expect(new X509Certificate(readFileSync(file('prov-signer.pem'))).raw.equals(new X509Certificate(certs.get(keyid) ?? '').raw)).toBe(true);
      writeFileSync(file('prov-msg.tampered'), Buffer.concat([message(), Buffer.from('x')]));
      expect([label, verify(file('prov-msg.tampered')).status === 0]).toEqual([label, false]);
    }
  });

  it('makes openssl fail cleanly through pkcs11-provider when the operation is used up or the PSS salt is not the key\'s: no signature, the CKR_ and the reason', async () => {
    const once = await newOperation([{ keyid: 'p11-rsa', usages: 1 }]);
    writeFileSync(file('once.sha256'), digestOf('sha256'));
    const pkeyutl = (out: string, opts: string[] = []) =>
      tool('openssl', ['pkeyutl', ...PROVIDERS, '-sign', '-inkey', pkcs11Uri('p11-rsa'), '-in', file('once.sha256'), '-out', out, '-pkeyopt', 'digest:sha256', ...opts.flatMap((o) => ['-pkeyopt', o])], providerEnv({ KEYSERVER_OPERATION_ID: once }));
    // A salt other than the hash length is refused before the Keyserver is asked: no usage spent.
    const maxSalt = pkeyutl(file('once-max.sig'), ['rsa_padding_mode:pss', 'rsa_pss_saltlen:max']);
    expect([maxSalt.status === 0, maxSalt.out]).toEqual([false, expect.stringMatching(/a 32-byte salt only -> CKR_MECHANISM_PARAM_INVALID/)]);
    expect(await usages(once)).toEqual({ 'p11-rsa': 0 });

    expect(pkeyutl(file('once-1.sig')).status).toBe(0);
    const exhausted = [
      pkeyutl(file('once-2.sig')),
      tool('openssl', ['cms', '-sign', '-binary', '-signer', file('p11-rsa.pem'), '-inkey', pkcs11Uri('p11-rsa'), '-in', file('msg.bin'), '-outform', 'DER', '-out', file('once.p7s')], env({ KEYSERVER_OPERATION_ID: once, OPENSSL_CONF: file('provider.cnf') })),
    ];
    for (const r of exhausted) {
      expect(r.status).not.toBe(0);
      expect(r.out).toMatch(/sign order with key p11-rsa refused: HTTP 409 usage_exhausted .* -> CKR_FUNCTION_REJECTED/);
      expect(r.out).not.toContain('CKR_DEVICE_ERROR');
    }
    // openssl leaves its output files empty (or never writes them): nothing that looks like a signature.
    for (const out of ['once-max.sig', 'once-2.sig', 'once.p7s']) expect([out, existsSync(file(out)) ? statSync(file(out)).size : 0]).toEqual([out, 0]);
    expect(await usages(once)).toEqual({ 'p11-rsa': 1 });
  });

  it('signs a PE file with osslsigncode (Authenticode) and osslsigncode verify accepts it, and refuses it tampered', () => {
    writeFileSync(file('tiny.exe'), tinyPe());
    const signed = file('tiny-signed.exe');
    for (const keyid of ['p11-rsa', 'demo-fw-dev']) {
      rmSync(signed, { force: true });
      // demo-fw-dev's signature is also timestamped by the Keyserver's own RFC 3161 TSA (ADR 0024).
      const ts = keyid === 'demo-fw-dev' ? ['-ts', `${p.facts.urls.api}/api/v1/tsa`] : [];
      const r = tool('osslsigncode', ['sign', '-pkcs11module', MODULE, '-certs', file(`${keyid}.chain.pem`), '-key', `pkcs11:object=${keyid};type=private`, '-h', 'sha256', '-n', 'Keyserver PKCS#11 test', ...ts, '-in', file('tiny.exe'), '-out', signed]);
      expect([keyid, r.status, r.out]).toEqual([keyid, 0, expect.stringContaining('Succeeded')]);
      const v = tool('osslsigncode', ['verify', '-in', signed, '-CAfile', file('root.pem'), ...(ts.length ? ['-TSA-CAfile', file('root.pem')] : [])]);
      expect([keyid, v.status, v.out]).toEqual([keyid, 0, expect.stringContaining('Signature verification: ok')]);
      if (ts.length) expect(v.out).toMatch(/Timestamp Server Signature verification: ok/i);
    }
    const tampered = readFileSync(signed);
    tampered[0x200] = 0x90; // the code the signature covers
    writeFileSync(file('tiny-tampered.exe'), tampered);
    expect(tool('osslsigncode', ['verify', '-in', file('tiny-tampered.exe'), '-CAfile', file('root.pem')]).status).not.toBe(0);
  });

  it('answers a usage-exhausted operation with CKR_FUNCTION_REJECTED and the Keyserver problem code, not CKR_DEVICE_ERROR', async () => {
    const once = await newOperation([{ keyid: 'demo-fw-dev', usages: 1 }]);
    const e = env({ KEYSERVER_OPERATION_ID: once });
    const sign = () => p11(['--sign', '-m', 'ECDSA-SHA256', ...id('demo-fw-dev'), '-i', file('msg.bin'), '-o', file('once.sig')], e);
    expect(sign().status).toBe(0);
    const second = sign();
    expect(second.status).not.toBe(0);
    // OpenSC 0.23 prints 0x200 without its name.
    expect(second.out).toMatch(/rv = (CKR_FUNCTION_REJECTED|unknown PKCS11 error) \(0x200\)/);
    expect(second.out).toMatch(/sign order with key demo-fw-dev refused: HTTP 409 usage_exhausted .* -> CKR_FUNCTION_REJECTED/);
    expect(second.out).not.toContain('CKR_DEVICE_ERROR');
    expect(await usages(once)).toEqual({ 'demo-fw-dev': 1 });
  });

  it('fails clearly without an operation, with a refused secret, and with an operation that does not hold the key', async () => {
    const sign = (e: Record<string, string>) => p11(['--sign', '-m', 'ECDSA-SHA256', ...id('demo-fw-dev'), '-i', file('msg.bin'), '-o', file('x.sig')], e);
    const noOp = sign(env({ KEYSERVER_OPERATION_ID: '' }));
    expect([noOp.status === 0, noOp.out]).toEqual([false, expect.stringContaining('KEYSERVER_OPERATION_ID is not set')]);
    for (const hostile of ['../../api/keys', `${operation}\u202e`, `${operation} `, operation.toUpperCase().replace(/-/g, '')]) {
      const r = sign(env({ KEYSERVER_OPERATION_ID: hostile }));
      expect([hostile, r.status === 0, r.out]).toEqual([hostile, false, expect.stringContaining('KEYSERVER_OPERATION_ID is not an operation id')]);
    }
    const badSecret = p11(['-O'], env({ KEYSERVER_CLIENT_SECRET: 'wrong-secret' }));
    expect(badSecret.out).toMatch(/token endpoint refused the secret credentials: HTTP 401 invalid_client/);
    expect(badSecret.out).toContain('CKR_USER_NOT_LOGGED_IN');
    const other = await newOperation([{ keyid: 'p11-rsa', usages: 1 }]);
    const wrongKey = sign(env({ KEYSERVER_OPERATION_ID: other }));
    expect(wrongKey.out).toMatch(/HTTP 403 key_not_in_operation .*-> CKR_KEY_FUNCTION_NOT_PERMITTED/);
  });

  it('treats hostile or silent Keyserver answers as errors: wrong signatures, control characters, no answer', async () => {
    // A stand-in Keyserver on loopback: the real key list, then one hostile sign-order answer per request.
    const keyList = await call(p.facts.urls.api, await ciToken(p), 'GET', '/api/keys');
    const wrong: [number, string][] = [
      [201, JSON.stringify({ result: 'zz'.repeat(64) })],
      [201, JSON.stringify({ result: 'ab'.repeat(63) })],
      [201, JSON.stringify({ result: 'ab'.repeat(64) + '00' })],
      [409, JSON.stringify({ code: 'usage_exhausted\u001b[31m', detail: `\u202eevil\u0000\n${'x'.repeat(10_000)}` })],
    ];
    const huge: [number, string] = [200, 'x'.repeat(5 * 1024 * 1024)];
    // One answer per request: pkcs11-tool tries C_Sign, then C_SignUpdate/C_SignFinal; a lost answer (the
    // huge one) is sent again once by the module. After these, the stand-in never answers.
    const answers = [...wrong.flatMap((a) => [a, a]), huge, huge, huge, huge];
    let signOrders = 0;
    const server: Server = createServer((req, res) => {
      req.resume();
      if (req.url === '/api/keys') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(keyList.body));
      const answer = answers[signOrders++];
      if (!answer) return; // never answers: the module's timeout must end it
      res.writeHead(answer[0], { 'content-type': 'application/json' }).end(answer[1]);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const e = env({ KEYSERVER_URL: url, KEYSERVER_TOKEN: 'opaque-test-token', KEYSERVER_PKCS11_TIMEOUT: '1' });
    const signAsync = () =>
      new Promise<{ status: number | null; out: string; ms: number }>((resolve) => {
        const started = Date.now();
        const child = spawn('pkcs11-tool', ['--module', MODULE, '--sign', '-m', 'ECDSA-SHA256', ...id('demo-fw-dev'), '-i', file('msg.bin'), '-o', file('hostile.sig')], { env: e });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.once('exit', (status) => resolve({ status, out, ms: Date.now() - started }));
      });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await signAsync();
        expect([i, r.status === 0, r.out]).toEqual([i, false, expect.stringContaining('the answer holds no 64-byte signature -> ')]);
        expect(r.out).toContain('CKR_DEVICE_ERROR');
      }
      const problem = await signAsync();
      // Non-ASCII bytes and control characters become '?', the detail is cut at the NUL cJSON stops at.
      expect(problem.out).toMatch(/HTTP 409 usage_exhausted\?\[31m \(\?\?\?evil\) -> CKR_FUNCTION_REJECTED/);
      for (const raw of ['\u0000', '\u001b', '\u202e']) expect(problem.out.includes(raw)).toBe(false);
      expect(Math.max(...problem.out.split('\n').map((l) => l.length))).toBeLessThan(600);
      const huge = await signAsync();
      expect(huge.out).toMatch(/refused the Keyserver's answer: the answer is larger than 4194304 bytes -> CKR_DEVICE_ERROR/);
      const silent = await signAsync();
      expect(silent.out).toMatch(/the Keyserver is unreachable \(timeout\).* -> CKR_DEVICE_ERROR/);
      // 1 s per request, one retry of a lost answer 1 s later, for C_Sign and then C_SignFinal: bounded, no hang.
      expect(silent.ms).toBeLessThan(12_000);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('logs in with a certificate credential, with Azure DevOps workload identity, and with the PKCE login ksctl cached', async () => {
    const cert = ciClientId('demo-ci-cert');
    const byCert = p11(['-O', '--type', 'privkey'], env({ KEYSERVER_CLIENT_ID: cert, KEYSERVER_CLIENT_SECRET: '', KEYSERVER_CLIENT_CERTIFICATE: DEMO_CERT, KEYSERVER_CLIENT_PRIVATE_KEY: DEMO_KEY }));
    expect([byCert.status, byCert.out]).toEqual([0, expect.stringContaining('demo-fw-dev')]);

    const wif = p11(['-O', '--type', 'privkey'], env({
      KEYSERVER_AUTH: 'wif',
      KEYSERVER_CLIENT_ID: '',
      KEYSERVER_CLIENT_SECRET: '',
      AZURESUBSCRIPTION_CLIENT_ID: ciClientId('demo-ado-wif'),
      SYSTEM_OIDCREQUESTURI: `${p.env.urls.emulator}/_ado/demo-org/oidctoken`,
      SYSTEM_ACCESSTOKEN: 'pipeline-job-access-token',
      AZURESUBSCRIPTION_SERVICE_CONNECTION_ID: 'f0e1d2c3-b4a5-4968-8778-695a4b3c2d1e',
    }));
    expect([wif.status, wif.out]).toEqual([0, expect.stringContaining('demo-fw-dev')]);

    // A provisioning user logs in once with ksctl (PKCE on a loopback redirect); the module uses that cache.
    const cacheDir = file('ksctl-cache');
    const demoFile = file('demo.json');
    writeFileSync(demoFile, JSON.stringify(p.facts));
    const child = spawn(process.execPath, [KSCTL, '--demo', demoFile, '--json', '--pkce', 'login', '--no-browser', '--timeout', '60'], { env: { PATH: process.env['PATH'] ?? '', KSCTL_CACHE_DIR: cacheDir } });
    let stderr = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        const m = /Sign in at: (\S+)/.exec(stderr);
        if (m) resolve(m[1]);
      });
      child.once('exit', () => reject(new Error(`ksctl exited early: ${stderr}`)));
    });
    const otto = demoTenant.users.find((u) => u.username === 'otto.orderer@demo.test');
    const emulator = { baseUrl: p.env.urls.emulator, tokenEndpoint: p.facts.tokenEndpoint, authorizationEndpoint: '' };
    const { callbackUrl } = await signInAt(emulator, { authorizationUrl: url, username: otto?.username ?? '', password: otto?.password ?? '' });
    expect((await fetch(callbackUrl)).status).toBe(200);
    expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(0);
    await settle();
    const pkceEnv = env({ KEYSERVER_AUTH: 'pkce', KSCTL_CACHE_DIR: cacheDir, KEYSERVER_CLIENT_ID: p.facts.provisioningClientId, KEYSERVER_CLIENT_SECRET: '', KEYSERVER_SCOPE: p.facts.scope });
    const byPkce = p11(['-O', '--type', 'privkey'], pkceEnv);
    expect([byPkce.status, byPkce.out]).toEqual([0, expect.stringContaining('demo-fw-prod')]);
    // An expired cached token is refreshed with ksctl's refresh token and written back for ksctl.
    const [cacheName] = readdirSync(cacheDir);
    const cached = JSON.parse(readFileSync(join(cacheDir, cacheName), 'utf8')) as { accessToken: string; expiresAt: number; refreshToken: string };
    writeFileSync(join(cacheDir, cacheName), JSON.stringify({ ...cached, expiresAt: Date.now() - 1000 }));
    const refreshed = p11(['-O', '--type', 'privkey'], pkceEnv);
    expect([refreshed.status, refreshed.out]).toEqual([0, expect.stringContaining('demo-fw-prod')]);
    const after = JSON.parse(readFileSync(join(cacheDir, cacheName), 'utf8')) as typeof cached;
    expect(after.accessToken).not.toBe(cached.accessToken);
    expect(after.expiresAt).toBeGreaterThan(Date.now());
    expect(after.refreshToken).toEqual(expect.any(String));
    expect(spawnSync('stat', ['-c', '%a', join(cacheDir, cacheName)], { encoding: 'utf8' }).stdout.trim()).toBe('600');
  });

  it('writes no secret into its debug log: no client secret, assertion, token, refresh token or PIN', () => {
    const log = file('debug.log');
    const secretEnv = env({ KEYSERVER_PKCS11_LOG: 'debug', KEYSERVER_PKCS11_LOG_FILE: log });
    expect(p11(['--login', '--pin', '4711-secret-pin', '--sign', '-m', 'ECDSA-SHA256', ...id('demo-fw-dev'), '-i', file('msg.bin'), '-o', file('log.sig')], secretEnv).status).toBe(0);
    const certEnv = env({ KEYSERVER_PKCS11_LOG: 'debug', KEYSERVER_PKCS11_LOG_FILE: log, KEYSERVER_CLIENT_ID: ciClientId('demo-ci-cert'), KEYSERVER_CLIENT_SECRET: '', KEYSERVER_CLIENT_CERTIFICATE: DEMO_CERT, KEYSERVER_CLIENT_PRIVATE_KEY: DEMO_KEY });
    expect(p11(['-O'], certEnv).status).toBe(0);
    const text = readFileSync(log, 'utf8');
    expect(text).toContain('signed with key demo-fw-dev');
    for (const secret of [ci?.clientSecret ?? 'x', '4711-secret-pin', 'eyJ', 'Bearer', 'BEGIN', 'client_assertion=']) expect([secret, text.includes(secret)]).toEqual([secret, false]);
  });

  it('keeps signing in one long-running process after its first token expired, from parallel sessions (pkcs11js)', () => {
    const log = file('long.log');
    const r = spawnSync(process.execPath, ['-e', LONG_RUNNING_SIGNER, require.resolve('pkcs11js'), MODULE, String(TOKEN_TTL_SECONDS + 1)], {
      env: env({ KEYSERVER_PKCS11_LOG: 'info', KEYSERVER_PKCS11_LOG_FILE: log }),
      encoding: 'utf8',
      timeout: 90_000,
    });
    expect([r.status, r.stderr]).toEqual([0, '']);
    const out = JSON.parse(r.stdout) as { signed: [string, string][]; shortBuffer: string; oaep: string };
    const pub = new X509Certificate(certs.get('demo-fw-dev') ?? '').publicKey;
    const verifies = (data: string, sig: string) => cryptoVerify('sha256', Buffer.from(data), { key: pub, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'hex'));
    expect(out.signed).toHaveLength(8);
    for (const [data, sig] of out.signed) expect([data, verifies(data, sig)]).toEqual([data, true]);
    expect(verifies(out.signed[1][0], out.signed[2][1])).toBe(false);
    expect(out.shortBuffer).toMatch(/CKR_BUFFER_TOO_SMALL/);
    expect(out.oaep).toMatch(/CKR_MECHANISM_INVALID/);
    const lines = readFileSync(log, 'utf8').split('\n');
    // One token before the wait, a renewed one after it; never a 401 (the renewal comes before expiry).
    expect(lines.filter((l) => l.includes('token obtained')).length).toBeGreaterThanOrEqual(2);
    // The status as the module logs it (": 401 invalid_token, renewing", "HTTP 401"), not a port that happens to contain 401.
    expect(lines.filter((l) => /(: |HTTP )401\b/.test(l))).toEqual([]);
    // The length query asked the Keyserver nothing: 8 signatures, 8 sign orders.
    expect(lines.filter((l) => l.includes('signed with key demo-fw-dev'))).toHaveLength(8);
  });

  function ciClientId(name: string): string {
    const c = demoTenant.ciClients.find((x) => x.name === name);
    if (!c) throw new Error(`no demo client ${name}`);
    return c.clientId;
  }
});
