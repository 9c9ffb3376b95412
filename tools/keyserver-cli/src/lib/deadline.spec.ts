import { CliError, Exit } from './errors';
import { Deadline, isDeadlineError, MAX_TIMEOUT_SECONDS, parseTimeout, timeoutFor } from './deadline';

const MiB = 1 << 20;

// How long ksctl may wait for the Keyserver and the identity provider (ADR 0015 addendum 2026-12-08): a hung or
// trickling server must not hold a CI pipeline or a factory line longer than this.
describe(parseTimeout.name, () => {
  it.each<[string, string]>([
    ['fail zero', '0'],
    ['fail negative', '-5'],
    ['fail no number', 'soon'],
    ['fail an exponent', '1e3'],
    ['fail empty', ''],
    ['fail more than 7 days', '604801'],
    ['fail more than 3 decimals', '0.0001'],
  ])('%s: exit 2', (_name, raw) => {
    expect(() => parseTimeout(raw, '--timeout')).toThrow(expect.objectContaining({ exit: Exit.Usage }));
  });

  it.each<[string, string | undefined, number | undefined]>([
    ['ok whole seconds', '120', 120],
    ['ok a fraction (tests)', '0.5', 0.5],
    ['ok surrounding spaces', ' 30 ', 30],
    ['ok 7 days', '604800', 604800],
    ['ok not given', undefined, undefined],
  ])('%s', (_name, raw, seconds) => {
    expect(parseTimeout(raw, '--timeout')).toBe(seconds);
  });
});

describe(timeoutFor.name, () => {
  it.each<[string, Parameters<typeof timeoutFor>[0], { seconds: number; explicit: boolean }]>([
    ['ok an ordinary call: 120 s', {}, { seconds: 120, explicit: false }],
    ['ok a 1 GiB image: 120 s + 1 s per MiB', { payloadBytes: 1024 * MiB }, { seconds: 1144, explicit: false }],
    ['ok KSCTL_TIMEOUT', { env: '30' }, { seconds: 30, explicit: true }],
    ['ok --timeout wins over KSCTL_TIMEOUT', { option: '5', env: '30' }, { seconds: 5, explicit: true }],
    ['ok --timeout is a hard bound, whatever the payload', { option: '5', payloadBytes: 1024 * MiB }, { seconds: 5, explicit: true }],
    ['ok a payload whose allowance passes 7 days: 7 days (MAX_TIMEOUT_SECONDS)', { payloadBytes: 1024 * 1024 * MiB }, { seconds: 604_800, explicit: false }],
  ])('%s', (_name, o, expected) => {
    expect(timeoutFor(o)).toEqual(expected);
  });
});

describe(Deadline.name, () => {
  beforeEach(() => jest.useFakeTimers({ now: new Date('2026-12-08T00:00:00Z') }));
  afterEach(() => jest.useRealTimers());

  it('fail when it passes: the signal aborts with deadline_exceeded (exit 7), naming what was waited for', () => {
    const d = new Deadline(2);
    d.waitingFor = 'GET /api/keys';
    jest.advanceTimersByTime(1999);
    expect(d.signal.aborted).toBe(false);
    jest.advanceTimersByTime(1);
    expect(d.signal.aborted).toBe(true);
    expect(d.signal.reason).toBeInstanceOf(CliError);
    expect(d.signal.reason).toMatchObject({ exit: Exit.Timeout, code: 'deadline_exceeded' });
    expect((d.signal.reason as CliError).message).toContain('GET /api/keys');
    expect(isDeadlineError(d.signal.reason)).toBe(true);
  });

  it('ok extend moves the deadline (a download that keeps coming)', () => {
    const d = new Deadline(2);
    jest.advanceTimersByTime(1500);
    d.extend(1000);
    jest.advanceTimersByTime(1400);
    expect(d.signal.aborted).toBe(false);
    expect(d.remainingMs()).toBe(100);
    jest.advanceTimersByTime(100);
    expect(d.signal.aborted).toBe(true);
  });

  it.each<[string, number, number]>([
    ['fail an endless download that keeps coming at 2 MiB/s (1 s of allowance per MiB)', 100_000, 200_000],
    ['fail an endless download that keeps coming at 1 GiB/s', 1000, 1024 * 1000],
  ])('%s: the allowance never moves the deadline past MAX_TIMEOUT_SECONDS after the start', (_name, everyMs, byMs) => {
    const d = new Deadline(120);
    const limit = MAX_TIMEOUT_SECONDS * 1000;
    let elapsed = 0;
    while (!d.signal.aborted && elapsed <= limit + everyMs) {
      jest.advanceTimersByTime(everyMs);
      elapsed += everyMs;
      d.extend(byMs);
    }
    expect([d.signal.aborted, elapsed]).toEqual([true, limit]);
    expect(d.signal.reason).toMatchObject({ code: 'deadline_exceeded' });
  });

  it('ok the watchdog runs only when the process outlives the deadline by the grace', () => {
    const d = new Deadline(1);
    const hung = jest.fn();
    d.watchdog(2000, hung);
    jest.advanceTimersByTime(2999);
    expect(hung).not.toHaveBeenCalled();
    jest.advanceTimersByTime(1);
    expect(hung).toHaveBeenCalledWith(expect.objectContaining({ code: 'deadline_exceeded' }));
  });

  it('ok cleared: neither the signal nor the watchdog fires', () => {
    const d = new Deadline(1);
    const hung = jest.fn();
    d.watchdog(0, hung);
    d.clear();
    jest.advanceTimersByTime(10_000);
    expect([d.signal.aborted, hung.mock.calls.length]).toEqual([false, 0]);
  });
});
