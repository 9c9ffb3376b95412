import { CliError, Exit } from './errors';

/**
 * How long one ksctl command may wait for the Keyserver and the identity provider (ADR 0015 addendum 2026-12-08). A
 * server that accepts the connection and then holds it (no headers, one byte a second, a body that stops) would
 * otherwise hold ksctl up to undici's 300 s per read, again and again: a CI pipeline or a factory line stands still.
 */
export const DEFAULT_TIMEOUT_SECONDS = 120;
/** The most `--timeout` / `KSCTL_TIMEOUT` accept: 7 days (an approval wait may be long; setTimeout's bound is ~24 days). */
export const MAX_TIMEOUT_SECONDS = 604_800;
/**
 * What the default adds per MiB a command moves (a firmware image uploaded, a file hashed): the transfer must average
 * at least 1 MiB/s, so a 1 GiB image gets 120 s + 1024 s. An explicit --timeout adds nothing: it is a hard bound.
 */
export const SECONDS_PER_MIB = 1;
/** People, not servers: `operations wait` (an approval) and `login --pkce` (a sign-in) keep their own defaults. */
export const APPROVAL_WAIT_SECONDS = 600;
export const SIGN_IN_SECONDS = 300;

const SECONDS = /^\d{1,6}(?:\.\d{1,3})?$/;

/**
 * `--timeout` or `KSCTL_TIMEOUT`: seconds, more than 0, at most {@link MAX_TIMEOUT_SECONDS}, up to 3 decimals.
 * @throws CliError(exit 2) for anything else, before any request
 */
export function parseTimeout(raw: string | undefined, source: string): number | undefined {
  if (raw === undefined) return undefined;
  const t = raw.trim();
  const seconds = SECONDS.test(t) ? Number(t) : NaN;
  if (!(seconds > 0 && seconds <= MAX_TIMEOUT_SECONDS)) {
    throw new CliError(`${source} must be seconds, more than 0 and at most ${MAX_TIMEOUT_SECONDS} (e.g. 120 or 0.5)`, Exit.Usage);
  }
  return seconds;
}

/**
 * A command's deadline: `--timeout`, else `KSCTL_TIMEOUT` (both hard bounds), else {@link DEFAULT_TIMEOUT_SECONDS}
 * plus {@link SECONDS_PER_MIB} per MiB of the payload the command moves, at most {@link MAX_TIMEOUT_SECONDS}.
 */
export function timeoutFor(o: { option?: string; env?: string; payloadBytes?: number }): { seconds: number; explicit: boolean } {
  const given = parseTimeout(o.option, '--timeout') ?? parseTimeout(o.env, 'KSCTL_TIMEOUT');
  if (given !== undefined) return { seconds: given, explicit: true };
  const seconds = DEFAULT_TIMEOUT_SECONDS + Math.ceil(((o.payloadBytes ?? 0) / (1 << 20)) * SECONDS_PER_MIB);
  // The allowance never goes past what --timeout may say (and setTimeout's bound).
  return { seconds: Math.min(seconds, MAX_TIMEOUT_SECONDS), explicit: false };
}

/** The error of a passed deadline: exit 7, `deadline_exceeded`. */
export function isDeadlineError(err: unknown): err is CliError {
  return err instanceof CliError && err.code === 'deadline_exceeded';
}

const shown = (ms: number) => `${Math.round(ms / 100) / 10} s`;

/**
 * One deadline for everything a command waits for: every fetch (connect, TLS, headers, each read of the body, the
 * upload) takes {@link signal}, which aborts with the deadline's CliError as its reason, so that error is what the
 * pending fetch or read rejects with. The timers are unref'd: they never keep ksctl alive, only end it.
 */
export class Deadline {
  private readonly controller = new AbortController();
  private readonly started: number;
  private at: number;
  private timer?: ReturnType<typeof setTimeout>;
  private guard?: { graceMs: number; onHung: (err: CliError) => void; timer?: ReturnType<typeof setTimeout> };
  /** What ksctl is waiting for (a request's method and path, the token endpoint): named in the message. */
  waitingFor = 'the Keyserver';
  /** Said after it, e.g. that a request without an Idempotency-Key may have been carried out. */
  note?: string;

  constructor(seconds: number) {
    this.started = Date.now();
    this.at = this.started + seconds * 1000;
    this.arm();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  remainingMs(): number {
    return Math.max(0, this.at - Date.now());
  }

  /**
   * Moves the deadline later by `ms` (a download that keeps arriving at the expected rate), never past
   * {@link MAX_TIMEOUT_SECONDS} after the start: an endless answer that keeps coming fast would otherwise never end,
   * and a timer past setTimeout's bound (~24.8 days) fires at once.
   */
  extend(ms: number): void {
    if (this.signal.aborted) return;
    this.at = Math.max(this.at, Math.min(this.at + ms, this.started + MAX_TIMEOUT_SECONDS * 1000));
    this.arm();
  }

  /** The error a passed deadline reports. */
  error(): CliError {
    return new CliError(
      `deadline_exceeded: ${this.waitingFor} did not complete within ${shown(this.at - this.started)}${this.note ? `; ${this.note}` : ''} (--timeout, KSCTL_TIMEOUT)`,
      Exit.Timeout,
      'deadline_exceeded',
    );
  }

  /**
   * The last resort: `onHung` runs when ksctl is still running `graceMs` after the deadline (something did not
   * listen to the signal), so a production line is never held longer than the deadline and the grace.
   */
  watchdog(graceMs: number, onHung: (err: CliError) => void): void {
    this.guard = { graceMs, onHung };
    this.arm();
  }

  clear(): void {
    clearTimeout(this.timer);
    clearTimeout(this.guard?.timer);
  }

  private arm(): void {
    this.clear();
    this.timer = setTimeout(() => this.controller.abort(this.error()), this.remainingMs());
    this.timer.unref?.();
    const guard = this.guard;
    if (guard) {
      guard.timer = setTimeout(() => guard.onHung(this.error()), this.remainingMs() + guard.graceMs);
      guard.timer.unref?.();
    }
  }
}
