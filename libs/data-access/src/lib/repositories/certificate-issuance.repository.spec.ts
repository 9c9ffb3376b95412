import { hex, outcome, seedKey, seedSubject, window, twoReplicas } from '../../spec/fixtures';
import { hsmGate as gate } from '../../spec/sign-path';
import { requestFingerprint } from './idempotency';
import { AuditRepository } from './audit.repository';
import { CertificateIssuanceRepository, type IssuedCertificateRecord } from './certificate-issuance.repository';

describe(CertificateIssuanceRepository.name, () => {
  // Two pools on one database, like two API replicas.
  const { dbA, dbB, a } = twoReplicas('issue', 5);
  const issuanceA = new CertificateIssuanceRepository(dbA);
  const issuanceB = new CertificateIssuanceRepository(dbB);

  async function setup(opts: { usages?: number; approvers?: number; digests?: readonly string[]; validTo?: Date } = {}) {
    const requester = await seedSubject(a);
    const ca = await seedKey(a, { requiredApprovers: opts.approvers ?? 0 });
    const op = await a.operations.create({
      description: 'device batch 7',
      ordererId: requester.id,
      ...window(),
      // A window in the past: created with the clock of its start (the per-key limits refuse back-dating).
      ...(opts.validTo ? { validFrom: new Date(opts.validTo.getTime() - 3_600_000), validTo: opts.validTo, now: new Date(opts.validTo.getTime() - 3_600_000) } : {}),
      digests: opts.digests ? [...opts.digests] : undefined,
      keys: [{ keyid: ca.keyid, usagesAllowed: opts.usages ?? 2 }],
    });
    return { requester, ca, op };
  }

  const record = (): IssuedCertificateRecord => ({
    serialHex: hex(16),
    subjectDn: 'CN=device-1, O=Demo',
    sans: ['DNS:device-1.demo.test'],
    notBefore: new Date(),
    notAfter: new Date(Date.now() + 86_400_000),
    pem: '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n',
  });

  const request = (s: Awaited<ReturnType<typeof setup>>, digest: string | null = null) => ({
    operationId: s.op.id,
    issuerKeyid: s.ca.keyid,
    issuerVersion: 1,
    requesterId: s.requester.id,
    digest,
    audit: { action: 'certificate.issue', outcome: 'SUCCESS' as const },
  });

  it('stores the certificate, consumes one usage and audits it in one transaction', async () => {
    const s = await setup({ usages: 2 });
    const { certificate, audit } = await issuanceA.issueWithUsage(request(s), async () => record());
    expect(certificate).toMatchObject({ issuerKeyid: s.ca.keyid, issuerVersion: 1, operationId: s.op.id, requesterId: s.requester.id });
    expect(audit?.details).toMatchObject({ certificateId: certificate.id, serialHex: certificate.serialHex });
    const op = await a.operations.get(s.op.id);
    expect(op).toMatchObject({ state: 'REQUESTED', keys: [{ usagesUsed: 1 }] });
    expect(await issuanceA.getById(certificate.id)).toEqual(certificate);
  });

  it('consumes nothing and stores nothing when the issuing callback throws', async () => {
    const s = await setup();
    const refused = issuanceA.issueWithUsage(request(s), async () => {
      throw new Error('HSM down');
    });
    await expect(refused).rejects.toThrow('HSM down');
    expect((await a.operations.get(s.op.id)).keys[0].usagesUsed).toBe(0);
    expect((await a.certificates.list({ operationId: s.op.id })).items).toEqual([]);
  });

  it.each([
    ['fail operation still needs approvals', { approvers: 1 }, null, 'operation_not_usable'],
    ['fail digest not allowed', { digests: ['aa'.repeat(32)] }, 'bb'.repeat(32), 'digest_not_allowed'],
    ['fail digest missing where the operation lists digests', { digests: ['aa'.repeat(32)] }, null, 'digest_not_allowed'],
    ['fail window passed', { validTo: new Date(Date.now() - 60_000) }, null, 'outside_window'],
    ['ok allowed digest', { digests: ['aa'.repeat(32)] }, 'AA'.repeat(32), 'ok'],
  ] as const)('%s', async (_n, opts, digest, code) => {
    const s = await setup(opts);
    let called = false;
    const r = await outcome(
      issuanceA.issueWithUsage(request(s, digest), async () => {
        called = true;
        return record();
      }),
    );
    expect(r).toBe(code);
    expect(called).toBe(code === 'ok');
  });

  it('answers a malformed or unknown id with not_found', async () => {
    expect(await outcome(issuanceA.getById('nope'))).toBe('not_found');
    expect(await outcome(issuanceA.getById('00000000-0000-4000-8000-000000000000'))).toBe('not_found');
  });

  it('issues exactly N certificates when 3N requests race from two pools', async () => {
    const s = await setup({ usages: 4 });
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => outcome((i % 2 ? issuanceA : issuanceB).issueWithUsage(request(s), async () => record()))),
    );
    expect(results.filter((r) => r === 'ok')).toHaveLength(4);
    expect(results.filter((r) => r === 'usage_exhausted')).toHaveLength(8);
    expect(await a.operations.get(s.op.id)).toMatchObject({ state: 'EXHAUSTED', keys: [{ usagesUsed: 4 }] });
    expect((await a.certificates.list({ operationId: s.op.id })).items).toHaveLength(4);
    expect(await new AuditRepository(dbA).verifyChain()).toMatchObject({ ok: true });
  });
  // ADR 0012 addendum "idempotency, session 25": a factory line retrying after a network glitch.
  const ROUTE = 'POST /api/v1/certificates';
  const answer = { chain: ['-----BEGIN CERTIFICATE-----\nMQ==\n-----END CERTIFICATE-----\n'], ignoredExtensions: ['1.2.3.4'] };
  const keyed = (s: Awaited<ReturnType<typeof setup>>, key: string, csr = 'csr-1', requesterId = s.requester.id) => ({
    ...request(s),
    requesterId,
    idempotencyKey: key,
    requestHash: requestFingerprint(ROUTE, key, { operationid: s.op.id, keyid: s.ca.keyid, csr }),
    answer,
    audit: { action: 'certificate.issue', outcome: 'SUCCESS' as const, requestId: `rid-${csr}` },
  });
  const answerOf = (r: Awaited<ReturnType<CertificateIssuanceRepository['issueWithUsage']>>) => ({ ...r.certificate, ...r.answer });
  const mustNotSign = async (): Promise<IssuedCertificateRecord> => {
    throw new Error('must not sign');
  };

  it('ok the last usage held by the first request, still signing: a retry on the other replica is conflict, then the identical answer without a usage', async () => {
    const s = await setup({ usages: 1 });
    const slow = gate(record());
    const first = issuanceA.issueWithUsage(keyed(s, 'line-7:unit-1'), slow.wait);
    await slow.entered;
    expect(await outcome(issuanceB.issueWithUsage(keyed(s, 'line-7:unit-1'), async () => record()))).toBe('conflict');
    slow.open();
    const done = await first;
    const again = await issuanceB.issueWithUsage(keyed(s, 'line-7:unit-1'), mustNotSign);
    expect([done.replayed, again.replayed, again.audit, again.firstRequestId]).toEqual([false, true, null, 'rid-csr-1']);
    expect(answerOf(again)).toEqual(answerOf(done));
    expect((await a.operations.get(s.op.id)).keys[0].usagesUsed).toBe(1);
    expect((await a.certificates.list({ operationId: s.op.id })).items).toHaveLength(1);
  });

  it('ok the same key sent to both replicas at once: one usage, one certificate, every answer identical or conflict', async () => {
    const s = await setup({ usages: 3 });
    let signed = 0;
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 ? issuanceA : issuanceB)
          .issueWithUsage(keyed(s, 'burst'), async () => {
            signed++;
            return record();
          })
          .then(answerOf, (err: { code?: string }) => err.code),
      ),
    );
    const answers = results.filter((r) => typeof r !== 'string');
    expect(results.filter((r) => typeof r === 'string').every((r) => r === 'conflict')).toBe(true);
    const replay = answerOf(await issuanceA.issueWithUsage(keyed(s, 'burst'), mustNotSign));
    expect(answers.length).toBeGreaterThan(0);
    for (const x of answers) expect(x).toEqual(replay);
    expect(signed).toBe(1);
    expect((await a.operations.get(s.op.id)).keys[0].usagesUsed).toBe(1);
    expect((await a.certificates.list({ operationId: s.op.id })).items).toHaveLength(1);
  });

  it('ok a retry after the HSM failed signs afresh: the usage was given back, one certificate, then replayed', async () => {
    const s = await setup({ usages: 1 });
    const failed = issuanceA.issueWithUsage(keyed(s, 'hsm-glitch'), () => Promise.reject(Object.assign(new Error('CKR_DEVICE_ERROR'), { code: 'hsm_error' })));
    expect(await outcome(failed)).toBe('hsm_error');
    expect((await a.operations.get(s.op.id)).keys[0].usagesUsed).toBe(0);
    const retry = await issuanceB.issueWithUsage(keyed(s, 'hsm-glitch'), async () => record());
    expect(retry.replayed).toBe(false);
    expect(answerOf(await issuanceA.issueWithUsage(keyed(s, 'hsm-glitch'), mustNotSign))).toEqual(answerOf(retry));
    expect((await a.operations.get(s.op.id)).keys[0].usagesUsed).toBe(1);
  });

  it('fail the same key with another CSR: idempotency_key_reused, nothing signed, no usage spent', async () => {
    const s = await setup({ usages: 3 });
    await issuanceA.issueWithUsage(keyed(s, 'reused', 'csr-1'), async () => record());
    expect(await outcome(issuanceB.issueWithUsage(keyed(s, 'reused', 'csr-2'), mustNotSign))).toBe('idempotency_key_reused');
    expect((await a.operations.get(s.op.id)).keys[0].usagesUsed).toBe(1);
  });

  it('ok another caller\'s equal key is its own key: its own usage and certificate, never the first caller\'s', async () => {
    const s = await setup({ usages: 3 });
    const other = await seedSubject(a);
    const mine = await issuanceA.issueWithUsage(keyed(s, 'shared-name'), async () => record());
    const theirs = await issuanceB.issueWithUsage(keyed(s, 'shared-name', 'csr-1', other.id), async () => record());
    expect([theirs.replayed, theirs.certificate.requesterId]).toEqual([false, other.id]);
    expect(theirs.certificate.id).not.toBe(mine.certificate.id);
    expect((await a.operations.get(s.op.id)).keys[0].usagesUsed).toBe(2);
  });

  it('ok byte-exact keys: a key differing only in case is another key', async () => {
    const s = await setup({ usages: 3 });
    const upper = await issuanceA.issueWithUsage(keyed(s, 'ABC'), async () => record());
    const lower = await issuanceA.issueWithUsage(keyed(s, 'abc'), async () => record());
    expect([upper.replayed, lower.replayed, lower.certificate.id === upper.certificate.id]).toEqual([false, false, false]);
  });
});
