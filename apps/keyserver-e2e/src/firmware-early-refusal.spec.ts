import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyRepository, createDb, type Db } from '@keyserver/data-access';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { sql } from './admin-helpers';
import { call, ciToken, operationBody, run, userToken } from './operations-support';
import { continueExchange, rawExchange, type RawResponse } from './raw-http';

// The firmware route decides before the body (ADR 0011 addendum "refused before the image"): a caller with a valid
// token but no usable operation, no SIGN on the key, or a key that cannot sign, is answered its 4xx problem+json
// after the header section alone, the connection closed, so the server never reads (nor hashes) the image; with
// `Expect: 100-continue` no 100 is sent to such a caller. Headers only are sent here: an answer at all proves it.

const PROBLEM = 'application/problem+json';
const DECLARED = 1024 * 1024 * 1024;

describe('firmware signatures refused before the image', () => {
  let p: RunningPlatform;
  let db: Db;
  let api: string;
  let port: number;
  let ci: string;
  let otto: string;
  let ann: string;
  let work: string;

  beforeAll(async () => {
    p = await startPlatform();
    api = p.env.urls.api;
    port = Number(new URL(api).port);
    db = createDb(p.databaseUrl, { poolSize: 1 });
    [ci, otto, ann] = await Promise.all([ciToken(p), userToken(p, 'otto.orderer@demo.test'), userToken(p, 'ann.approver@demo.test')]);
    work = mkdtempSync(join(tmpdir(), 'ks-fw-early-'));
    writeFileSync(join(work, 'root.pem'), (await new KeyRepository(db).getByKeyid('demo-root')).certificatePem);
  });

  afterAll(async () => {
    await db?.close();
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const newOp = async (token: string, keyid: string, usages: number, extra: Record<string, unknown> = {}) => {
    const r = await call<{ id: string }>(api, token, 'POST', '/api/v1/operations', operationBody(keyid, usages, extra));
    expect(r.status).toBe(201);
    return r.body.id;
  };
  const head = (token: string, operationid: string, keyid: string, rid: string, headers: string[]) =>
    `POST /api/v1/firmware/signatures?operationid=${operationid}&keyid=${keyid}&description=early%20refusal HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
    `Content-Type: application/octet-stream\r\nX-Request-Id: ${rid}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
  const auditOf = async (rid: string) =>
    (await sql<{ action: string; outcome: string; errorCode: string | null }>(p, `SELECT action, outcome, "errorCode" FROM audit_event WHERE "requestId" = $1 ORDER BY seq`, [rid])).map((a) => [a.action, a.outcome, a.errorCode]);
  const guardAuditOf = async (code: string) =>
    (
      await sql<{ action: string; outcome: string; errorCode: string | null }>(
        p,
        `SELECT action, outcome, "errorCode" FROM audit_event WHERE action = 'auth.forbidden' AND "errorCode" = $1 AND details->>'path' = '/api/v1/firmware/signatures' ORDER BY seq`,
        [code],
      )
    ).map((a) => [a.action, a.outcome, a.errorCode]);
  const until = async <T>(f: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> => {
    const end = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (ok(v) || Date.now() > end) return v;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const usedOf = async (operationid: string) =>
    (await sql<{ used: number; reservations: number }>(p, `SELECT (SELECT sum("usagesUsed")::int FROM operation_key WHERE "operationId" = $1) AS used, (SELECT count(*)::int FROM usage_reservation WHERE "operationId" = $1) AS reservations`, [operationid]))[0];
  const problem = (a: RawResponse) => [a.status, a.type, a.code];
  const verifies = (cms: Buffer, image: Buffer) => {
    const tag = randomUUID();
    writeFileSync(join(work, `${tag}.p7s`), cms);
    writeFileSync(join(work, `${tag}.bin`), image);
    run('openssl', ['cms', '-verify', '-binary', '-content', join(work, `${tag}.bin`), '-inform', 'DER', '-in', join(work, `${tag}.p7s`), '-CAfile', join(work, 'root.pem'), '-purpose', 'any', '-out', '/dev/null']);
    return true;
  };
  /** A signature under `operationid` with the whole image sent at once (no Expect). */
  const signOnce = async (operationid: string) => {
    const image = randomBytes(64);
    const x = await rawExchange(port, [head(ci, operationid, 'demo-fw-dev', randomUUID(), [`Content-Length: ${image.length}`, 'Connection: close']), image], { waitMs: 10_000 });
    expect(x.responses.map((a) => a.status)).toEqual([201]);
  };

  type Case = [string, () => Promise<{ token: string; operationid: string; keyid: string }>, number, string, string];
  const cases: Case[] = [
    ['fail an exhausted operation', async () => {
      const operationid = await newOp(ci, 'demo-fw-dev', 1);
      await signOnce(operationid);
      return { token: ci, operationid, keyid: 'demo-fw-dev' };
    }, 409, 'usage_exhausted', 'firmware.sign'],
    ['fail an operation still waiting for its approvals', async () => ({ token: ci, operationid: await newOp(otto, 'demo-fw-prod', 1), keyid: 'demo-fw-prod' }), 409, 'operation_not_usable', 'firmware.sign'],
    ['fail an operation whose window has not begun', async () => {
      const now = Date.now();
      const extra = { validFrom: new Date(now + 3_600_000).toISOString(), validTo: new Date(now + 7_200_000).toISOString() };
      return { token: ci, operationid: await newOp(ci, 'demo-fw-dev', 1, extra), keyid: 'demo-fw-dev' };
    }, 403, 'outside_window', 'firmware.sign'],
    ['fail a key the operation does not hold', async () => ({ token: ci, operationid: await newOp(ci, 'demo-fw-dev', 1), keyid: 'demo-fw-prod' }), 403, 'key_not_in_operation', 'firmware.sign'],
    ['fail a caller without SIGN on the key (an approver)', async () => ({ token: ann, operationid: await newOp(ci, 'demo-fw-dev', 1), keyid: 'demo-fw-dev' }), 403, 'permission_denied', 'auth.forbidden'],
  ];

  describe.each([
    ['without Expect', [] as string[]],
    ['with Expect: 100-continue', ['Expect: 100-continue']],
  ])('%s', (_n, expectHeader) => {
    it.each(cases)('%s: answered after the header section alone, no 100, closed, audited DENIED', async (_c, arrange, status, code, action) => {
      const { token, operationid, keyid } = await arrange();
      const rid = randomUUID();
      const x = await continueExchange(port, head(token, operationid, keyid, rid, [`Content-Length: ${DECLARED}`, ...expectHeader]), Buffer.alloc(0), { waitMs: 5_000 });
      expect(x.responses.map(problem)).toEqual([[status, PROBLEM, code]]);
      expect([x.closed, x.bodySent]).toEqual([true, false]);
      if (action === 'auth.forbidden') {
        // The guard's refusals are audited per caller and code, identical ones aggregated (no request id): ADR 0011.
        expect(await until(() => guardAuditOf(code), (a) => a.length > 0)).toContainEqual([action, 'DENIED', code]);
      } else {
        expect((await until(() => auditOf(rid), (a) => a.length > 0)).filter((a) => a[0] === action)).toEqual([[action, 'DENIED', code]]);
      }
    });
  });

  it('ok a usable operation with Expect: 100-continue: 100, then the image, then a signature openssl verifies; one usage', async () => {
    const operationid = await newOp(ci, 'demo-fw-dev', 1);
    const image = randomBytes(300_000);
    const x = await continueExchange(port, head(ci, operationid, 'demo-fw-dev', randomUUID(), [`Content-Length: ${image.length}`, 'Expect: 100-continue', 'Connection: close']), image, { waitMs: 10_000 });
    expect([x.bodySent, x.responses.map((a) => [a.status, a.type])]).toEqual([true, [[100, ''], [201, 'application/pkcs7-signature']]]);
    expect(verifies(x.responses[1].body, image)).toBe(true);
    expect(await usedOf(operationid)).toEqual({ used: 1, reservations: 0 });
  });

  it('ok a JSON route with Expect: 100-continue still gets its 100 and is served', async () => {
    const body = Buffer.from(JSON.stringify(operationBody('demo-fw-dev', 1)));
    const h = `POST /api/v1/operations HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${ci}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`;
    const x = await continueExchange(port, h, body, { waitMs: 10_000 });
    expect([x.bodySent, x.responses.map((a) => a.status)]).toEqual([true, [100, 201]]);
  });

  it('fail a revoked key, with and without Expect: 100-continue: key_not_usable after the header section alone, no 100, closed, audited DENIED', async () => {
    const operationid = await newOp(ci, 'demo-fw-dev', 1);
    // Last in this file: the key stays revoked. Every replica hears of it (the access cache's NOTIFY, ADR 0028).
    await sql(p, `UPDATE "key" SET "state" = 'REVOKED' WHERE "keyid" = 'demo-fw-dev'`);
    for (const expectHeader of [[], ['Expect: 100-continue']]) {
      const rid = randomUUID();
      const x = await until(
        () => continueExchange(port, head(ci, operationid, 'demo-fw-dev', rid, [`Content-Length: ${DECLARED}`, ...expectHeader]), Buffer.alloc(0), { waitMs: 5_000 }),
        (r) => r.responses[0]?.code === 'key_not_usable',
      );
      expect(x.responses.map(problem)).toEqual([[409, PROBLEM, 'key_not_usable']]);
      expect([x.closed, x.bodySent]).toEqual([true, false]);
      expect((await until(() => auditOf(rid), (a) => a.some((e) => e[2] === 'key_not_usable'))).filter((a) => a[0] === 'firmware.sign').at(-1)).toEqual(['firmware.sign', 'DENIED', 'key_not_usable']);
    }
  });
});
