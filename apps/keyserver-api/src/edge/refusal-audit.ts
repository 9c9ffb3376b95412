import type { AuditInput } from '@keyserver/data-access';
import type { Logger } from 'pino';

/** Bounds of {@link RefusalAudit}. */
export interface RefusalAuditConfig {
  /** Length of one aggregation window. */
  windowMs: number;
  /** Identical refusals (same action, code and caller) audited one by one per window; the rest are counted. */
  perKey: number;
  /** Refusals audited one by one per window in total (a flood from many callers). */
  perWindow: number;
  /** Distinct summaries kept per window; beyond it refusals are counted under one summary per action and code. */
  maxKeys: number;
}

/** The action of the event that stands for refusals that were counted, not audited one by one. */
export const REFUSALS_AGGREGATED_ACTION = 'audit.refusals_aggregated';

interface Summary {
  first: AuditInput;
  count: number;
  firstAt: number;
  lastAt: number;
}

/**
 * Audits refusals (invalid tokens, forbidden callers, refusals at the edge) without letting a flood fill the
 * audit log or hold its lock: per window the first `perKey` identical refusals (and at most `perWindow` in all)
 * are written one by one; the others are counted and written as one `audit.refusals_aggregated` event per
 * identical kind when the window ends, with the count, the window and the first refusal's details.
 * Counters are per replica (in memory); every refusal still ends up in the log, as itself or in a count.
 */
export class RefusalAudit {
  private perKeyCounts = new Map<string, number>();
  private windowCount = 0;
  private windowStart: number;
  private summaries = new Map<string, Summary>();
  private timer?: NodeJS.Timeout;
  private pending = new Set<Promise<unknown>>();

  constructor(
    private readonly write: (input: AuditInput) => Promise<unknown>,
    private readonly config: RefusalAuditConfig,
    private readonly logger: Pick<Logger, 'error'>,
    private readonly now: () => number = Date.now,
  ) {
    this.windowStart = now();
  }

  /** Flushes the summaries at the end of every window (the timer does not keep the process alive). */
  start(): void {
    this.timer ??= setInterval(() => void this.flush(), this.config.windowMs);
    this.timer.unref();
  }

  /** Stops the timer and writes what is counted. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
    await Promise.allSettled([...this.pending]);
  }

  /**
   * Records one refusal; `key` names what makes two refusals identical (action, code, caller).
   * Resolves once the event is written (or counted); never rejects.
   */
  record(key: string, input: AuditInput): Promise<void> {
    const t = this.now();
    if (t - this.windowStart >= this.config.windowMs) void this.flush();
    const n = (this.perKeyCounts.get(key) ?? 0) + 1;
    if (n <= this.config.perKey && this.windowCount < this.config.perWindow) {
      if (this.perKeyCounts.has(key) || this.perKeyCounts.size < this.config.maxKeys) this.perKeyCounts.set(key, n);
      this.windowCount++;
      return this.track(this.write(input));
    }
    const summaryKey = this.summaries.has(key) || this.summaries.size < this.config.maxKeys ? key : `${input.action}|${input.errorCode ?? ''}|*`;
    const s = this.summaries.get(summaryKey);
    if (s) {
      s.count++;
      s.lastAt = t;
    } else this.summaries.set(summaryKey, { first: input, count: 1, firstAt: t, lastAt: t });
    return Promise.resolve();
  }

  /** Writes one aggregated event per counted kind and starts a new window. */
  flush(): Promise<void> {
    const summaries = [...this.summaries.entries()];
    const windowStart = this.windowStart;
    this.summaries = new Map();
    this.perKeyCounts = new Map();
    this.windowCount = 0;
    this.windowStart = this.now();
    const writes = summaries.map(([key, s]) =>
      this.track(
        this.write({
          action: REFUSALS_AGGREGATED_ACTION,
          outcome: 'DENIED',
          errorCode: s.first.errorCode ?? null,
          actorTid: s.first.actorTid ?? null,
          actorOid: s.first.actorOid ?? null,
          actorClient: s.first.actorClient ?? null,
          actorSubjectId: s.first.actorSubjectId ?? null,
          details: {
            action: s.first.action,
            count: s.count,
            overflow: key.endsWith('|*'),
            windowStart: new Date(windowStart).toISOString(),
            firstAt: new Date(s.firstAt).toISOString(),
            lastAt: new Date(s.lastAt).toISOString(),
            first: s.first.details ?? {},
          },
        }),
      ),
    );
    return Promise.all(writes).then(() => undefined);
  }

  private track(p: Promise<unknown>): Promise<void> {
    const done = p.then(
      () => undefined,
      (err: unknown) => this.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'could not audit a refusal'),
    );
    this.pending.add(done);
    void done.finally(() => this.pending.delete(done));
    return done;
  }
}
