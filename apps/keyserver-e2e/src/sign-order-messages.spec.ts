import { spawnSync } from 'node:child_process';
import { X509Certificate, createHash, randomBytes, verify as cryptoVerify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { AuditRepository, SignOrderRepository, createDb, type Db } from '@keyserver/data-access';
import { demoTenant, repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken } from './admin-helpers';
import { call, ciToken, operationBody, signOrderBody } from './operations-support';

// Message sign orders (ADR 0030): an Ed25519 key signs the message itself (PureEdDSA), sent as `message` (base64,
// at most 64 KiB). Every signature is verified by Node's crypto.verify(null, ...) and by openssl pkeyutl -rawin with
// the public key of the key's certificate; every refusal is a 4xx with a stable code, audited, and spends no usage.

const KSCTL = join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js');
const MAX = 64 * 1024;
const ED = 'msg-ed';
const RSA = 'msg-rsa';
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');

describe('message sign orders (Ed25519)', () => {
  let p: RunningPlatform;
  let db: Db;
  let work: string;
  let ci = '';
  let pub: X509Certificate['publicKey'];
  let pubPem = '';
  const api = <T = Record<string, unknown>>(method: string, path: string, body?: unknown, headers?: Record<string, string>) => call<T>(p.env.urls.api, ci, method, path, body, headers);
  const order = (operationid: string, message: Buffer | string, extra: Record<string, unknown> = {}) => ({ operationid, keyid: ED, message: b64(message), description: 'e2e message sign order', ...extra });
  const newOperation = async (keyid: string, usages: number, extra: Record<string, unknown> = {}) => {
    const r = await api<{ id: string }>('POST', '/api/v1/operations', operationBody(keyid, usages, extra));
    expect(r.status).toBe(201);
    return r.body.id;
  };
  const used = async (id: string) => (await api<{ keys: { usagesUsed: number }[] }>('GET', `/api/v1/operations/${id}`)).body.keys[0].usagesUsed;
  const opensslVerifies = (message: Buffer, sig: Buffer) => {
    const name = randomBytes(6).toString('hex');
    writeFileSync(join(work, `${name}.msg`), message);
    writeFileSync(join(work, `${name}.sig`), sig);
    const r = spawnSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', join(work, 'ed.pub.pem'), '-rawin', '-in', join(work, `${name}.msg`), '-sigfile', join(work, `${name}.sig`)], { encoding: 'utf8' });
    return r.status === 0 && r.stdout.includes('Signature Verified Successfully');
  };

  beforeAll(async () => {
    p = await startPlatform();
    db = createDb(p.databaseUrl, { poolSize: 2 });
    work = mkdtempSync(join(tmpdir(), 'ks-msg-'));
    // An Ed25519 FW key made as administrators make keys (SoftHSM, CKM_EC_EDWARDS_KEY_PAIR_GEN), granted to demo-ci.
    const ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    const alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    const session = await activeSession(ada, alan, 'Ed25519 message sign orders');
    for (const [keyid, algorithm] of [[ED, 'ED25519'], [RSA, 'RSA_2048']]) {
      const made = await ada('POST', '/api/v1/keys', { session, body: { keyid, type: 'FW', algorithm, requiredApprovers: 0, validityDays: 30, commonName: `${algorithm} firmware`, product: 'msg-gadget' } });
      expect([keyid, made.status]).toEqual([keyid, 201]);
    }
    const grants = [ED, RSA].map((keyid) => ({ keyid, permissions: ['ORDER', 'SIGN'] }));
    expect((await ada('POST', '/api/v1/roles', { session, body: { name: 'msg-signer', natures: ['ORDERER', 'SIGNER'], keys: grants } })).status).toBe(201);
    const demoCi = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
    const subjects = await ada<{ items: { id: string; oid: string; roles: string[] }[] }>('GET', '/api/v1/subjects');
    const subject = subjects.body.items.find((s) => s.oid === demoCi?.servicePrincipalOid);
    if (!subject) throw new Error('demo-ci subject missing');
    expect((await ada('PATCH', `/api/v1/subjects/${subject.id}`, { session, body: { roles: [...subject.roles, 'msg-signer'] } })).status).toBe(200);
    ci = await ciToken(p);
    for (let i = 0; i < 100; i++) {
      if ((await api('GET', `/api/v1/keys/${ED}`)).status === 200) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const key = await api<{ algorithm: string; certificate: string }>('GET', `/api/v1/keys/${ED}`);
    expect(key.body.algorithm).toBe('ED25519');
    const cert = new X509Certificate(key.body.certificate);
    pub = cert.publicKey;
    expect(pub.asymmetricKeyType).toBe('ed25519');
    pubPem = pub.export({ type: 'spki', format: 'pem' }).toString();
    writeFileSync(join(work, 'ed.pub.pem'), pubPem);
  });

  afterAll(async () => {
    await db?.close();
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it.each([
    ['ok one byte', Buffer.from([0x2a])],
    ['ok a firmware manifest', Buffer.from('gadget firmware 1.2.3 sha256=9f2c...\n')],
    ['ok exactly 64 KiB', Buffer.alloc(MAX, 0x5a)],
  ])('%s: 201 with a PureEdDSA signature Node and openssl verify, for that message only', async (_n, message) => {
    const op = await newOperation(ED, 1);
    const r = await api<{ keyid: string; messageSha256: string; result: string }>('POST', '/api/signorders', order(op, message));
    expect([r.status, r.body.keyid, r.body.messageSha256]).toEqual([201, ED, sha256(message)]);
    const sig = Buffer.from(r.body.result, 'hex');
    expect(sig).toHaveLength(64);
    expect(cryptoVerify(null, message, pub, sig)).toBe(true);
    expect(cryptoVerify(null, Buffer.concat([message, Buffer.from('x')]), pub, sig)).toBe(false);
    expect(opensslVerifies(message, sig)).toBe(true);
    expect(await used(op)).toBe(1);
  });

  it.each(['SHA256', 'SHA384'])('fail an ED25519 key declared with %s (its CMS signatures hash with SHA-512, RFC 8419): 400 validation_failed, no key', async (hash) => {
    const ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    const alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    const session = await activeSession(ada, alan, `Ed25519 with ${hash}`);
    const keyid = `ed-${hash.toLowerCase()}`;
    const r = await ada<{ code: string }>('POST', '/api/v1/keys', { session, body: { keyid, type: 'FW', algorithm: 'ED25519', hash, requiredApprovers: 0, validityDays: 30, commonName: 'Ed25519 firmware', product: 'msg-gadget' } });
    expect([r.status, r.body.code]).toEqual([400, 'validation_failed']);
    expect((await ada('GET', `/api/v1/keys/${keyid}`)).status).toBe(404);
  });

  it('records the message by its SHA-256 only: the audit entry and the sign order row never hold the message', async () => {
    const message = Buffer.from(`secret-looking firmware bytes ${randomBytes(8).toString('hex')}`);
    const op = await newOperation(ED, 1);
    expect((await api('POST', '/api/signorders', order(op, message))).status).toBe(201);
    const events = await new AuditRepository(db).list({ action: 'signorder.create', operationId: op, limit: 10 });
    expect(events.items).toHaveLength(1);
    const e = events.items[0];
    expect([e.outcome, e.keyid, e.digest]).toEqual(['SUCCESS', ED, sha256(message)]);
    expect(e.details).toMatchObject({ inputpadding: 'message', messageBytes: message.length });
    const stored = JSON.stringify(e);
    expect(stored).not.toContain(b64(message));
    expect(stored).not.toContain(message.toString('hex'));
    const [row] = await new SignOrderRepository(db).listByOperation(op);
    expect([row.inputdata, row.inputformat, row.inputpadding, row.signatureformat]).toEqual([sha256(message), 'hex', 'message', 'raw']);
  });

  it('binds a message to the operation by its SHA-256: a declared hash signs, any other message is 403 digest_not_allowed', async () => {
    const good = Buffer.from('release 2.0.0 manifest');
    const other = Buffer.from('release 2.0.0 manifest, edited');
    // The SHA-512 of the message (the key's hash) is not the binding: only the SHA-256 counts.
    const sha512 = createHash('sha512').update(other).digest('hex');
    const op = await newOperation(ED, 3, { digests: [sha256(good), sha512] });
    const refused = await api('POST', '/api/signorders', order(op, other));
    expect([refused.status, refused.body['code']]).toEqual([403, 'digest_not_allowed']);
    const signed = await api<{ result: string }>('POST', '/api/signorders', order(op, good));
    expect(signed.status).toBe(201);
    expect(cryptoVerify(null, good, pub, Buffer.from(signed.body.result, 'hex'))).toBe(true);
    expect(await used(op)).toBe(1);
    const denied = (await new AuditRepository(db).list({ action: 'signorder.create', operationId: op, limit: 10 })).items.filter((e) => e.outcome === 'DENIED');
    // The refused attempt is audited with the SHA-256 of the message it tried to sign.
    expect(denied.map((e) => [e.errorCode, e.digest])).toEqual([['digest_not_allowed', sha256(other)]]);
  });

  it('answers a retry with the same Idempotency-Key with the same signature and one usage; another message under that key is 422', async () => {
    const message = Buffer.from('idempotent message');
    const op = await newOperation(ED, 5);
    const headers = { 'idempotency-key': 'msg-retry-1' };
    const first = await api<{ result: string }>('POST', '/api/signorders', order(op, message), headers);
    const again = await api<{ result: string }>('POST', '/api/signorders', order(op, message), headers);
    expect([first.status, again.status, again.body.result]).toEqual([201, 201, first.body.result]);
    const changed = await api('POST', '/api/signorders', order(op, 'another message'), headers);
    expect([changed.status, changed.body['code']]).toEqual([422, 'idempotency_key_reused']);
    expect(await used(op)).toBe(1);
  });

  it('spends each usage exactly once when twelve message orders race for three usages', async () => {
    const op = await newOperation(ED, 3);
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => api<{ code?: string; result?: string }>('POST', '/api/signorders', order(op, `race ${i}`))));
    const ok = answers.filter((r) => r.status === 201);
    expect(ok).toHaveLength(3);
    expect(answers.filter((r) => r.status !== 201).map((r) => [r.status, r.body.code])).toEqual(Array(9).fill([409, 'usage_exhausted']));
    expect(await used(op)).toBe(3);
  });

  describe('hostile input: a 4xx with a stable code, audited, no usage spent', () => {
    let op = '';
    let fw = '';
    let rsa = '';
    beforeAll(async () => {
      op = await newOperation(ED, 3);
      fw = await newOperation('demo-fw-dev', 3);
      rsa = await newOperation(RSA, 3);
    });
    afterAll(async () => {
      expect([await used(op), await used(fw), await used(rsa)]).toEqual([0, 0, 0]);
    });

    const digestOrder = () => ({ ...signOrderBody(op, ED, sha256('x')) });
    it.each([
      ['fail a digest for an Ed25519 key', 400, 'message_required', () => digestOrder()],
      ['fail a 64-byte (SHA-512) digest for an Ed25519 key', 400, 'message_required', () => ({ ...digestOrder(), inputdata: createHash('sha512').update('x').digest('hex') })],
      ['fail a message for an ECDSA key', 400, 'message_not_supported_for_key', () => ({ ...order(fw, 'firmware'), keyid: 'demo-fw-dev' })],
      ['fail a message for an RSA key', 400, 'message_not_supported_for_key', () => ({ ...order(rsa, 'firmware'), keyid: RSA })],
      ['fail one byte over 64 KiB', 413, 'message_too_large', () => order(op, Buffer.alloc(MAX + 1, 1))],
      ['fail an empty message', 400, 'validation_failed', () => ({ ...order(op, 'x'), message: '' })],
      ['fail base64 with characters outside the alphabet', 400, 'invalid_input_encoding', () => ({ ...order(op, 'x'), message: '!!!!' })],
      ['fail base64url instead of base64', 400, 'invalid_input_encoding', () => ({ ...order(op, 'x'), message: '-_-_' })],
      ['fail unpadded base64', 400, 'invalid_input_encoding', () => ({ ...order(op, 'x'), message: 'YWJjZA' })],
      ['fail base64 with a line break', 400, 'invalid_input_encoding', () => ({ ...order(op, 'x'), message: 'YWJj\nZA==' })],
      ['fail a message that is not a string', 400, 'validation_failed', () => ({ ...order(op, 'x'), message: [1, 2, 3] })],
      ['fail a message next to a digest', 400, 'validation_failed', () => ({ ...digestOrder(), message: b64('x') })],
      ['fail a message with a signature format', 400, 'validation_failed', () => ({ ...order(op, 'x'), signatureformat: 'p1363' })],
      ['fail a body over the route cap (96 KiB)', 413, 'payload_too_large', () => ({ ...order(op, 'x'), message: 'A'.repeat(100 * 1024) })],
    ])('%s: %i %s', async (_n, status, code, body) => {
      const r = await api('POST', '/api/signorders', body());
      expect([r.status, r.body['code'], r.headers.get('content-type')]).toEqual([status, code, expect.stringContaining('application/problem+json')]);
    });

    it('audits the refusals the service saw as DENIED with their codes (message hashes, never messages)', async () => {
      const audit = new AuditRepository(db);
      const mine = [
        ...(await audit.list({ action: 'signorder.create', operationId: op, limit: 100 })).items,
        ...(await audit.list({ action: 'signorder.create', operationId: fw, limit: 100 })).items,
        ...(await audit.list({ action: 'signorder.create', operationId: rsa, limit: 100 })).items,
      ];
      expect(mine.every((e) => e.outcome === 'DENIED')).toBe(true);
      expect(new Set(mine.map((e) => e.errorCode))).toEqual(new Set(['message_required', 'message_not_supported_for_key', 'message_too_large', 'invalid_input_encoding']));
      const tooLarge = mine.find((e) => e.errorCode === 'message_too_large');
      expect([tooLarge?.digest, tooLarge?.details['messageBytes']]).toEqual([sha256(Buffer.alloc(MAX + 1, 1)), MAX + 1]);
    });

    it('audits the refusals at the HTTP edge (schema, body cap) as request.refused on /api/signorders', async () => {
      // Edge refusals are audited after the answer is sent (RefusalAudit, ADR 0011): wait for the entries.
      let codes = new Set<string | null>();
      for (let i = 0; i < 50 && !(codes.has('validation_failed') && codes.has('payload_too_large')); i++) {
        if (i) await new Promise((r) => setTimeout(r, 100));
        const refused = await new AuditRepository(db).list({ action: 'request.refused', limit: 200 });
        codes = new Set(refused.items.filter((e) => e.details['path'] === '/api/signorders').map((e) => e.errorCode ?? null));
      }
      expect([...codes].sort()).toEqual(expect.arrayContaining(['payload_too_large', 'validation_failed']));
    });
  });

  it('property: any message of 1 to 4096 bytes is signed so that Node verifies it, and its hash is what the answer says', async () => {
    const op = await newOperation(ED, 40);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 4096 }), async (bytes) => {
        const message = Buffer.from(bytes);
        const r = await api<{ messageSha256: string; result: string }>('POST', '/api/signorders', order(op, message));
        expect([r.status, r.body.messageSha256]).toEqual([201, sha256(message)]);
        expect(cryptoVerify(null, message, pub, Buffer.from(r.body.result, 'hex'))).toBe(true);
      }),
      { numRuns: 25, seed: 30 },
    );
  });

  it('ksctl sign --message signs a file with the Ed25519 key; openssl and ksctl verify --message accept it, not an edited file', () => {
    const demoFile = join(work, 'demo.json');
    writeFileSync(demoFile, JSON.stringify(p.facts));
    const message = join(work, 'manifest.txt');
    writeFileSync(message, 'ksctl signed manifest\n');
    const ksctl = (...args: string[]) => spawnSync(process.execPath, [KSCTL, '--demo', demoFile, '--json', ...args], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '', KSCTL_CACHE_DIR: join(work, 'cache') }, timeout: 60_000 });
    const op = ksctl('operations', 'create', '--key', `${ED}=1`, '--description', 'ksctl message order', '--digest', sha256(readFileSync(message)));
    expect(op.status).toBe(0);
    const id = JSON.parse(op.stdout).id as string;
    const sig = join(work, 'manifest.sig');
    const r = ksctl('sign', '--operation', id, '--key', ED, '--message', message, '--out', sig);
    expect([r.status, JSON.parse(r.stdout).messageSha256]).toEqual([0, sha256(readFileSync(message))]);
    expect(opensslVerifies(readFileSync(message), readFileSync(sig))).toBe(true);
    // ksctl verifies it offline too: the signature over the message, the chain to the root, codeSigning.
    const chainFile = join(work, 'ed.chain.pem');
    expect(ksctl('keys', 'show', ED, '--chain', chainFile).status).toBe(0);
    const chain = readFileSync(chainFile, 'utf8').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
    writeFileSync(join(work, 'root.pem'), chain[chain.length - 1]);
    const verify = (file: string) => ksctl('verify', '--signature', sig, '--message', file, '--chain', chainFile, '--ca', join(work, 'root.pem'));
    const ok = verify(message);
    expect([ok.status, JSON.parse(ok.stdout)]).toEqual([0, expect.objectContaining({ verified: true, kind: 'message', messageSha256: sha256(readFileSync(message)) })]);
    writeFileSync(join(work, 'edited.txt'), 'ksctl signed manifest!\n');
    expect([verify(join(work, 'edited.txt')).status, JSON.parse(verify(join(work, 'edited.txt')).stdout).code]).toEqual([6, 'signature_invalid']);
    const big = join(work, 'big.bin');
    writeFileSync(big, Buffer.alloc(MAX + 1));
    const refused = ksctl('sign', '--operation', id, '--key', ED, '--message', big);
    expect([refused.status, refused.stdout]).toEqual([2, expect.stringContaining('at most 65536')]);
  });
});
