import { RefusalLimiter } from './rate-limiter';

describe(RefusalLimiter.name, () => {
  let now: number;
  const limiter = (burst = 3, perMinute = 60, maxTracked = 100) => new RefusalLimiter({ burst, perMinute, maxTracked }, () => now);

  beforeEach(() => {
    now = Date.parse('2026-12-05T08:00:00Z');
  });

  it('lets a caller spend its burst, then refuses with the seconds until a token is back', () => {
    const l = limiter(3, 60);
    expect([l.take('ip:a'), l.take('ip:a'), l.take('ip:a')].every((r) => r.ok)).toBe(true);
    expect(l.take('ip:a')).toEqual({ ok: false, retryAfterSeconds: 1 });
  });

  it('refills at the steady rate and never above the burst', () => {
    const l = limiter(2, 30); // one token every 2 s
    l.take('ip:a');
    l.take('ip:a');
    expect(l.take('ip:a')).toEqual({ ok: false, retryAfterSeconds: 2 });
    now += 2000;
    expect(l.take('ip:a').ok).toBe(true);
    expect(l.take('ip:a').ok).toBe(false);
    now += 3_600_000;
    expect([l.take('ip:a').ok, l.take('ip:a').ok, l.take('ip:a').ok]).toEqual([true, true, false]);
  });

  it('keeps callers apart', () => {
    const l = limiter(1);
    expect(l.take('ip:a').ok).toBe(true);
    expect(l.take('ip:a').ok).toBe(false);
    expect(l.take('ip:b').ok).toBe(true);
    expect(l.take('principal:t/o').ok).toBe(true);
  });

  it('peeks without spending', () => {
    const l = limiter(1);
    expect(l.peek('ip:a').ok).toBe(true);
    expect(l.peek('ip:a').ok).toBe(true);
    l.take('ip:a');
    expect(l.peek('ip:a').ok).toBe(false);
  });

  it('tracks at most maxTracked callers and forgets full buckets first', () => {
    const l = limiter(2, 60, 100);
    for (let i = 0; i < 1000; i++) l.take(`ip:${i}`);
    expect(l.size()).toBeLessThanOrEqual(100);
    now += 60_000; // everyone refilled
    l.take('ip:new');
    expect(l.size()).toBeLessThanOrEqual(100);
  });
});
