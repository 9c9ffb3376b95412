import fc from 'fast-check';
import { hex, outcome, seedKey, seedSubject, twoReplicas } from '../../spec/fixtures';
import { DEFAULT_KEY_LIMITS, KeyLimitsRepository, operationLimitViolation, type KeyOperationLimits } from './key-limits';

const FC = { seed: 1306, numRuns: 300 } as const;
// Frozen clock: every window below is relative to it.
const NOW = new Date('2026-12-05T08:00:00.000Z');
const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000);
const DAY = 86_400;

describe(operationLimitViolation.name, () => {
  const limits: KeyOperationLimits = { maxWindowSeconds: 3_600, maxUsagesPerOperation: 10, maxBackdateSeconds: 300, maxStartAheadSeconds: 600 };

  it.each([
    ['ok at every boundary', 0 - 300, 3_600, 10, null],
    ['ok starting now', 0, 60, 1, null],
    ['fail start_backdated one ms beyond the skew', -300.001, 60, 1, 'start_backdated'],
    ['fail start_backdated in 2020', (Date.parse('2020-01-01T00:00:00Z') - NOW.getTime()) / 1000, 60, 1, 'start_backdated'],
    ['fail start_too_far_ahead', 601, 60, 1, 'start_too_far_ahead'],
    ['fail window_too_long by one second', 0, 3_601, 1, 'window_too_long'],
    ['fail window_too_long to 2099', 0, (Date.parse('2099-12-31T00:00:00Z') - NOW.getTime()) / 1000, 1, 'window_too_long'],
    ['fail too_many_usages', 0, 60, 11, 'too_many_usages'],
    ['fail too_many_usages at a million', 0, 60, 1_000_000, 'too_many_usages'],
  ] as const)('%s', (_n, start, window, usages, expected) => {
    expect(operationLimitViolation(limits, { validFrom: at(start), validTo: at(start + window), usages }, NOW)?.code ?? null).toBe(expected);
  });

  it('accepts exactly the operations inside every limit (property)', () => {
    const arbLimits = fc.record({
      maxWindowSeconds: fc.integer({ min: 60, max: 366 * DAY }),
      maxUsagesPerOperation: fc.integer({ min: 1, max: 1_000_000 }),
      maxBackdateSeconds: fc.integer({ min: 0, max: DAY }),
      maxStartAheadSeconds: fc.integer({ min: 0, max: 366 * DAY }),
    });
    fc.assert(
      fc.property(arbLimits, fc.integer({ min: -400 * DAY, max: 400 * DAY }), fc.integer({ min: 1, max: 800 * DAY }), fc.integer({ min: 1, max: 1_000_000 }), (l, start, window, usages) => {
        const inside = start >= -l.maxBackdateSeconds && start <= l.maxStartAheadSeconds && window <= l.maxWindowSeconds && usages <= l.maxUsagesPerOperation;
        const v = operationLimitViolation(l, { validFrom: at(start), validTo: at(start + window), usages }, NOW);
        expect(v === null).toBe(inside);
      }),
      FC,
    );
  });
});

describe(KeyLimitsRepository.name, () => {
  const r = twoReplicas('keylimits', 4);

  const create = async (keyids: string[], start: number, window: number, usages: number) => {
    const orderer = await seedSubject(r.a);
    return outcome(
      r.a.operations.create({
        description: 'release',
        ordererId: orderer.id,
        validFrom: at(start),
        validTo: at(start + window),
        keys: keyids.map((keyid) => ({ keyid, usagesAllowed: usages })),
        now: NOW,
      }),
    );
  };

  it('gives keys nobody set limits for the defaults of their class, production tighter', async () => {
    const prod = await seedKey(r.a, { requiredApprovers: 2 });
    const dev = await seedKey(r.a, { requiredApprovers: 0 });
    expect(await r.a.keyLimits.get(prod.keyid)).toEqual({ ...DEFAULT_KEY_LIMITS.production, source: 'default', updatedAt: null });
    expect(await r.a.keyLimits.get(dev.keyid)).toEqual({ ...DEFAULT_KEY_LIMITS.development, source: 'default', updatedAt: null });
    expect(DEFAULT_KEY_LIMITS.production.maxWindowSeconds).toBeLessThan(DEFAULT_KEY_LIMITS.development.maxWindowSeconds);
    expect(DEFAULT_KEY_LIMITS.production.maxUsagesPerOperation).toBeLessThan(DEFAULT_KEY_LIMITS.development.maxUsagesPerOperation);
    expect(await outcome(r.a.keyLimits.get('no-such-key'))).toBe('not_found');
  });

  it.each([
    // The reported case: a production key, a window to 2099, a start in 2020, a million usages.
    ['fail window to 2099 on a production key', 0, (Date.parse('2099-12-31T00:00:00Z') - NOW.getTime()) / 1000, 1, 'window_too_long'],
    ['fail start in 2020 on a production key', (Date.parse('2020-01-01T00:00:00Z') - NOW.getTime()) / 1000, 3_600, 1, 'start_backdated'],
    ['fail 1,000,000 usages on a production key', 0, 3_600, 1_000_000, 'too_many_usages'],
    ['fail start beyond the default lead', 8 * DAY, 3_600, 1, 'start_too_far_ahead'],
    ['ok start 5 minutes back, 7 days, 1000 usages', -300, 7 * DAY, 1_000, 'ok'],
  ] as const)('%s', async (_n, start, window, usages, expected) => {
    const prod = await seedKey(r.a, { requiredApprovers: 1 });
    const before = (await r.a.operations.list({ keyid: prod.keyid })).items.length;
    expect(await create([prod.keyid], start, window, usages)).toBe(expected);
    expect((await r.a.operations.list({ keyid: prod.keyid })).items.length).toBe(before + (expected === 'ok' ? 1 : 0));
  });

  it('applies every key its own limits in a multi-key operation', async () => {
    const dev = await seedKey(r.a, { requiredApprovers: 0 });
    const prod = await seedKey(r.a, { requiredApprovers: 1 });
    expect(await create([dev.keyid], 0, 20 * DAY, 5_000)).toBe('ok');
    expect(await create([dev.keyid, prod.keyid], 0, 20 * DAY, 5)).toBe('window_too_long');
    expect(await create([dev.keyid, prod.keyid], 0, DAY, 5_000)).toBe('too_many_usages');
  });

  it('sets limits with an audit event of before and after in the same transaction, and enforces them', async () => {
    const key = await seedKey(r.a, { requiredApprovers: 1 });
    const set = { maxWindowSeconds: 3_600, maxUsagesPerOperation: 5, maxBackdateSeconds: 60, maxStartAheadSeconds: 120 };
    const changed = await r.a.keyLimits.set(key.keyid, set, { action: 'key.limits', outcome: 'SUCCESS', actorOid: 'admin', adminSessionId: null, details: {} }, NOW);
    expect(changed.after).toEqual({ ...set, source: 'set', updatedAt: NOW });
    expect(await r.b.keyLimits.get(key.keyid)).toEqual({ ...set, source: 'set', updatedAt: NOW });
    const [event] = (await r.a.audit.list({ action: 'key.limits', keyid: key.keyid })).items;
    expect(event.details).toEqual({ limits: { before: { ...DEFAULT_KEY_LIMITS.production, source: 'default' }, after: { ...set, source: 'set' } } });
    expect(await create([key.keyid], 0, 3_601, 1)).toBe('window_too_long');
    expect(await create([key.keyid], -61, 60, 1)).toBe('start_backdated');
    expect(await create([key.keyid], 121, 60, 1)).toBe('start_too_far_ahead');
    expect(await create([key.keyid], 0, 60, 6)).toBe('too_many_usages');
    expect(await create([key.keyid], -60, 3_600, 5)).toBe('ok');
  });

  it.each([
    ['fail a window under a minute', { maxWindowSeconds: 59 }],
    ['fail a window over 366 days', { maxWindowSeconds: 366 * DAY + 1 }],
    ['fail zero usages', { maxUsagesPerOperation: 0 }],
    ['fail over a million usages', { maxUsagesPerOperation: 1_000_001 }],
    ['fail a negative skew', { maxBackdateSeconds: -1 }],
    ['fail a skew over a day', { maxBackdateSeconds: DAY + 1 }],
    ['fail a fraction', { maxStartAheadSeconds: 1.5 }],
    ['fail NaN', { maxStartAheadSeconds: Number.NaN }],
  ] as const)('%s', async (_n, change) => {
    const key = await seedKey(r.a, { requiredApprovers: 1 });
    const limits = { ...DEFAULT_KEY_LIMITS.production, ...change };
    expect(await outcome(r.a.keyLimits.set(key.keyid, limits, { action: 'key.limits', outcome: 'SUCCESS', details: {} }))).toBe('invalid_input');
    expect((await r.a.keyLimits.get(key.keyid)).source).toBe('default');
    expect((await r.a.audit.list({ action: 'key.limits', keyid: key.keyid })).items).toEqual([]);
  });

  it('records one true before/after per change when administrators set limits concurrently', async () => {
    const key = await seedKey(r.a, { requiredApprovers: 1 });
    const values = [10, 20, 30, 40, 50, 60];
    await Promise.all(
      values.map((n, i) =>
        (i % 2 ? r.a : r.b).keyLimits.set(key.keyid, { ...DEFAULT_KEY_LIMITS.production, maxUsagesPerOperation: n }, { action: 'key.limits', outcome: 'SUCCESS', requestId: hex(3), details: {} }),
      ),
    );
    const events = (await r.a.audit.list({ action: 'key.limits', keyid: key.keyid, limit: 50 })).items.reverse();
    const chain = events.map((e) => (e.details as { limits: { before: { maxUsagesPerOperation: number }; after: { maxUsagesPerOperation: number } } }).limits);
    expect(chain).toHaveLength(values.length);
    for (let i = 1; i < chain.length; i++) expect(chain[i].before.maxUsagesPerOperation).toBe(chain[i - 1].after.maxUsagesPerOperation);
  });
});
