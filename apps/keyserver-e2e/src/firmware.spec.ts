import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createDb, KeyRepository, type Db } from '@keyserver/data-access';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { makeImage, MiB } from './firmware-support';
import { call, ciToken, operationBody, run, userToken } from './operations-support';

const CAP = 300 * MiB;

interface Upload {
  status: number;
  type: string;
  body: Buffer;
}

/** POSTs a stream with node:http so the test controls the headers and never holds the image in memory. */
function upload(base: string, token: string, query: Record<string, string>, body: Readable | undefined, headers: Record<string, string | number> = {}): Promise<Upload> {
  return new Promise((resolve, reject) => {
    const url = new URL(`/api/v1/firmware/signatures?${new URLSearchParams(query)}`, base);
    const req = request(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks) }));
    });
    // The server may answer (413) before it has read everything; that ends the upload, not the test.
    req.on('error', (err) => (err as NodeJS.ErrnoException).code === 'EPIPE' || (err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err));
    if (body) body.pipe(req);
    else req.end();
  });
}

function peakRssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
}

describe('firmware signatures (streamed CMS)', () => {
  let p: RunningPlatform;
  let db: Db;
  let work: string;
  let ci: string;
  const f = (name: string) => join(work, name);
  const query = (operationid: string, keyid = 'demo-fw-dev') => ({ operationid, keyid, description: 'e2e firmware build' });
  const newOp = async (keyid: string, usages: number, extra: Record<string, unknown> = {}) => {
    const r = await call<{ id: string }>(p.env.urls.api, ci, 'POST', '/api/v1/operations', operationBody(keyid, usages, extra));
    expect(r.status).toBe(201);
    return r.body.id;
  };
  const usagesUsed = async (id: string) =>
    (await call<{ keys: { usagesUsed: number }[] }>(p.env.urls.api, ci, 'GET', `/api/v1/operations/${id}`)).body.keys[0].usagesUsed;

  beforeAll(async () => {
    p = await startPlatform({ extraApiEnv: { FIRMWARE_MAX_BYTES: String(CAP) } });
    db = createDb(p.databaseUrl, { poolSize: 1 });
    work = mkdtempSync(join(tmpdir(), 'ks-fw-'));
    ci = await ciToken(p);
    writeFileSync(f('root.pem'), (await new KeyRepository(db).getByKeyid('demo-root')).certificatePem);
  });

  afterAll(async () => {
    await db?.close();
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('signs a streamed 20 MiB image with the development FW key; openssl cms -verify accepts the detached CMS', async () => {
    await makeImage(f('fw.bin'), 20 * MiB);
    const operationid = await newOp('demo-fw-dev', 2);
    const r = await upload(p.env.urls.api, ci, query(operationid), createReadStream(f('fw.bin')));
    expect(r.status).toBe(201);
    expect(r.type).toBe('application/pkcs7-signature');
    writeFileSync(f('fw.p7s'), r.body);
    const out = run('openssl', ['cms', '-verify', '-binary', '-content', f('fw.bin'), '-inform', 'DER', '-in', f('fw.p7s'), '-CAfile', f('root.pem'), '-purpose', 'any', '-out', '/dev/null']);
    expect(out).toBe('');
    // A different image does not match the signature.
    writeFileSync(f('other.bin'), 'not the firmware');
    expect(() =>
      run('openssl', ['cms', '-verify', '-binary', '-content', f('other.bin'), '-inform', 'DER', '-in', f('fw.p7s'), '-CAfile', f('root.pem'), '-purpose', 'any', '-out', '/dev/null']),
    ).toThrow(/digest failure|verification failure/i);
    expect(await usagesUsed(operationid)).toBe(1);
  });

  it('signs with the RSA-3072 production key once two approvers approved the operation', async () => {
    const otto = await userToken(p, 'otto.orderer@demo.test');
    const op = await call<{ id: string }>(p.env.urls.api, otto, 'POST', '/api/v1/operations', operationBody('demo-fw-prod', 1));
    writeFileSync(f('prod.bin'), randomBytes(3 * MiB + 17));
    const early = await upload(p.env.urls.api, ci, query(op.body.id, 'demo-fw-prod'), createReadStream(f('prod.bin')));
    expect(early.status).toBe(409);
    expect(JSON.parse(early.body.toString()).code).toBe('operation_not_usable');
    for (const user of ['ann.approver@demo.test', 'arno.approver@demo.test']) {
      const a = await call(p.env.urls.api, await userToken(p, user), 'POST', `/api/v1/operations/${op.body.id}/approvals`);
      expect(a.status).toBe(201);
    }
    const r = await upload(p.env.urls.api, ci, query(op.body.id, 'demo-fw-prod'), createReadStream(f('prod.bin')));
    expect(r.status).toBe(201);
    writeFileSync(f('prod.p7s'), r.body);
    run('openssl', ['cms', '-verify', '-binary', '-content', f('prod.bin'), '-inform', 'DER', '-in', f('prod.p7s'), '-CAfile', f('root.pem'), '-purpose', 'any', '-out', '/dev/null']);
    const again = await upload(p.env.urls.api, ci, query(op.body.id, 'demo-fw-prod'), createReadStream(f('prod.bin')));
    expect(again.status).toBe(409);
    expect(JSON.parse(again.body.toString()).code).toBe('usage_exhausted');
  });

  it('signs only images whose digest the operation allows', async () => {
    writeFileSync(f('allowed.bin'), 'allowed firmware 1.2.3');
    writeFileSync(f('other.bin'), 'some other firmware');
    const allowed = createHash('sha256').update(readFileSync(f('allowed.bin'))).digest('hex');
    const operationid = await newOp('demo-fw-dev', 2, { digests: [allowed] });
    const refused = await upload(p.env.urls.api, ci, query(operationid), createReadStream(f('other.bin')));
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body.toString()).code).toBe('digest_not_allowed');
    expect(await usagesUsed(operationid)).toBe(0);
    const ok = await upload(p.env.urls.api, ci, query(operationid), createReadStream(f('allowed.bin')));
    expect(ok.status).toBe(201);
    expect(await usagesUsed(operationid)).toBe(1);
  });

  it('hashes a 256 MiB image as it streams, without holding it in memory', async () => {
    await makeImage(f('big.bin'), 256 * MiB);
    const operationid = await newOp('demo-fw-dev', 1);
    const pid = p.api.child.pid ?? 0;
    const before = peakRssKb(pid);
    const r = await upload(p.env.urls.api, ci, query(operationid), createReadStream(f('big.bin')));
    expect(r.status).toBe(201);
    const grewMiB = (peakRssKb(pid) - before) / 1024;
    expect(grewMiB).toBeLessThan(96);
    writeFileSync(f('big.p7s'), r.body);
    // openssl recomputes the digest of the 256 MiB file and compares it with the signed messageDigest.
    run('openssl', ['cms', '-verify', '-binary', '-content', f('big.bin'), '-inform', 'DER', '-in', f('big.p7s'), '-CAfile', f('root.pem'), '-purpose', 'any', '-out', '/dev/null']);
  });

  describe('refusals', () => {
    let operationid = '';
    beforeAll(async () => {
      operationid = await newOp('demo-fw-dev', 3);
      writeFileSync(f('small.bin'), 'small firmware');
    });
    afterEach(async () => {
      expect(await usagesUsed(operationid)).toBe(0);
    });

    it('refuses a declared Content-Length above the cap with 413 before reading the body', async () => {
      const body = Readable.from([Buffer.alloc(1024)]);
      const r = await upload(p.env.urls.api, ci, query(operationid), body, { 'content-length': CAP + 1 });
      expect(r.status).toBe(413);
      expect(JSON.parse(r.body.toString()).code).toBe('payload_too_large');
    });

    it('refuses a chunked upload that grows past the cap with 413', async () => {
      let sent = 0;
      const block = Buffer.alloc(MiB, 7);
      const body = Readable.from(
        (function* () {
          while (sent <= CAP) {
            sent += block.length;
            yield block;
          }
        })(),
      );
      const r = await upload(p.env.urls.api, ci, query(operationid), body, { 'transfer-encoding': 'chunked' });
      expect(r.status).toBe(413);
      expect(JSON.parse(r.body.toString()).code).toBe('payload_too_large');
    });

    it.each([
      ['fail JSON content type', { 'content-type': 'application/json' }],
      ['fail text content type', { 'content-type': 'text/plain' }],
    ])('%s: refuses with 415 unsupported_media_type', async (_n, headers) => {
      const r = await upload(p.env.urls.api, ci, query(operationid), createReadStream(f('small.bin')), headers);
      expect(r.status).toBe(415);
      expect(JSON.parse(r.body.toString()).code).toBe('unsupported_media_type');
    });

    it.each([
      ['fail missing operationid', (id: string) => ({ keyid: 'demo-fw-dev', description: 'e2e firmware build', _: id.slice(0, 0) })],
      ['fail non-uuid operationid', () => ({ operationid: 'op-1', keyid: 'demo-fw-dev', description: 'e2e firmware build' })],
      ['fail unknown parameter', (id: string) => ({ operationid: id, keyid: 'demo-fw-dev', description: 'e2e firmware build', hash: 'md5' })],
      ['fail short description', (id: string) => ({ operationid: id, keyid: 'demo-fw-dev', description: 'x' })],
    ])('%s: refuses the query with 400 validation_failed', async (_n, q) => {
      const r = await upload(p.env.urls.api, ci, q(operationid) as Record<string, string>, createReadStream(f('small.bin')));
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body.toString()).code).toBe('validation_failed');
    });

    it.each([
      ['fail CA key', 'demo-ca-dev', 409, 'key_not_usable'],
      ['fail unknown key', 'no-such-key', 403, 'key_not_permitted'],
      ['fail key not in the operation', 'demo-fw-prod', 403, 'key_not_in_operation'],
    ])('%s: refuses %s with %i %s', async (_n, keyid, status, code) => {
      const r = await upload(p.env.urls.api, ci, query(operationid, keyid), createReadStream(f('small.bin')));
      expect(r.status).toBe(status);
      expect(JSON.parse(r.body.toString()).code).toBe(code);
    });

    it('refuses an empty image with 400 validation_failed', async () => {
      const r = await upload(p.env.urls.api, ci, query(operationid), undefined, { 'content-length': 0 });
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body.toString()).code).toBe('validation_failed');
    });
  });
});
