import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clientCredentialsToken, demoTenant, startPlatform, type RunningPlatform } from '@keyserver/testing';

/** ECDSA r||s (IEEE P1363) -> DER SEQUENCE { INTEGER r, INTEGER s }, so openssl can verify it. */
function p1363ToDer(sig: Buffer): Buffer {
  const half = sig.length / 2;
  const int = (b: Buffer) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = b.subarray(i);
    if (v[0] & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const body = Buffer.concat([int(sig.subarray(0, half)), int(sig.subarray(half))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

describe('walking skeleton', () => {
  let p: RunningPlatform;
  let token: string;
  let work: string;
  const ci = demoTenant.ciClients.find((c) => c.name === 'demo-ci');

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-skeleton-'));
    if (!ci?.clientSecret) throw new Error('demo-ci client missing from config/demo-tenant.json');
    token = await clientCredentialsToken(p.facts, ci.clientId, ci.clientSecret);
  });

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const api = (path: string, init: RequestInit = {}) =>
    fetch(`${p.env.urls.api}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
    });

  it('lists the keys a CI client may use with their PEM certificates', async () => {
    const r = await api('/api/keys');
    expect(r.status).toBe(200);
    const keys = (await r.json()) as { keyid: string; keyinfo: string; certificate: string }[];
    const ids = keys.map((k) => k.keyid);
    expect(ids).toEqual(expect.arrayContaining(['demo-fw-dev', 'demo-ca-dev', 'demo-fw-prod']));
    expect(ids).not.toContain('demo-root');
    for (const k of keys) {
      const cert = new X509Certificate(k.certificate);
      expect(cert.subject).toContain('Demo');
    }
  });

  it('returns the same signature for a retried Idempotency-Key without using another usage', async () => {
    const now = Date.now();
    const op = await api('/api/v1/operations', {
      method: 'POST',
      body: JSON.stringify({
        description: 'idempotent retries',
        validFrom: new Date(now - 60_000).toISOString(),
        validTo: new Date(now + 3_600_000).toISOString(),
        keys: [{ keyid: 'demo-fw-dev', usages: 2 }],
      }),
    });
    const { id: operationid } = (await op.json()) as { id: string };
    const order = (digest: string, key: string) =>
      api('/api/signorders', {
        method: 'POST',
        headers: { 'idempotency-key': key },
        body: JSON.stringify({ operationid, keyid: 'demo-fw-dev', inputdata: digest, inputformat: 'hex', inputpadding: 'none', signatureformat: 'asn1', description: 'retry-safe order' }),
      });
    const digest = createHash('sha256').update('retry me').digest('hex');
    const first = await order(digest, 'build-77-attempt');
    const retry = await order(digest, 'build-77-attempt');
    expect([first.status, retry.status]).toEqual([201, 201]);
    expect(((await retry.json()) as { result: string }).result).toBe(((await first.json()) as { result: string }).result);
    const view = (await (await api(`/api/v1/operations/${operationid}`)).json()) as { keys: { usagesUsed: number }[] };
    expect(view.keys[0].usagesUsed).toBe(1);
    const detail = (await (await api('/api/v1/keys/demo-fw-dev')).json()) as { type: string; chain: string[]; usage: { signOrders: number; lastUsedAt: string | null } };
    expect(detail.type).toBe('FW');
    expect(detail.chain).toHaveLength(2);
    expect(detail.usage.signOrders).toBeGreaterThanOrEqual(1);
    expect(detail.usage.lastUsedAt).not.toBeNull();
    // The same key with another request is 422 (never retry it), not a silent replay.
    const other = await order(createHash('sha256').update('something else').digest('hex'), 'build-77-attempt');
    expect([other.status, ((await other.json()) as { code: string }).code]).toEqual([422, 'idempotency_key_reused']);
  });

  describe('an Idempotency-Key reused with any other field', () => {
    let operationid: string;
    let otherOperation: string;
    const digest = createHash('sha256').update('bound to the whole request').digest('hex');
    const base = () => ({ operationid, keyid: 'demo-fw-dev', inputdata: digest, inputformat: 'hex', inputpadding: 'none', signatureformat: 'asn1', description: 'first request' });
    const order = (body: Record<string, unknown>, key: string) => api('/api/signorders', { method: 'POST', headers: { 'idempotency-key': key }, body: JSON.stringify(body) });
    const createOperation = async () => {
      const now = Date.now();
      const r = await api('/api/v1/operations', {
        method: 'POST',
        body: JSON.stringify({ description: 'idempotency fingerprint', validFrom: new Date(now - 60_000).toISOString(), validTo: new Date(now + 3_600_000).toISOString(), keys: [{ keyid: 'demo-fw-dev', usages: 20 }] }),
      });
      expect(r.status).toBe(201);
      return ((await r.json()) as { id: string }).id;
    };

    beforeAll(async () => {
      operationid = await createOperation();
      otherOperation = await createOperation();
    });

    it.each([
      // The reported bug: the stored asn1 signature came back for a p1363 request.
      ['fail signatureformat asn1 -> p1363', { signatureformat: 'p1363' }],
      ['fail another description', { description: 'second request' }],
      ['fail the same bytes as base64', { inputformat: 'base64', inputdata: () => Buffer.from(digest, 'hex').toString('base64') }],
      ['fail the same hex in upper case', { inputdata: () => digest.toUpperCase() }],
      ['fail another operation', { operationid: () => otherOperation }],
    ] as const)('%s: 422 idempotency_key_reused, no usage taken', async (_n, change) => {
      const key = `fp-${Math.random().toString(36).slice(2, 10)}`;
      const first = await order(base(), key);
      expect(first.status).toBe(201);
      const firstResult = ((await first.json()) as { result: string }).result;
      const changed = Object.fromEntries(Object.entries({ ...base(), ...change }).map(([k, v]) => [k, typeof v === 'function' ? (v as () => string)() : v]));
      const used = async () => ((await (await api(`/api/v1/operations/${changed['operationid']}`)).json()) as { keys: { usagesUsed: number }[] }).keys[0].usagesUsed;
      const before = await used();
      const r = await order(changed, key);
      expect([r.status, ((await r.json()) as { code: string }).code]).toEqual([422, 'idempotency_key_reused']);
      expect(await used()).toBe(before);
      // The identical retry is still answered from the store.
      const replay = await order(base(), key);
      expect([replay.status, ((await replay.json()) as { result: string }).result]).toEqual([201, firstResult]);
    });

    it('answers any other description (hostile unicode included) with 422 idempotency_key_reused, or 400 invalid_input_encoding for text that cannot be stored (property, fixed seed)', async () => {
      const key = `fp-prop-${Math.random().toString(36).slice(2, 10)}`;
      expect((await order(base(), key)).status).toBe(201);
      const text = fc.oneof(
        fc.string({ unit: 'binary', minLength: 8, maxLength: 60 }),
        fc.constantFrom('first request\u0000', 'first\u200brequest', '\u202efirst request', 'first request \u{1F511}', 'First request', 'first request\ud800', 'first  request'),
      );
      await fc.assert(
        fc.asyncProperty(text, async (description) => {
          fc.pre(description.trim().length >= 8 && description.trim() !== 'first request');
          const r = await order({ ...base(), description }, key);
          // NUL and lone surrogates are refused at the HTTP edge before the idempotency check (ADR 0011).
          const storable = !description.includes('\u0000') && !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(description);
          const expected = storable ? [422, 'idempotency_key_reused'] : [400, 'invalid_input_encoding'];
          expect([r.status, ((await r.json()) as { code: string }).code]).toEqual(expected);
        }),
        { seed: 1307, numRuns: 25 },
      );
    });
  });

  it('refuses a request without a token with 401 invalid_token', async () => {
    const r = await fetch(`${p.env.urls.api}/api/keys`);
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(r.headers.get('content-type')).toContain('application/problem+json');
    expect(((await r.json()) as { code: string }).code).toBe('invalid_token');
  });

  it.each([
    ['none', 'p1363'],
    ['none', 'asn1'],
  ] as const)('signs a SHA-256 digest with the development FW key (%s, %s) and openssl verifies it', async (inputpadding, signatureformat) => {
    const now = Date.now();
    const op = await api('/api/v1/operations', {
      method: 'POST',
      body: JSON.stringify({
        description: 'walking skeleton build 42',
        validFrom: new Date(now - 60_000).toISOString(),
        validTo: new Date(now + 3_600_000).toISOString(),
        keys: [{ keyid: 'demo-fw-dev', usages: 1 }],
      }),
    });
    expect(op.status).toBe(201);
    const { id: operationid } = (await op.json()) as { id: string };

    const firmware = Buffer.from(`firmware image ${signatureformat}`);
    const digest = createHash('sha256').update(firmware).digest();
    const r = await api('/api/signorders', {
      method: 'POST',
      body: JSON.stringify({
        operationid,
        keyid: 'demo-fw-dev',
        inputdata: digest.toString('hex'),
        inputformat: 'hex',
        inputpadding,
        signatureformat,
        description: 'sign firmware 1.0.0',
      }),
    });
    expect(r.status).toBe(201);
    const body = (await r.json()) as { keyid: string; inputdata: string; signatureformat: string; result: string };
    expect(body).toMatchObject({ keyid: 'demo-fw-dev', inputdata: digest.toString('hex'), signatureformat });
    expect(body.result).toMatch(/^[0-9a-f]+$/);

    const keys = (await (await api('/api/keys')).json()) as { keyid: string; certificate: string }[];
    const certPem = keys.find((k) => k.keyid === 'demo-fw-dev')?.certificate ?? '';
    const sig = Buffer.from(body.result, 'hex');
    writeFileSync(join(work, 'cert.pem'), certPem);
    writeFileSync(join(work, 'fw.bin'), firmware);
    writeFileSync(join(work, 'sig.der'), signatureformat === 'p1363' ? p1363ToDer(sig) : sig);
    execFileSync('openssl', ['x509', '-in', join(work, 'cert.pem'), '-pubkey', '-noout', '-out', join(work, 'pub.pem')]);
    const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', join(work, 'pub.pem'), '-signature', join(work, 'sig.der'), join(work, 'fw.bin')]);
    expect(out.toString()).toContain('Verified OK');

    // The single usage is spent: the same order again is refused and nothing is signed.
    const again = await api('/api/signorders', {
      method: 'POST',
      body: JSON.stringify({ operationid, keyid: 'demo-fw-dev', inputdata: digest.toString('hex'), inputformat: 'hex', inputpadding, signatureformat, description: 'sign firmware again' }),
    });
    expect(again.status).toBe(409);
    expect(((await again.json()) as { code: string }).code).toBe('usage_exhausted');
  });
});
