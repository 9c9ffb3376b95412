import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, userOid, type Api, type AuditRow } from './admin-helpers';

interface Problem {
  code: string;
}
interface Verification {
  ok: boolean;
  checked: number;
  firstBadSeq?: string;
}

/** The offline verifier exactly as an operator runs it: no config, no database, no HSM. */
function auditVerify(file: string): { status: number | null; out: string } {
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '' };
  const r = spawnSync(process.execPath, [join(repoRoot, 'dist/apps/keyserver-api/main.js'), 'audit-verify', file], { env, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('audit log', () => {
  let p: RunningPlatform;
  let ada: Api;
  let alan: Api;
  let aude: Api;
  let ann: Api;
  let work: string;

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-audit-'));
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    aude = apiAs(p, await bffUserToken(p, 'aude.auditor@demo.test'));
    ann = apiAs(p, await bffUserToken(p, 'ann.approver@demo.test'));
    // Some history: two sessions and a refused change.
    await activeSession(ada, alan, 'audit history one');
    await activeSession(alan, ada, 'audit history two');
    await ada('PATCH', '/api/v1/keys/demo-fw-dev', { body: { requiredApprovers: 1 } });
  });

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('lets auditors filter the log and page through it with a cursor', async () => {
    const creates = await aude<{ items: AuditRow[]; nextCursor: string | null }>('GET', '/api/v1/audit?action=admin_session.create');
    expect(creates.status).toBe(200);
    expect(creates.body.items).toHaveLength(2);
    expect(creates.body.items.every((e) => e.action === 'admin_session.create' && e.adminSessionId)).toBe(true);

    const byAda = await aude<{ items: AuditRow[] }>('GET', `/api/v1/audit?actor=${userOid('ada.admin@demo.test')}&outcome=DENIED`);
    expect(byAda.body.items[0]).toMatchObject({ action: 'key.update', errorCode: 'admin_session_required', keyid: 'demo-fw-dev' });
    const byKey = await aude<{ items: AuditRow[] }>('GET', '/api/v1/audit?keyid=demo-fw-dev');
    expect(byKey.body.items.every((e) => e.keyid === 'demo-fw-dev')).toBe(true);

    const first = await aude<{ items: AuditRow[]; nextCursor: string | null }>('GET', '/api/v1/audit?limit=3');
    expect(first.body.items).toHaveLength(3);
    expect(first.body.nextCursor).toBe(first.body.items[2].seq);
    const second = await aude<{ items: AuditRow[] }>('GET', `/api/v1/audit?limit=3&cursor=${first.body.nextCursor}`);
    expect(BigInt(second.body.items[0].seq)).toBeLessThan(BigInt(first.body.items[2].seq));

    const future = await aude<{ items: AuditRow[] }>('GET', `/api/v1/audit?from=${encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())}`);
    expect(future.body.items).toEqual([]);
  });

  it('lets administrators read the log and refuses approvers', async () => {
    expect((await ada('GET', '/api/v1/audit?limit=1')).status).toBe(200);
    const r = await ann<Problem>('GET', '/api/v1/audit');
    expect([r.status, r.body.code]).toEqual([403, 'permission_denied']);
  });

  it.each([
    ['fail unknown parameter', 'sql=1'],
    ['fail bad outcome', 'outcome=MAYBE'],
    ['fail bad cursor', 'cursor=-1'],
    ['fail cursor past bigint (a 500 from the database before)', 'cursor=9999999999999999999'],
    ['fail cursor in Arabic-Indic digits', `cursor=${encodeURIComponent('\u0661\u0662')}`],
    ['fail bad session id', 'adminSessionId=nope'],
    ['fail oversize limit', 'limit=100000'],
    ['fail bad date', 'from=yesterday'],
    ['fail repeated parameter', 'action=a&action=b'],
  ])('%s', async (_name, query) => {
    const r = await aude<Problem>('GET', `/api/v1/audit?${query}`);
    expect([r.status, r.body.code]).toEqual([400, 'validation_failed']);
  });

  it('verifies the chain online and offline, and both name the first entry edited in PostgreSQL', async () => {
    const ok = await aude<Verification>('GET', '/api/v1/audit/verify');
    expect(ok.status).toBe(200);
    expect(ok.body.ok).toBe(true);
    expect(ok.body.checked).toBeGreaterThan(5);

    const exported = await aude('GET', '/api/v1/audit/export');
    expect(exported.status).toBe(200);
    expect(exported.headers.get('content-type')).toContain('application/x-ndjson');
    const lines = exported.text.trim().split('\n');
    const good = join(work, 'good.jsonl');
    writeFileSync(good, exported.text);
    const offline = auditVerify(good);
    expect(offline.out).toContain(`OK, ${lines.length} entries verified`);
    expect(offline.status).toBe(0);

    // Tamper with one row as the superuser, past the append-only trigger.
    const victim = JSON.parse(lines[3]) as AuditRow;
    await sql(p, `BEGIN; SET LOCAL session_replication_role = replica; UPDATE "audit_event" SET "action" = 'audit.forged' WHERE "seq" = ${BigInt(victim.seq)}; COMMIT;`);
    expect(await sql(p, 'SELECT "action" FROM "audit_event" WHERE "seq" = $1', [victim.seq])).toEqual([{ action: 'audit.forged' }]);

    const bad = await aude<Verification>('GET', '/api/v1/audit/verify');
    expect(bad.body).toMatchObject({ ok: false, firstBadSeq: victim.seq, checked: 3 });
    const tampered = join(work, 'tampered.jsonl');
    writeFileSync(tampered, (await aude('GET', '/api/v1/audit/export')).text);
    const caught = auditVerify(tampered);
    expect(caught.status).toBe(1);
    expect(caught.out).toContain(`FAILED at seq ${victim.seq}`);
  });

  it('names the first bad seq of an export edited after the fact, or removed lines', async () => {
    const text = readFileSync(join(work, 'good.jsonl'), 'utf8');
    const lines = text.trim().split('\n');
    const edited = lines.map((l, i) => (i === 5 ? l.replace(/"action":"[^"]+"/, '"action":"admin_session.close"') : l));
    writeFileSync(join(work, 'edited.jsonl'), edited.join('\n'));
    const seq5 = (JSON.parse(lines[5]) as AuditRow).seq;
    const r1 = auditVerify(join(work, 'edited.jsonl'));
    expect([r1.status, r1.out.includes(`FAILED at seq ${seq5}`)]).toEqual([1, true]);

    const dropped = lines.filter((_l, i) => i !== 2);
    writeFileSync(join(work, 'dropped.jsonl'), dropped.join('\n'));
    const seq3 = (JSON.parse(lines[3]) as AuditRow).seq;
    const r2 = auditVerify(join(work, 'dropped.jsonl'));
    expect([r2.status, r2.out.includes(`FAILED at seq ${seq3}`)]).toEqual([1, true]);

    const missing = auditVerify(join(work, 'no-such-file.jsonl'));
    expect(missing.status).toBe(2);
  });
});
