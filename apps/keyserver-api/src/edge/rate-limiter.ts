/** Limits of {@link RefusalLimiter}. */
export interface RateLimitConfig {
  /** Tokens a bucket holds when full: the burst a caller may spend at once. */
  burst: number;
  /** Tokens added per minute (steady rate). */
  perMinute: number;
  /** Buckets kept in memory at most; the least recently used full ones go first. */
  maxTracked: number;
}

/** Result of {@link RefusalLimiter.take}: `retryAfterSeconds` until one token is back when refused. */
export interface TakeResult {
  ok: boolean;
  retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets per caller key (`ip:<clientKey>` for unauthenticated and failing callers, `principal:tid/oid` for
 * authenticated ones: `ipKey` and `principalKey` of edge.ts), in memory per replica (docs/adr/0011-edge-refusals-and-rate-limits.md). A full bucket
 * and an unknown key are the same thing, so forgetting full buckets under memory pressure loses nothing.
 */
export class RefusalLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly ratePerMs: number;

  constructor(
    private readonly config: RateLimitConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.ratePerMs = config.perMinute / 60_000;
  }

  private refill(key: string): Bucket {
    const t = this.now();
    const b = this.buckets.get(key);
    if (!b) return { tokens: this.config.burst, at: t };
    return { tokens: Math.min(this.config.burst, b.tokens + (t - b.at) * this.ratePerMs), at: t };
  }

  private retryAfter(tokens: number): number {
    return this.ratePerMs > 0 ? Math.max(1, Math.ceil((1 - tokens) / this.ratePerMs / 1000)) : 3600;
  }

  /** Spends one token of `key`; refused (and nothing spent) when the bucket holds less than one. */
  take(key: string): TakeResult {
    const b = this.refill(key);
    if (b.tokens < 1) {
      this.store(key, b);
      return { ok: false, retryAfterSeconds: this.retryAfter(b.tokens) };
    }
    b.tokens -= 1;
    this.store(key, b);
    return { ok: true, retryAfterSeconds: 0 };
  }

  /** Whether `key` could spend a token now, without spending it. */
  peek(key: string): TakeResult {
    const b = this.refill(key);
    return b.tokens < 1 ? { ok: false, retryAfterSeconds: this.retryAfter(b.tokens) } : { ok: true, retryAfterSeconds: 0 };
  }

  /** Buckets currently tracked (for tests and metrics). */
  size(): number {
    return this.buckets.size;
  }

  private store(key: string, b: Bucket): void {
    // Re-insert so Map order is least recently used first.
    this.buckets.delete(key);
    if (b.tokens >= this.config.burst) return; // full: same as unknown
    this.buckets.set(key, b);
    if (this.buckets.size > this.config.maxTracked) this.evict();
  }

  private evict(): void {
    for (const [k, b] of this.buckets) {
      if (this.buckets.size <= this.config.maxTracked) return;
      const full = Math.min(this.config.burst, b.tokens + (this.now() - b.at) * this.ratePerMs) >= this.config.burst;
      if (full) this.buckets.delete(k);
    }
    // Still too many callers with spent buckets: forget the least recently used ones (they regain their burst).
    for (const k of this.buckets.keys()) {
      if (this.buckets.size <= this.config.maxTracked) return;
      this.buckets.delete(k);
    }
  }
}
