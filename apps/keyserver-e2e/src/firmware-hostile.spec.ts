import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { KeyRepository, createDb, type Db } from '@keyserver/data-access';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { sql } from './admin-helpers';
import { call, ciToken, operationBody, run } from './operations-support';
import { rawExchange, type RawExchange, type RawResponse } from './raw-http';

// An attacker with a valid orderer token and an approved operation, and a broken factory network, against the built
// API's firmware route over raw sockets (ADR 0011 addendum "the transport", ADR 0007): every answer a 2xx with a
// CMS that openssl verifies over exactly the bytes the server read, or a problem+json with a stable code; never a
// hang, never a 5xx; a usage spent only with its order, the attempt audited once.

const CAP = 1024 * 1024;
const PROBLEM = 'application/problem+json';

type Answer = RawResponse;

/** {@link rawExchange} to the replica at `url`, waiting up to 10 s by default. */
const exchange = (url: string, parts: (string | Buffer)[], o: { half?: boolean; waitMs?: number } = {}): Promise<RawExchange> =>
  rawExchange(Number(new URL(url).port), parts, { waitMs: 10_000, ...o });

describe('firmware signatures under a hostile client (two API processes)', () => {
  let p: RunningPlatform;
  let db: Db;
  let urls: string[];
  let ci: string;
  let work: string;
  let n = 0;

  beforeAll(async () => {
    p = await startPlatform({ replicas: 2, extraApiEnv: { FIRMWARE_MAX_BYTES: String(CAP) } });
    urls = p.apiReplicas.map((r) => r.url);
    db = createDb(p.databaseUrl, { poolSize: 1 });
    ci = await ciToken(p);
    work = mkdtempSync(join(tmpdir(), 'ks-fw-hostile-'));
    writeFileSync(join(work, 'root.pem'), (await new KeyRepository(db).getByKeyid('demo-root')).certificatePem);
  });

  afterAll(async () => {
    await db?.close();
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const newOp = async (usages: number) => {
    const r = await call<{ id: string }>(urls[0], ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', usages));
    expect(r.status).toBe(201);
    return r.body.id;
  };
  const target = (operationid: string, extra = '') => `/api/v1/firmware/signatures?operationid=${operationid}&keyid=demo-fw-dev&description=hostile%20factory${extra}`;
  const head = (path: string, headers: string[]) => `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ci}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
  const upload = (operationid: string, rid: string, headers: string[], extra = '') =>
    head(target(operationid, extra), ['Content-Type: application/octet-stream', `X-Request-Id: ${rid}`, ...headers]);
  const stateOf = async (operationid: string) =>
    (
      await sql<{ used: number; orders: number; reservations: number }>(
        p,
        `SELECT (SELECT "usagesUsed" FROM operation_key WHERE "operationId" = $1) AS used,
                (SELECT count(*)::int FROM sign_order WHERE "operationId" = $1) AS orders,
                (SELECT count(*)::int FROM usage_reservation WHERE "operationId" = $1) AS reservations`,
        [operationid],
      )
    )[0];
  const auditOf = async (rid: string) =>
    (await sql<{ outcome: string; errorCode: string | null }>(p, `SELECT outcome, "errorCode" FROM audit_event WHERE "requestId" = $1 AND action = 'firmware.sign' ORDER BY seq`, [rid])).map((a) => [a.outcome, a.errorCode]);
  const until = async <T>(f: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (ok(v) || Date.now() > end) return v;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  /** openssl verifies the detached CMS over `image` (signature, chain to the demo ROOT, the content digest). */
  const verifies = (cms: Buffer, image: Buffer) => {
    const tag = n++;
    writeFileSync(join(work, `${tag}.p7s`), cms);
    writeFileSync(join(work, `${tag}.bin`), image);
    run('openssl', ['cms', '-verify', '-binary', '-content', join(work, `${tag}.bin`), '-inform', 'DER', '-in', join(work, `${tag}.p7s`), '-CAfile', join(work, 'root.pem'), '-purpose', 'any', '-out', '/dev/null']);
    return true;
  };
  const problem = (a: Answer) => [a.status, a.type, a.code];

  describe('sizes', () => {
    it('ok an image of exactly FIRMWARE_MAX_BYTES: signed, openssl verifies it, one usage', async () => {
      const op = await newOp(1);
      const image = randomBytes(CAP);
      const x = await exchange(urls[0], [upload(op, randomUUID(), [`Content-Length: ${CAP}`, 'Connection: close']), image]);
      expect(x.responses.map((a) => [a.status, a.type])).toEqual([[201, 'application/pkcs7-signature']]);
      expect(verifies(x.responses[0].body, image)).toBe(true);
      expect(await stateOf(op)).toEqual({ used: 1, orders: 1, reservations: 0 });
    });

    it('ok an image of one byte', async () => {
      const op = await newOp(1);
      const x = await exchange(urls[1], [upload(op, randomUUID(), ['Content-Length: 1', 'Connection: close']), 'x']);
      expect(x.responses.map((a) => a.status)).toEqual([201]);
      expect(verifies(x.responses[0].body, Buffer.from('x'))).toBe(true);
    });

    it.each([
      ['fail one byte over the cap, declared', [`Content-Length: ${CAP + 1}`], [randomBytes(CAP + 1)], 413, 'payload_too_large'],
      ['fail one byte over the cap, chunked', ['Transfer-Encoding: chunked'], [`${(CAP + 1).toString(16)}\r\n`, randomBytes(CAP + 1), '\r\n0\r\n\r\n'], 413, 'payload_too_large'],
      ['fail one byte over the cap in chunks of one byte at the end', ['Transfer-Encoding: chunked'], [`${CAP.toString(16)}\r\n`, randomBytes(CAP), '\r\n1\r\nx\r\n0\r\n\r\n'], 413, 'payload_too_large'],
      ['fail an empty image, declared', ['Content-Length: 0'], [], 400, 'validation_failed'],
      ['fail an empty image, chunked', ['Transfer-Encoding: chunked'], ['0\r\n\r\n'], 400, 'validation_failed'],
      ['fail an empty image, chunked with trailers', ['Transfer-Encoding: chunked', 'Trailer: Digest'], ['0\r\nDigest: sha-256=x\r\n\r\n'], 400, 'validation_failed'],
    ] as const)('%s: refused with its code, nothing written, audited DENIED', async (_n, headers, body, status, code) => {
      const op = await newOp(1);
      const rid = randomUUID();
      const x = await exchange(urls[0], [upload(op, rid, [...headers, 'Connection: close']), ...body]);
      expect(x.responses.map(problem)).toEqual([[status, PROBLEM, code]]);
      expect(await stateOf(op)).toEqual({ used: 0, orders: 0, reservations: 0 });
      expect(await until(() => auditOf(rid), (a) => a.length > 0)).toEqual([['DENIED', code]]);
    });
  });

  describe('framing that lies', () => {
    it('fail a Content-Length shorter than the body: the bytes after it do not parse as a request, so 400 malformed_request, closed; nothing signed for an answer nobody gets', async () => {
      const op = await newOp(2);
      const rid = randomUUID();
      const x = await exchange(urls[0], [upload(op, rid, ['Content-Length: 600']), randomBytes(1000)]);
      expect(x.responses.map(problem)).toEqual([[400, PROBLEM, 'malformed_request']]);
      expect(x.closed).toBe(true);
      expect(await until(() => auditOf(rid), (a) => a.length > 0)).toEqual([['DENIED', 'malformed_request']]);
      expect(await stateOf(op)).toEqual({ used: 0, orders: 0, reservations: 0 });
    });

    it('ok a client that half-closes right after its complete body: an abort after the last byte, signed with its order or nothing, audited once, no hang', async () => {
      // Node's HTTP server is not half-open (httpAllowHalfOpen false): a FIN from the client aborts its requests. The
      // server sees it once it has read the body (the socket is paused meanwhile), so the outcome is the one of an
      // abort after the last byte (ADR 0011 addendum): the usage spent only with its order, never a reservation left.
      for (let round = 0; round < 4; round++) {
        const op = await newOp(1);
        const rid = randomUUID();
        const image = randomBytes(5000);
        const x = await exchange(urls[round % 2], [upload(op, rid, [`Content-Length: ${image.length}`]), image], { half: true });
        expect(x.closed).toBe(true);
        const audit = await until(() => auditOf(rid), (a) => a.length > 0);
        const state = await until(() => stateOf(op), (st) => st.reservations === 0);
        expect(state.reservations).toBe(0);
        expect(state.used).toBe(state.orders);
        expect(audit).toEqual([state.orders === 1 ? ['SUCCESS', null] : ['DENIED', 'request_aborted']]);
      }
    });

    it('fail a Content-Length longer than the body, then the client half-closes: request_aborted, nothing written, audited once, no hang', async () => {
      const op = await newOp(1);
      const rid = randomUUID();
      const x = await exchange(urls[1], [upload(op, rid, ['Content-Length: 5000']), randomBytes(1000)], { half: true, waitMs: 15_000 });
      expect(x.closed).toBe(true);
      for (const a of x.responses) expect(problem(a)).toEqual([400, PROBLEM, 'request_aborted']);
      expect(await until(() => auditOf(rid), (a) => a.length > 0)).toEqual([['DENIED', 'request_aborted']]);
      expect(await stateOf(op)).toEqual({ used: 0, orders: 0, reservations: 0 });
    });

    it.each([
      ['fail a NUL in a chunk extension', '5;ext=\0\r\nhello\r\n0\r\n\r\n'],
      ['fail a bare LF in a chunk extension', '5;ext=a\nb\r\nhello\r\n0\r\n\r\n'],
      ['fail a chunk size with a sign', '+5\r\nhello\r\n0\r\n\r\n'],
      ['fail a chunk size longer than 64 bits', `${'f'.repeat(17)}\r\nhello\r\n0\r\n\r\n`],
      ['fail a chunk shorter than its size', '9\r\nhello\r\n0\r\n\r\n'],
      ['fail a Content-Length in the trailers', '5\r\nhello\r\n0\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ])('%s: refused 4xx problem+json or closed, nothing written', async (_n, body) => {
      const op = await newOp(1);
      const x = await exchange(urls[0], [upload(op, randomUUID(), ['Transfer-Encoding: chunked']), body], { waitMs: 8_000 });
      for (const a of x.responses) {
        expect(a.status).toBeGreaterThanOrEqual(400);
        expect(a.status).toBeLessThan(500);
        expect([a.type, typeof a.code]).toEqual([PROBLEM, 'string']);
      }
      expect(x.responses.length > 0 || x.closed).toBe(true);
      expect(await until(() => stateOf(op), (s) => s.reservations === 0)).toEqual({ used: 0, orders: 0, reservations: 0 });
    });

    it('ok chunked bodies cut anywhere, with chunk extensions and trailers: what is signed is the de-chunked image, openssl verifies it', async () => {
      const op = await newOp(12);
      const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/);
      const quoted = fc.string({ unit: fc.constantFrom(...'abc ;="\\\t,'.split('')), maxLength: 24 }).map((s) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`);
      const extension = fc.tuple(token, fc.option(fc.oneof(token, quoted), { nil: undefined })).map(([k, v]) => (v === undefined ? `;${k}` : `;${k}=${v}`));
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ minLength: 1, maxLength: 4096 }),
          fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 12 }),
          fc.array(fc.array(extension, { maxLength: 3 }).map((e) => e.join('')), { minLength: 13, maxLength: 13 }),
          fc.array(fc.tuple(token, fc.stringMatching(/^[ -~]{0,20}$/)), { maxLength: 3 }),
          fc.integer({ min: 0, max: 1 }),
          async (bytes, cuts, exts, trailers, replica) => {
            const image = Buffer.from(bytes);
            const parts: (string | Buffer)[] = [];
            let at = 0;
            for (const [i, cut] of cuts.entries()) {
              if (at >= image.length) break;
              const chunk = image.subarray(at, i === cuts.length - 1 ? image.length : at + cut);
              at += chunk.length;
              parts.push(`${chunk.length.toString(16)}${exts[i]}\r\n`, chunk, '\r\n');
            }
            if (at < image.length) parts.push(`${(image.length - at).toString(16)}\r\n`, image.subarray(at), '\r\n');
            parts.push(`0${exts[12]}\r\n${trailers.map(([k, v]) => `X-${k}: ${v}\r\n`).join('')}\r\n`);
            const x = await exchange(urls[replica], [upload(op, randomUUID(), ['Transfer-Encoding: chunked', 'Connection: close']), ...parts]);
            expect(x.responses.map((a) => a.status)).toEqual([201]);
            expect(verifies(x.responses[0].body, image)).toBe(true);
          },
        ),
        { numRuns: 12 },
      );
      expect(await stateOf(op)).toEqual({ used: 12, orders: 12, reservations: 0 });
    });
  });

  describe('parameters', () => {
    it.each([
      ['ok an upper-case media type', ['Content-Type: APPLICATION/OCTET-STREAM'], '', 201, undefined],
      ['ok a media type with parameters', ['Content-Type: application/octet-stream; charset=binary; x="y;z"'], '', 201, undefined],
      ['fail no media type', [], '', 415, 'unsupported_media_type'],
      ['fail a media type list', ['Content-Type: application/octet-stream, application/json'], '', 415, 'unsupported_media_type'],
      ['fail a look-alike media type (Latin-1 bytes)', ['Content-Type: application/octet-str\xe9am'], '', 415, 'unsupported_media_type'],
      ['fail two media types', ['Content-Type: application/octet-stream', 'Content-Type: application/json'], '', 400, 'malformed_request'],
      ['fail an Idempotency-Key (not honoured here)', ['Content-Type: application/octet-stream', 'Idempotency-Key: k1'], '', 400, 'idempotency_key_not_supported'],
      ['fail a Content-Encoding', ['Content-Type: application/octet-stream', 'Content-Encoding: gzip'], '', 415, 'unsupported_content_encoding'],
      ['fail a digest algorithm in the query', ['Content-Type: application/octet-stream'], '&hash=md5', 400, 'validation_failed'],
      ['fail an attached signature asked for', ['Content-Type: application/octet-stream'], '&detached=false', 400, 'validation_failed'],
      ['fail a signing time asked for', ['Content-Type: application/octet-stream'], '&signingTime=2000-01-01T00:00:00Z', 400, 'validation_failed'],
      ['fail a parameter name in another case', ['Content-Type: application/octet-stream'], '&KEYID=demo-fw-dev', 400, 'validation_failed'],
      ['fail a repeated operationid', ['Content-Type: application/octet-stream'], '&operationid=00000000-0000-4000-8000-000000000000', 400, 'validation_failed'],
      ['fail a repeated keyid', ['Content-Type: application/octet-stream'], '&keyid=demo-fw-dev', 400, 'validation_failed'],
      ['fail a description of 1001 characters', ['Content-Type: application/octet-stream'], `&description=${'%C3%A9'.repeat(1001)}`, 400, 'validation_failed'],
      ['fail a huge query', ['Content-Type: application/octet-stream'], `&x=${'a'.repeat(20_000)}`, 431, 'header_too_large'],
      ['fail a query that is not UTF-8', ['Content-Type: application/octet-stream'], '&x=%ff', 400, 'invalid_input_encoding'],
    ] as const)('%s', async (_n, headers, extra, status, code) => {
      const op = await newOp(1);
      const rid = randomUUID();
      const image = Buffer.from('factory image bytes');
      const path = target(op, extra).replace('description=hostile%20factory&description=', 'description=');
      const x = await exchange(urls[0], [head(path, [...headers, `X-Request-Id: ${rid}`, `Content-Length: ${image.length}`, 'Connection: close']), image]);
      expect(x.responses.map((a) => [a.status, a.code])).toEqual([[status, code]]);
      if (status === 201) {
        expect(verifies(x.responses[0].body, image)).toBe(true);
        expect(await stateOf(op)).toEqual({ used: 1, orders: 1, reservations: 0 });
      } else {
        expect(x.responses[0].type).toBe(PROBLEM);
        expect(await stateOf(op)).toEqual({ used: 0, orders: 0, reservations: 0 });
      }
    });

    it.each([
      ['fail a key id in full-width letters', 'ｄｅｍｏ-fw-dev', 403, 'key_not_permitted'],
      ['fail a key id in another case', 'DEMO-FW-DEV', 403, 'key_not_permitted'],
      ['fail a key id of 129 characters', 'k'.repeat(129), 400, 'validation_failed'],
    ])('%s: refused with its code', async (_n, keyid, status, code) => {
      const op = await newOp(1);
      const path = `/api/v1/firmware/signatures?operationid=${op}&keyid=${encodeURIComponent(keyid)}&description=hostile%20factory`;
      const x = await exchange(urls[1], [head(path, ['Content-Type: application/octet-stream', 'Content-Length: 5', 'Connection: close']), 'hello']);
      expect(x.responses.map(problem)).toEqual([[status, PROBLEM, code]]);
      expect(await stateOf(op)).toEqual({ used: 0, orders: 0, reservations: 0 });
    });
  });

  describe('the last usage', () => {
    it('ok two uploads at once for the last usage, one on each API process: one signature, one usage_exhausted, one order', async () => {
      for (let round = 0; round < 4; round++) {
        const op = await newOp(1);
        const images = [randomBytes(256 * 1024), randomBytes(256 * 1024)];
        const xs = await Promise.all(urls.map((u, i) => exchange(u, [upload(op, randomUUID(), [`Content-Length: ${images[i].length}`, 'Connection: close']), images[i]])));
        const statuses = xs.map((x) => x.responses.map((a) => [a.status, a.code]));
        expect(statuses.sort()).toEqual([[[201, undefined]], [[409, 'usage_exhausted']]]);
        const won = xs.findIndex((x) => x.responses[0].status === 201);
        expect(verifies(xs[won].responses[0].body, images[won])).toBe(true);
        expect(await stateOf(op)).toEqual({ used: 1, orders: 1, reservations: 0 });
      }
    });
  });
});
