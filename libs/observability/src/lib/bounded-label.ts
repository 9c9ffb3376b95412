/** Label values never carry control characters and stay short (they are stored per series by Prometheus). */
const PRINTABLE = /^[^\p{Cc}\p{Cs}]{1,128}$/u;

/**
 * The values one label may take, bounded: a metric's series count is the product of its labels' value counts,
 * and a label fed from request data (a keyid in a refused request, an error code) could otherwise grow without
 * limit and exhaust the process's or Prometheus's memory. A value becomes a label only once it is known, from a
 * trusted source (the key table, a successful operation, the code's own enums), and only up to `max` values;
 * everything else is {@link other}.
 */
export class BoundedLabel {
  private readonly known = new Set<string>();

  constructor(
    readonly max: number,
    readonly other = '_other',
    private readonly pattern: RegExp = PRINTABLE,
  ) {}

  /** Accepts `value` as a label value (when valid and while under the cap); true when it is one now. */
  learn(value: string | null | undefined): boolean {
    if (value === null || value === undefined) return false;
    if (this.known.has(value)) return true;
    if (this.known.size >= this.max || value === this.other || !this.pattern.test(value)) return false;
    this.known.add(value);
    return true;
  }

  /** Learns every value of a trusted list (e.g. the key table read at scrape time). */
  learnAll(values: Iterable<string>): void {
    for (const v of values) this.learn(v);
  }

  /** The label for `value`: itself when known, `none` when absent, else {@link other}. */
  of(value: string | null | undefined): string {
    if (value === null || value === undefined || value === '') return 'none';
    return this.known.has(value) ? value : this.other;
  }

  /** {@link learn} then {@link of}: for values that come from the code, not from a caller (error codes, actions). */
  admit(value: string | null | undefined): string {
    this.learn(value);
    return this.of(value);
  }

  get size(): number {
    return this.known.size;
  }
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** An HTTP method label: the standard ones, anything else `other` (a client may send any token). */
export function methodLabel(method: string | undefined): string {
  return method !== undefined && METHODS.has(method) ? method : 'other';
}

/** An HTTP status label: the three digits, or `other` for anything outside 100-599. */
export function statusLabel(status: number): string {
  return Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : 'other';
}
