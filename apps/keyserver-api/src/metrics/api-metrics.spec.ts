import type { AuditInput } from '@keyserver/data-access';
import { HsmError } from '@keyserver/pkcs11-signer';
import type { HsmSigner } from '@keyserver/pki';
import { ApiMetrics } from './api-metrics';

async function series(m: ApiMetrics, name: string): Promise<{ labels: Record<string, string | number>; value: number }[]> {
  const metric = await m.registry.getSingleMetric(name)?.get();
  return (metric?.values ?? []).map((v) => ({ labels: v.labels as Record<string, string | number>, value: v.value }));
}

const order = (keyid: string, outcome: AuditInput['outcome'], errorCode?: string): AuditInput => ({ action: 'signorder.create', outcome, keyid, errorCode });

describe(ApiMetrics.name, () => {
  it('counts a sign order under its key once the key is known, a caller-supplied keyid under _other', async () => {
    const m = new ApiMetrics();
    m.keys.learnAll(['demo-fw-dev']);
    m.onAuditAppend(order('demo-fw-dev', 'SUCCESS'), 0.002, 'with_result', true);
    m.onAuditAppend(order('demo-fw-dev', 'DENIED', 'usage_exhausted'), 0.001, 'statement', true);
    m.onAuditAppend(order('../../x', 'DENIED', 'key_not_permitted'), 0.001, 'statement', true);
    expect(await series(m, 'keyserver_sign_orders_total')).toEqual([
      { labels: { key: 'demo-fw-dev', outcome: 'success', code: 'none' }, value: 1 },
      { labels: { key: 'demo-fw-dev', outcome: 'denied', code: 'usage_exhausted' }, value: 1 },
      { labels: { key: '_other', outcome: 'denied', code: 'key_not_permitted' }, value: 1 },
    ]);
  });

  it('keeps the series count bounded whatever keyids and codes a flood of refusals carries', async () => {
    const m = new ApiMetrics({ maxKeyLabels: 5 });
    for (let i = 0; i < 5_000; i++) m.onAuditAppend(order(`key-${i}`, 'DENIED', `code_${i % 1000}`), 0.001, 'statement', true);
    // Successful signatures teach real keys, up to the cap.
    for (let i = 0; i < 50; i++) m.onAuditAppend(order(`real-${i}`, 'SUCCESS'), 0.001, 'with_result', true);
    const s = await series(m, 'keyserver_sign_orders_total');
    const keys = new Set(s.map((x) => x.labels['key']));
    expect(keys.size).toBeLessThanOrEqual(6);
    expect(keys.has('_other')).toBe(true);
    expect(new Set(s.map((x) => x.labels['code'])).size).toBeLessThanOrEqual(301 + 1);
    expect(s.reduce((a, x) => a + x.value, 0)).toBe(5_050);
  });

  it.each([
    ['ok a sign order', 'signorder.create', 'keyserver_sign_orders_total'],
    ['ok a firmware signature', 'firmware.sign', 'keyserver_firmware_signatures_total'],
    ['ok a certificate', 'certificate.issue', 'keyserver_certificates_total'],
  ])('%s (%s) is counted in %s', async (_name, action, metric) => {
    const m = new ApiMetrics();
    m.onAuditAppend({ action, outcome: 'SUCCESS', keyid: 'k1' }, 0.001, 'with_result', true);
    expect(await series(m, metric)).toEqual([{ labels: { key: 'k1', outcome: 'success', code: 'none' }, value: 1 }]);
  });

  it('times every append but counts a decision only when it was written', async () => {
    const m = new ApiMetrics();
    m.onAuditAppend(order('k', 'SUCCESS'), 0.003, 'with_result', false);
    expect(await series(m, 'keyserver_sign_orders_total')).toEqual([]);
    expect((await series(m, 'keyserver_audit_append_failures_total'))[0]).toEqual({ labels: { path: 'with_result' }, value: 1 });
    const counts = (await series(m, 'keyserver_audit_append_duration_seconds')).filter((x) => x.labels['path'] === 'with_result' && x.labels['le'] === '+Inf');
    expect(counts).toEqual([{ labels: { path: 'with_result', le: '+Inf' }, value: 1 }]);
  });

  it('times usage reservations by kind and outcome (reserved or the refusal code)', async () => {
    const m = new ApiMetrics();
    m.onReservation('certificate', 0.002, 'reserved');
    m.onReservation('signorder', 0.04, 'usage_exhausted');
    m.onReservation('signorder', 0.001, 'usage_exhausted');
    const inf = (await series(m, 'keyserver_usage_reservation_duration_seconds')).filter((x) => x.labels['le'] === '+Inf');
    expect(inf).toEqual([
      { labels: { kind: 'certificate', outcome: 'reserved', le: '+Inf' }, value: 1 },
      { labels: { kind: 'signorder', outcome: 'usage_exhausted', le: '+Inf' }, value: 2 },
    ]);
    const slow = (await series(m, 'keyserver_usage_reservation_duration_seconds')).find((x) => x.labels['outcome'] === 'usage_exhausted' && x.labels['le'] === 0.025);
    expect(slow?.value).toBe(1);
  });

  it('times HSM calls by operation and outcome (the error code), passing results and errors through', async () => {
    const m = new ApiMetrics();
    const inner = {
      sign: async () => new Uint8Array([1]),
      getKey: async () => {
        throw new HsmError('key_not_found');
      },
    } as unknown as HsmSigner;
    const signer = m.instrumentSigner(inner);
    expect(await signer.sign('01', { kind: 'ecdsa' } as never, new Uint8Array(32))).toEqual(new Uint8Array([1]));
    await expect(signer.getKey('02')).rejects.toBeInstanceOf(HsmError);
    const inf = (await series(m, 'keyserver_hsm_operation_duration_seconds')).filter((x) => x.labels['le'] === '+Inf');
    expect(inf.map((x) => x.labels)).toEqual([
      { operation: 'sign', outcome: 'ok', le: '+Inf' },
      { operation: 'get_key', outcome: 'key_not_found', le: '+Inf' },
    ]);
  });
});
