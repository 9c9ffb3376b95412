import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, auditOf, bffUserToken, sql, type Api } from './admin-helpers';

interface Problem {
  code: string;
}
interface Limits {
  maxWindowSeconds: number;
  maxUsagesPerOperation: number;
  maxBackdateSeconds: number;
  maxStartAheadSeconds: number;
  source: 'default' | 'set';
  updatedAt: string | null;
}
interface KeyDetail {
  keyid: string;
  limits: Limits;
}
interface OperationView {
  id: string;
  keys: { keyid: string; limits: Limits | null }[];
}

const DAY = 86_400;
const PRODUCTION = { maxWindowSeconds: 7 * DAY, maxUsagesPerOperation: 1_000, maxBackdateSeconds: 300, maxStartAheadSeconds: 7 * DAY };
const DEVELOPMENT = { maxWindowSeconds: 30 * DAY, maxUsagesPerOperation: 100_000, maxBackdateSeconds: 300, maxStartAheadSeconds: 30 * DAY };

describe('per-key operation limits', () => {
  let p: RunningPlatform;
  let ada: Api;
  let alan: Api;
  let otto: Api;
  let ann: Api;
  let aude: Api;
  let session: string;

  beforeAll(async () => {
    p = await startPlatform();
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    otto = apiAs(p, await bffUserToken(p, 'otto.orderer@demo.test'));
    ann = apiAs(p, await bffUserToken(p, 'ann.approver@demo.test'));
    aude = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    session = await activeSession(ada, alan, 'key limits e2e');
  });

  afterAll(async () => {
    await p?.stop();
  });

  /** An operation body on one key: start `start` s from now, `window` s long. */
  const body = (keyid: string, start: number, window: number, usages: number) => {
    const now = Date.now();
    return {
      description: 'limits e2e operation',
      validFrom: new Date(now + start * 1000).toISOString(),
      validTo: new Date(now + (start + window) * 1000).toISOString(),
      keys: [{ keyid, usages }],
    };
  };
  const operationsOn = async (keyid: string) => Number((await sql<{ n: string }>(p, `SELECT count(*)::text AS n FROM "operation_key" ok JOIN "key" k ON k."id" = ok."keyId" WHERE k."keyid" = $1`, [keyid]))[0].n);

  it('shows every key its class defaults until administrators set limits, production keys tighter', async () => {
    const prod = await otto<KeyDetail>('GET', '/api/v1/keys/demo-fw-prod');
    expect(prod.body.limits).toEqual({ ...PRODUCTION, source: 'default', updatedAt: null });
    const dev = await otto<KeyDetail>('GET', '/api/v1/keys/demo-fw-dev');
    expect(dev.body.limits).toEqual({ ...DEVELOPMENT, source: 'default', updatedAt: null });
  });

  describe('operations outside the limits of a production key', () => {
    it.each([
      ['fail a window to 2099', 0, (Date.parse('2099-12-31T00:00:00Z') - Date.now()) / 1000, 1, 'window_too_long'],
      ['fail a start in 2020', (Date.parse('2020-01-01T00:00:00Z') - Date.now()) / 1000, 3_600, 1, 'start_backdated'],
      ['fail a start 10 minutes back', -600, 3_600, 1, 'start_backdated'],
      ['fail a start a month ahead', 30 * DAY, 3_600, 1, 'start_too_far_ahead'],
      ['fail 1,000,000 usages', 0, 3_600, 1_000_000, 'too_many_usages'],
      ['fail 1,001 usages', 0, 3_600, 1_001, 'too_many_usages'],
      // Inside the back-dating skew, but over before it is ordered (ADR 0017 addendum "time").
      ['fail a window that ended before it was ordered', -240, 120, 1, 'window_ended'],
    ] as const)('%s: 400, nothing stored, audited', async (_n, start, window, usages, code) => {
      const before = await operationsOn('demo-fw-prod');
      const r = await otto<Problem>('POST', '/api/v1/operations', { body: body('demo-fw-prod', Math.round(start), Math.round(window), usages) });
      expect([r.status, r.body.code]).toEqual([400, code]);
      expect(await operationsOn('demo-fw-prod')).toBe(before);
      const [last] = await auditOf(aude, 'action=operation.create&outcome=DENIED&limit=1');
      expect(last).toMatchObject({ errorCode: code });
    });

    it('ok a start 4 minutes back (clock skew), 7 days, 1,000 usages', async () => {
      const r = await otto<OperationView>('POST', '/api/v1/operations', { body: body('demo-fw-prod', -240, 7 * DAY - 300, 1_000) });
      expect(r.status).toBe(201);
    });
  });

  describe('PUT /api/v1/keys/{keyid}/limits', () => {
    const limits = { maxWindowSeconds: 2 * 3_600, maxUsagesPerOperation: 3, maxBackdateSeconds: 60, maxStartAheadSeconds: 3_600 };

    it('sets limits in an ACTIVE four-eyes session, audited with before and after, enforced and shown to approvers', async () => {
      const r = await ada<KeyDetail>('PUT', '/api/v1/keys/demo-fw-prod/limits', { session, body: limits });
      expect(r.status).toBe(200);
      expect(r.body.limits).toMatchObject({ ...limits, source: 'set', updatedAt: expect.any(String) });
      const [event] = await auditOf(aude, 'action=key.limits&outcome=SUCCESS&limit=1');
      expect(event).toMatchObject({
        keyid: 'demo-fw-prod',
        adminSessionId: session,
        details: { limits: { before: { ...PRODUCTION, source: 'default' }, after: { ...limits, source: 'set' } } },
      });

      expect((await otto<Problem>('POST', '/api/v1/operations', { body: body('demo-fw-prod', 0, 3 * 3_600, 1) })).body.code).toBe('window_too_long');
      expect((await otto<Problem>('POST', '/api/v1/operations', { body: body('demo-fw-prod', -120, 3_600, 1) })).body.code).toBe('start_backdated');
      expect((await otto<Problem>('POST', '/api/v1/operations', { body: body('demo-fw-prod', 0, 3_600, 4) })).body.code).toBe('too_many_usages');
      const ok = await otto<OperationView>('POST', '/api/v1/operations', { body: body('demo-fw-prod', -30, 3_600, 3) });
      expect(ok.status).toBe(201);

      // The approver sees the limits the key's operations are held to.
      const seen = await ann<OperationView>('GET', `/api/v1/operations/${ok.body.id}`);
      expect(seen.body.keys).toEqual([expect.objectContaining({ keyid: 'demo-fw-prod', limits: expect.objectContaining({ ...limits, source: 'set' }) })]);
      const awaiting = await ann<{ items: OperationView[] }>('GET', '/api/v1/operations?awaiting=me');
      expect(awaiting.body.items.find((o) => o.id === ok.body.id)?.keys[0].limits).toMatchObject(limits);
    });

    it.each([
      ['fail no session', 'demo-fw-dev', limits, undefined, 403, 'admin_session_required'],
      ['fail a malformed session id', 'demo-fw-dev', limits, 'not-a-session', 403, 'admin_session_required'],
      ['fail an unknown key', 'no-such-key', limits, 'S', 404, 'key_not_found'],
      ['fail a huge keyid', 'k'.repeat(5000), limits, 'S', 404, 'key_not_found'],
      ['fail a keyid with a zero-width space', 'demo-fw\u200b-dev', limits, 'S', 404, 'key_not_found'],
      ['fail a keyid with a bidi override', '\u202edemo-fw-dev', limits, 'S', 404, 'key_not_found'],
      ['fail a keyid outside the BMP', 'demo-fw-dev\u{1F511}', limits, 'S', 404, 'key_not_found'],
      ['fail a keyid in upper case', 'DEMO-FW-DEV', limits, 'S', 404, 'key_not_found'],
      ['fail a missing field', 'demo-fw-dev', { maxWindowSeconds: 3_600, maxUsagesPerOperation: 1, maxBackdateSeconds: 0 }, 'S', 400, 'validation_failed'],
      ['fail an extra field', 'demo-fw-dev', { ...limits, maxSignaturesPerDay: 1 }, 'S', 400, 'validation_failed'],
      ['fail a number as text', 'demo-fw-dev', { ...limits, maxUsagesPerOperation: '3' }, 'S', 400, 'validation_failed'],
      ['fail a fraction', 'demo-fw-dev', { ...limits, maxWindowSeconds: 3_600.5 }, 'S', 400, 'validation_failed'],
      ['fail a negative skew', 'demo-fw-dev', { ...limits, maxBackdateSeconds: -1 }, 'S', 400, 'validation_failed'],
      ['fail a window over 366 days', 'demo-fw-dev', { ...limits, maxWindowSeconds: 367 * DAY }, 'S', 400, 'validation_failed'],
      ['fail a window under a minute', 'demo-fw-dev', { ...limits, maxWindowSeconds: 59 }, 'S', 400, 'validation_failed'],
      ['fail over a million usages', 'demo-fw-dev', { ...limits, maxUsagesPerOperation: 1_000_001 }, 'S', 400, 'validation_failed'],
      ['fail zero usages', 'demo-fw-dev', { ...limits, maxUsagesPerOperation: 0 }, 'S', 400, 'validation_failed'],
      ['fail 1e400', 'demo-fw-dev', null, 'S', 400, 'validation_failed'],
      ['fail an array body', 'demo-fw-dev', [limits], 'S', 400, 'validation_failed'],
    ] as const)('%s: refused, unchanged, audited', async (_n, keyid, payload, sessionHeader, status, code) => {
      const before = await ada<KeyDetail>('GET', '/api/v1/keys/demo-fw-dev');
      const s = sessionHeader === 'S' ? session : sessionHeader;
      const r =
        payload === null
          ? await ada<Problem>('PUT', `/api/v1/keys/${keyid}/limits`, { session: s, rawBody: '{"maxWindowSeconds":1e400,"maxUsagesPerOperation":1,"maxBackdateSeconds":0,"maxStartAheadSeconds":0}' })
          : await ada<Problem>('PUT', `/api/v1/keys/${encodeURIComponent(keyid)}/limits`, { session: s, body: payload });
      expect([r.status, r.body.code]).toEqual([status, code]);
      expect((await ada<KeyDetail>('GET', '/api/v1/keys/demo-fw-dev')).body.limits).toEqual(before.body.limits);
      const [last] = await auditOf(aude, 'action=key.limits&outcome=DENIED&limit=1');
      expect(last).toMatchObject({ errorCode: code });
    });

    it('fail a keyid with NUL: refused at the HTTP edge (400 invalid_input_encoding, ADR 0011), unchanged, audited', async () => {
      const before = await ada<KeyDetail>('GET', '/api/v1/keys/demo-fw-dev');
      const r = await ada<Problem>('PUT', `/api/v1/keys/${encodeURIComponent('demo-fw-dev\u0000')}/limits`, { session, body: limits });
      expect([r.status, r.body.code]).toEqual([400, 'invalid_input_encoding']);
      expect((await ada<KeyDetail>('GET', '/api/v1/keys/demo-fw-dev')).body.limits).toEqual(before.body.limits);
      // Edge refusals are audited after the answer is sent (RefusalAudit, ADR 0011): wait for the entry.
      let last: Awaited<ReturnType<typeof auditOf>>[number] | undefined;
      for (let i = 0; i < 50 && last?.errorCode !== 'invalid_input_encoding'; i++) {
        if (i) await new Promise((done) => setTimeout(done, 100));
        [last] = await auditOf(aude, 'action=request.refused&limit=1');
      }
      expect(last).toMatchObject({ errorCode: 'invalid_input_encoding', details: { path: '/api/v1/keys/demo-fw-dev%00/limits' } });
    });

    it('refuses people who are not administrators with permission_denied', async () => {
      const r = await otto<Problem>('PUT', '/api/v1/keys/demo-fw-dev/limits', { session, body: limits });
      expect([r.status, r.body.code]).toEqual([403, 'permission_denied']);
    });
  });
});
