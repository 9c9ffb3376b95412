import type { AuditInput } from '@keyserver/data-access';
import { REFUSALS_AGGREGATED_ACTION, RefusalAudit } from './refusal-audit';

describe(RefusalAudit.name, () => {
  let now: number;
  let written: AuditInput[];
  const audit = (over: Partial<{ windowMs: number; perKey: number; perWindow: number; maxKeys: number }> = {}) =>
    new RefusalAudit(
      async (input) => {
        written.push(input);
      },
      { windowMs: 60_000, perKey: 2, perWindow: 100, maxKeys: 10, ...over },
      { error: () => undefined },
      () => now,
    );
  const refusal = (code: string, ip: string): [string, AuditInput] => [
    `auth.invalid_token|${code}|ip:${ip}`,
    { action: 'auth.invalid_token', outcome: 'DENIED', errorCode: code, details: { ip } },
  ];

  beforeEach(() => {
    now = Date.parse('2026-12-05T08:00:00Z');
    written = [];
  });

  it('writes the first identical refusals one by one and the rest as one count per window', async () => {
    const a = audit();
    for (let i = 0; i < 10; i++) await a.record(...refusal('missing_token', '10.0.0.1'));
    expect(written).toHaveLength(2);
    await a.flush();
    expect(written).toHaveLength(3);
    expect(written[2]).toMatchObject({ action: REFUSALS_AGGREGATED_ACTION, outcome: 'DENIED', errorCode: 'missing_token', details: { action: 'auth.invalid_token', count: 8, first: { ip: '10.0.0.1' } } });
  });

  it('counts each caller and each code apart', async () => {
    const a = audit({ perKey: 1 });
    for (let i = 0; i < 3; i++) {
      await a.record(...refusal('missing_token', '10.0.0.1'));
      await a.record(...refusal('missing_token', '10.0.0.2'));
      await a.record(...refusal('token_expired', '10.0.0.1'));
    }
    expect(written).toHaveLength(3);
    await a.flush();
    expect(written.slice(3).map((e) => e.details?.['count'])).toEqual([2, 2, 2]);
  });

  it('starts a new window after windowMs and writes nothing for an empty window', async () => {
    const a = audit({ perKey: 1, windowMs: 1000 });
    await a.record(...refusal('missing_token', '10.0.0.1'));
    await a.record(...refusal('missing_token', '10.0.0.1'));
    now += 1000;
    await a.record(...refusal('missing_token', '10.0.0.1'));
    await a.stop();
    expect(written.map((e) => e.action)).toEqual(['auth.invalid_token', REFUSALS_AGGREGATED_ACTION, 'auth.invalid_token']);
    await a.flush();
    expect(written).toHaveLength(3);
  });

  it('bounds a flood from many callers: perWindow events in all and a bounded number of summaries', async () => {
    const a = audit({ perKey: 5, perWindow: 20, maxKeys: 10 });
    for (let i = 0; i < 10_000; i++) await a.record(...refusal('missing_token', `10.0.${i >> 8}.${i & 255}`));
    expect(written).toHaveLength(20);
    await a.flush();
    const summaries = written.slice(20);
    expect(summaries.length).toBeLessThanOrEqual(11);
    expect(summaries.reduce((n, e) => n + Number(e.details?.['count']), 0)).toBe(10_000 - 20);
    expect(summaries.some((e) => e.details?.['overflow'] === true)).toBe(true);
  });

  it('never rejects when the audit write fails', async () => {
    const a = new RefusalAudit(() => Promise.reject(new Error('database down')), { windowMs: 1000, perKey: 1, perWindow: 1, maxKeys: 1 }, { error: () => undefined }, () => now);
    await expect(a.record(...refusal('missing_token', '10.0.0.1'))).resolves.toBeUndefined();
  });
});
