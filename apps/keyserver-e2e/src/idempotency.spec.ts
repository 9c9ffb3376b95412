import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { AuditRepository, createDb, type Db } from '@keyserver/data-access';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { call, ciToken, operationBody, run, signOrderBody } from './operations-support';

// Idempotency-Key over real HTTP, two API processes on one database and SoftHSM (ADR 0012 addendum "idempotency, session 25",
// ADR 0007 addendum "operations and Idempotency-Key"): hostile keys, keys on routes that do not honour them, the same key
// on both replicas at once.

const KEY = /^[A-Za-z0-9._:-]{1,128}$/;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('Idempotency-Key across two API processes', () => {
  let p: RunningPlatform;
  let db: Db;
  let ci: string;
  let urls: string[];
  let work: string;

  beforeAll(async () => {
    p = await startPlatform({ replicas: 2 });
    urls = p.apiReplicas.map((r) => r.url);
    db = createDb(p.databaseUrl, { poolSize: 2 });
    ci = await ciToken(p);
    work = mkdtempSync(join(tmpdir(), 'ks-idem-'));
  });

  afterAll(async () => {
    await db?.close();
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const newOperation = async (keyid: string, usages: number) => {
    const r = await call<{ id: string }>(urls[0], ci, 'POST', '/api/v1/operations', operationBody(keyid, usages));
    expect(r.status).toBe(201);
    return r.body.id;
  };
  const used = async (op: string) => (await call<{ keys: { usagesUsed: number }[] }>(urls[1], ci, 'GET', `/api/v1/operations/${op}`)).body.keys[0].usagesUsed;

  it('ok the same key sent to both replicas at once on a one-usage operation: one usage, every final answer the same signature, never usage_exhausted', async () => {
    for (let round = 0; round < 6; round++) {
      const op = await newOperation('demo-fw-dev', 1);
      const body = signOrderBody(op, 'demo-fw-dev', sha(`race ${round}`));
      const key = `race-${round}-${Date.now()}`;
      // Retries on 409 conflict (the first request is still signing) until a final answer, as a client does.
      const attempt = async (url: string) => {
        for (let i = 0; i < 50; i++) {
          const r = await call<{ result?: string; code?: string }>(url, ci, 'POST', '/api/signorders', body, { 'idempotency-key': key });
          if (r.status !== 409 || r.body.code !== 'conflict') return r;
          await new Promise((res) => setTimeout(res, 20));
        }
        throw new Error('still in conflict after 50 attempts');
      };
      const answers = await Promise.all([attempt(urls[0]), attempt(urls[1]), attempt(urls[0]), attempt(urls[1])]);
      expect(answers.map((a) => [a.status, a.body.code])).toEqual(Array(4).fill([201, undefined]));
      expect(new Set(answers.map((a) => a.body.result)).size).toBe(1);
      expect(await used(op)).toBe(1);
    }
  });

  it('ok a client that hangs up right after sending gets, on its retries with the same key, one signature from one usage', async () => {
    for (let round = 0; round < 3; round++) {
      const op = await newOperation('demo-fw-dev', 2);
      const body = signOrderBody(op, 'demo-fw-dev', sha(`hang-up ${round}`));
      const key = `hang-up-${round}-${Date.now()}`;
      const abort = new AbortController();
      const first = fetch(`${urls[round % 2]}/api/signorders`, {
        method: 'POST',
        signal: abort.signal,
        headers: { authorization: `Bearer ${ci}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(body),
      }).catch(() => undefined);
      setTimeout(() => abort.abort(), round * 5);
      await first;
      let last: { status: number; body: { result?: string; code?: string } } | undefined;
      for (let i = 0; i < 50; i++) {
        last = await call<{ result?: string; code?: string }>(urls[(round + 1) % 2], ci, 'POST', '/api/signorders', body, { 'idempotency-key': key });
        if (last.status !== 409 || last.body.code !== 'conflict') break;
        await new Promise((res) => setTimeout(res, 20));
      }
      const again = await call<{ result?: string }>(urls[round % 2], ci, 'POST', '/api/signorders', body, { 'idempotency-key': key });
      expect([last?.status, again.status, again.body.result]).toEqual([201, 201, last?.body.result]);
      expect(await used(op)).toBe(1);
      const created = (await new AuditRepository(db).list({ operationId: op, action: 'signorder.create', limit: 20 })).items;
      expect(created.filter((e) => e.outcome === 'SUCCESS')).toHaveLength(1);
    }
  });

  it('keeps any Idempotency-Key value to 201 (a key of 1-128 [A-Za-z0-9._:-], compared exactly: case counts) or 400 idempotency_key_invalid; usages spent = distinct accepted keys (property)', async () => {
    const op = await newOperation('demo-fw-dev', 200);
    const body = signOrderBody(op, 'demo-fw-dev', sha('hostile keys'));
    const chars = fc.constantFrom(...'aAbBzZ09._:-'.split(''), '/', '+', '=', '"', ',', ';', '\\', '~', '\u00e9', '\u00ff', '\u00a0', '\u0085');
    const key = fc.oneof(
      fc.string({ unit: chars, minLength: 0, maxLength: 12 }),
      fc.constantFrom('k'.repeat(128), 'k'.repeat(129), 'k'.repeat(4000), 'ABC', 'abc', 'Abc', 'caf\u00e9', '\u00c9T\u00c9'),
    );
    const accepted = new Set<string>();
    await fc.assert(
      fc.asyncProperty(key, fc.integer({ min: 0, max: 1 }), async (k, replica) => {
        const r = await call<{ code?: string }>(urls[replica], ci, 'POST', '/api/signorders', body, { 'idempotency-key': k });
        if (KEY.test(k)) {
          expect(r.status).toBe(201);
          accepted.add(k);
        } else {
          expect([r.status, r.body.code]).toEqual([400, 'idempotency_key_invalid']);
        }
      }),
      { seed: 20261217, numRuns: 60 },
    );
    expect(await used(op)).toBe(accepted.size);
  });

  it('fail the same key with another body: 422 idempotency_key_reused, never the stored signature, no usage', async () => {
    const op = await newOperation('demo-fw-dev', 3);
    const key = `reuse-${Date.now()}`;
    const first = await call<{ result: string }>(urls[0], ci, 'POST', '/api/signorders', signOrderBody(op, 'demo-fw-dev', sha('one')), { 'idempotency-key': key });
    const other = await call<{ code: string; result?: string }>(urls[1], ci, 'POST', '/api/signorders', signOrderBody(op, 'demo-fw-dev', sha('two')), { 'idempotency-key': key });
    expect([first.status, other.status, other.body.code, other.body.result]).toEqual([201, 422, 'idempotency_key_reused', undefined]);
    expect(await used(op)).toBe(1);
  });

  it('ok a replay is audited as signorder.replayed under its own request id', async () => {
    const op = await newOperation('demo-fw-dev', 2);
    const key = `audit-${Date.now()}`;
    const body = signOrderBody(op, 'demo-fw-dev', sha('audited replay'));
    await call(urls[0], ci, 'POST', '/api/signorders', body, { 'idempotency-key': key });
    const again = await call(urls[1], ci, 'POST', '/api/signorders', body, { 'idempotency-key': key });
    const events = (await new AuditRepository(db).list({ operationId: op, limit: 20 })).items.filter((e) => e.action.startsWith('signorder.'));
    expect(events.map((e) => e.action).sort()).toEqual(['signorder.create', 'signorder.replayed']);
    expect(events.find((e) => e.action === 'signorder.replayed')?.requestId).toBe(again.headers.get('x-request-id'));
  });

  // POST /api/v1/certificates honours a key like sign orders (ADR 0012 addendum "idempotency, session 25"): a factory
  // line retrying after a network glitch gets its certificate again, never a second one for a second usage.
  describe('POST /api/v1/certificates', () => {
    let n = 0;
    const csr = () => {
      const f = (name: string) => join(work, `${n}-${name}`);
      n++;
      run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('d.key'), '-subj', `/CN=device-idem-${n}`, '-out', f('d.csr')]);
      return readFileSync(f('d.csr'), 'utf8');
    };
    type Issued = { id?: string; certificate?: string; chain?: string[]; serial?: string; ignoredExtensions?: string[]; code?: string };

    it('ok the same key sent to both replicas at once on a one-usage operation: one usage, one certificate, every final answer byte-identical, never usage_exhausted', async () => {
      for (let round = 0; round < 4; round++) {
        const op = await newOperation('demo-ca-dev', 1);
        const body = { operationid: op, keyid: 'demo-ca-dev', csr: csr() };
        const key = `unit-${round}-${Date.now()}`;
        const attempt = async (url: string) => {
          for (let i = 0; i < 50; i++) {
            const r = await fetch(`${url}/api/v1/certificates`, {
              method: 'POST',
              headers: { authorization: `Bearer ${ci}`, 'content-type': 'application/json', 'idempotency-key': key },
              body: JSON.stringify(body),
            });
            const text = await r.text();
            if (r.status !== 409 || (JSON.parse(text) as Issued).code !== 'conflict') return { status: r.status, text };
            await new Promise((res) => setTimeout(res, 20));
          }
          throw new Error('still in conflict after 50 attempts');
        };
        const answers = await Promise.all([attempt(urls[0]), attempt(urls[1]), attempt(urls[0]), attempt(urls[1])]);
        expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 201]);
        expect(new Set(answers.map((a) => a.text)).size).toBe(1);
        expect(await used(op)).toBe(1);
        const rows = await db.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM certificate WHERE "operationId" = $1::uuid', [op]);
        expect(rows.rows[0].n).toBe('1');
        const events = (await new AuditRepository(db).list({ operationId: op, limit: 20 })).items.filter((e) => e.action.startsWith('certificate.'));
        // One issuance; the retries told to wait (409 conflict, audited DENIED) issued nothing.
        const issues = events.filter((e) => e.action === 'certificate.issue');
        expect(issues.filter((e) => e.outcome === 'SUCCESS')).toHaveLength(1);
        expect(issues.filter((e) => e.outcome !== 'SUCCESS').every((e) => e.outcome === 'DENIED' && e.errorCode === 'conflict')).toBe(true);
        expect(events.filter((e) => e.action === 'certificate.replayed')).toHaveLength(3);
      }
    });

    it('fail the same key with another CSR: 422 idempotency_key_reused, never the stored certificate, no usage', async () => {
      const op = await newOperation('demo-ca-dev', 3);
      const key = `cert-reuse-${Date.now()}`;
      const first = await call<Issued>(urls[0], ci, 'POST', '/api/v1/certificates', { operationid: op, keyid: 'demo-ca-dev', csr: csr() }, { 'idempotency-key': key });
      const other = await call<Issued>(urls[1], ci, 'POST', '/api/v1/certificates', { operationid: op, keyid: 'demo-ca-dev', csr: csr() }, { 'idempotency-key': key });
      expect([first.status, other.status, other.body.code, other.body.certificate]).toEqual([201, 422, 'idempotency_key_reused', undefined]);
      expect(await used(op)).toBe(1);
    });

    it('fail a hostile key: 400 idempotency_key_invalid, no usage; the revocation route still refuses a key', async () => {
      const op = await newOperation('demo-ca-dev', 1);
      const body = { operationid: op, keyid: 'demo-ca-dev', csr: csr() };
      const bad = await call<Issued>(urls[0], ci, 'POST', '/api/v1/certificates', body, { 'idempotency-key': 'caf\u00e9' });
      expect([bad.status, bad.body.code]).toEqual([400, 'idempotency_key_invalid']);
      expect(await used(op)).toBe(0);
      const revoke = await call<Issued>(urls[1], ci, 'POST', '/api/v1/certificates/00000000-0000-4000-8000-000000000000/revocation', { reason: 'keyCompromise' }, { 'idempotency-key': 'k-1' });
      expect([revoke.status, revoke.body.code]).toEqual([400, 'idempotency_key_not_supported']);
    });
  });

  // POST /api/v1/operations honours a key too (ADR 0007 addendum "operations and Idempotency-Key"): a CI pipeline
  // retrying a timed-out order gets its operation again; approvers never see it twice.
  describe('POST /api/v1/operations', () => {
    const ordered = async (key: string) => Number((await db.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM operation WHERE "idempotencyKey" = $1', [key])).rows[0].n);

    it('ok the same key sent to both replicas at once: one operation, one operation.create event, every answer byte-identical 201', async () => {
      for (let round = 0; round < 4; round++) {
        const body = operationBody('demo-fw-dev', 2, { description: `idempotent order ${round}` });
        const key = `pipeline-${round}-${Date.now()}`;
        const attempt = async (url: string) => {
          const r = await fetch(`${url}/api/v1/operations`, {
            method: 'POST',
            headers: { authorization: `Bearer ${ci}`, 'content-type': 'application/json', 'idempotency-key': key },
            body: JSON.stringify(body),
          });
          return { status: r.status, text: await r.text() };
        };
        const answers = await Promise.all([attempt(urls[0]), attempt(urls[1]), attempt(urls[0]), attempt(urls[1])]);
        expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 201]);
        expect(new Set(answers.map((a) => a.text)).size).toBe(1);
        expect(await ordered(key)).toBe(1);
        const op = (JSON.parse(answers[0].text) as { id: string }).id;
        const events = (await new AuditRepository(db).list({ operationId: op, limit: 20 })).items.filter((e) => e.action.startsWith('operation.'));
        expect(events.filter((e) => e.action === 'operation.create').map((e) => e.outcome)).toEqual(['SUCCESS']);
        expect(events.filter((e) => e.action === 'operation.replayed')).toHaveLength(3);
      }
    });

    it('fail the same key with another body: 422 idempotency_key_reused, no second operation', async () => {
      const key = `order-reuse-${Date.now()}`;
      const first = await call<{ id: string }>(urls[0], ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1), { 'idempotency-key': key });
      const other = await call<{ code: string; id?: string }>(urls[1], ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 2), { 'idempotency-key': key });
      expect([first.status, other.status, other.body.code, other.body.id]).toEqual([201, 422, 'idempotency_key_reused', undefined]);
      expect(await ordered(key)).toBe(1);
    });

    it.each([
      ['fail a key with a space', 'build 1'],
      ['fail an empty key', ''],
      ['fail a non-ASCII key', 'caf\u00e9'],
    ])('%s: 400 idempotency_key_invalid, no operation', async (_n, key) => {
      const before = await db.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM operation');
      const r = await call<{ code: string }>(urls[1], ci, 'POST', '/api/v1/operations', operationBody('demo-fw-dev', 1), { 'idempotency-key': key });
      expect([r.status, r.body.code]).toEqual([400, 'idempotency_key_invalid']);
      expect((await db.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM operation')).rows[0].n).toBe(before.rows[0].n);
    });
  });

  describe('a route that does not honour Idempotency-Key refuses it: nothing is done twice by a client that believes it would be', () => {
    it.each([
      ['fail an operation cancellation', '/api/v1/operations/00000000-0000-4000-8000-000000000000/cancellation', 'empty'],
      ['fail a firmware signature', '/api/v1/firmware/signatures?operationid=00000000-0000-4000-8000-000000000000&keyid=demo-fw-dev', 'firmware'],
      ['fail an empty key on an operation approval', '/api/v1/operations/00000000-0000-4000-8000-000000000000/approvals', 'empty'],
    ] as const)('%s: 400 idempotency_key_not_supported', async (name, path, kind) => {
      const before = await db.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM operation');
      const r = await call<{ code: string }>(urls[0], ci, 'POST', path, kind === 'empty' ? {} : 'firmware image', {
        'idempotency-key': name.includes('empty') ? '' : 'k-1',
        ...(path.includes('firmware') ? { 'content-type': 'application/octet-stream' } : {}),
      });
      expect([r.status, r.body.code]).toEqual([400, 'idempotency_key_not_supported']);
      expect((await db.pool.query<{ n: string }>('SELECT count(*)::text AS n FROM operation')).rows[0].n).toBe(before.rows[0].n);
    });
  });
});
