import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, type Api, type AuditRow } from './admin-helpers';
import { call, ciToken, signOrderBody } from './operations-support';

// Issue 13 item 1: one refused request from any authenticated caller must not break audit verification.

interface Problem {
  seq: string;
  kind: string;
  reason: string;
}
interface Verification {
  ok: boolean;
  checked: number;
  total: number;
  firstBadSeq?: string;
  problems: Problem[];
  problemCount: number;
  legacy: unknown[];
  lastHash: string;
}

/** The offline verifier exactly as an operator runs it: no config, no database, no HSM. */
function auditVerify(file: string): { status: number | null; out: string } {
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
  const r = spawnSync(process.execPath, [join(repoRoot, 'dist/apps/keyserver-api/main.js'), 'audit-verify', file], { env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('audit chain under hostile input', () => {
  let p: RunningPlatform;
  let ada: Api;
  let alan: Api;
  let aude: Api;
  let ci: string;
  let work: string;
  const upper = () => randomUUID().toUpperCase();
  const entries = async (filter: string) => (await aude<{ items: AuditRow[] }>('GET', `/api/v1/audit?${filter}`)).body.items;
  const verify = async () => {
    const r = await aude<Verification>('GET', '/api/v1/audit/verify');
    expect(r.status).toBe(200);
    return r.body;
  };

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-audit-hostile-'));
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    aude = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    ci = await ciToken(p);
  });

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('ok an auditor cancelling an operation id in upper-case hex is refused, audited, and the chain verifies', async () => {
    const id = upper();
    const r = await aude<{ code: string }>('POST', `/api/v1/operations/${id}/cancellation`);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    const audited = await entries(`operationId=${id.toLowerCase()}`);
    expect(audited.map((e) => [e.action, e.outcome, e.operationId])).toEqual([['operation.cancel', 'DENIED', id.toLowerCase()]]);
    expect(await verify()).toMatchObject({ ok: true, problems: [], problemCount: 0 });
  });

  it('ok a sign order with an upper-case operationid is refused, audited, and the chain verifies', async () => {
    const id = upper();
    const r = await call<{ code: string }>(p.env.urls.api, ci, 'POST', '/api/signorders', signOrderBody(id, 'demo-fw-dev', '00'.repeat(32)));
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    const audited = await entries(`operationId=${id.toLowerCase()}`);
    expect(audited.map((e) => [e.action, e.outcome, e.operationId])).toEqual([['signorder.create', 'DENIED', id.toLowerCase()]]);
    expect(await verify()).toMatchObject({ ok: true, problems: [] });
  });

  it('ok an administrative change under an upper-case X-Admin-Session is audited with the session id, and the chain verifies', async () => {
    const session = await activeSession(ada, alan, 'hostile audit session');
    const r = await ada('PATCH', '/api/v1/keys/demo-fw-dev', { body: { requiredApprovers: 0 }, session: session.toUpperCase() });
    expect(r.status).toBeLessThan(500);
    const audited = await entries(`adminSessionId=${session}&action=key.update`);
    expect(audited).toHaveLength(1);
    expect(audited[0].adminSessionId).toBe(session);
    expect(await verify()).toMatchObject({ ok: true, problems: [] });
  });

  it.each([
    ['ok a lone high surrogate', '\\ud800'],
    ['ok a lone low surrogate', 'fw-\\udfff-x'],
    ['ok a reversed pair', '\\udc00\\ud800'],
  ])('%s in a sign order keyid is refused at the edge (400 invalid_input_encoding), audited, and the chain verifies', async (_name, escaped) => {
    // The HTTP edge refuses lone surrogates in any JSON string before a service runs (ADR 0011); the audit
    // chain's canonical form (ADR 0009) would store them as U+FFFD, which audit-canonical tests cover below the edge.
    const body = JSON.stringify(signOrderBody(randomUUID(), 'KEYID', '00'.repeat(32))).replace('"KEYID"', `"${escaped}"`);
    const r = await call<{ code: string }>(p.env.urls.api, ci, 'POST', '/api/signorders', body);
    expect([r.status, r.body.code]).toEqual([400, 'invalid_input_encoding']);
    // Edge refusals are audited after the answer is sent (RefusalAudit, ADR 0011): wait for the entry.
    let latest: AuditRow | undefined;
    for (let i = 0; i < 50 && latest?.errorCode !== 'invalid_input_encoding'; i++) {
      if (i) await new Promise((done) => setTimeout(done, 100));
      [latest] = await entries('action=request.refused&limit=1');
    }
    if (!latest) throw new Error('no request.refused entry');
    expect([latest.errorCode, latest.outcome, latest.details['path']]).toEqual(['invalid_input_encoding', 'DENIED', '/api/signorders']);
    expect(await verify()).toMatchObject({ ok: true, problems: [] });
  });

  it('lists every bad entry online and offline and tells a deleted row (link_broken) from an edited one (content_changed)', async () => {
    const exported = await aude('GET', '/api/v1/audit/export');
    const lines = exported.text.trim().split('\n');
    const good = join(work, 'good.jsonl');
    writeFileSync(good, exported.text);
    expect(auditVerify(good)).toMatchObject({ status: 0 });

    const edited = JSON.parse(lines[2]) as AuditRow;
    const deleted = JSON.parse(lines[5]) as AuditRow;
    const afterDeleted = JSON.parse(lines[6]) as AuditRow;
    const edited2 = JSON.parse(lines[8]) as AuditRow;
    await sql(
      p,
      `BEGIN; SET LOCAL session_replication_role = replica;
       UPDATE "audit_event" SET "outcome" = 'FAILED' WHERE "seq" = ${BigInt(edited.seq)};
       DELETE FROM "audit_event" WHERE "seq" = ${BigInt(deleted.seq)};
       UPDATE "audit_event" SET "details" = '{"forged":true}' WHERE "seq" = ${BigInt(edited2.seq)};
       COMMIT;`,
    );
    const expected = [
      [edited.seq, 'content_changed'],
      [afterDeleted.seq, 'link_broken'],
      [edited2.seq, 'content_changed'],
    ];
    const online = await verify();
    expect(online).toMatchObject({ ok: false, firstBadSeq: edited.seq, checked: 2, problemCount: 3 });
    expect(online.problems.map((x) => [x.seq, x.kind])).toEqual(expected);

    const tampered = join(work, 'tampered.jsonl');
    writeFileSync(tampered, (await aude('GET', '/api/v1/audit/export')).text);
    const offline = auditVerify(tampered);
    expect(offline.status).toBe(1);
    for (const [seq, kind] of expected) expect(offline.out).toContain(`${kind} seq ${seq}:`);

    // The repair step acknowledges only v1 entries: an edited v2 entry stays a problem.
    const ack = (...args: string[]) =>
      spawnSync(process.execPath, [join(repoRoot, 'dist/apps/keyserver-api/main.js'), 'audit-acknowledge', ...args], {
        env: { PATH: process.env['PATH'] ?? '', ...p.env.api, DATABASE_URL: p.databaseUrl },
        encoding: 'utf8',
        timeout: 60_000,
      });
    const refused = ack(edited.seq, '--by', 'Olga Operator', '--reason', 'looks fine');
    expect([refused.status, refused.stdout]).toEqual([1, expect.stringContaining('refused (invalid_state)')]);
    expect(ack(edited.seq, '--by', 'Olga Operator').status).toBe(2);
    expect((await verify()).problems.map((x) => [x.seq, x.kind])).toEqual(expected);
  });
});
