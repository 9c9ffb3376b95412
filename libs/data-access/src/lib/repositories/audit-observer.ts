import { performance } from 'node:perf_hooks';
import type { AuditInput } from '../types';

/**
 * How an audit event was appended: alone (`statement`: refusals and other single events), inside a Prisma
 * transaction (`transaction`), or in the statement that stores a signature's or certificate's result
 * (`with_result`: that statement's whole duration).
 */
export type AuditAppendPath = 'statement' | 'transaction' | 'with_result';

/** Told of every audit append when its statement returns (metrics). Must be cheap, synchronous and never throw. */
export type AuditAppendObserver = (input: AuditInput, seconds: number, path: AuditAppendPath, written: boolean) => void;

let observer: AuditAppendObserver | undefined;

/** Sets (or clears) the process's audit append observer: the API's metrics count decisions and time appends with it. */
export function observeAuditAppends(next: AuditAppendObserver | undefined): void {
  observer = next;
}

/** Runs one append statement; the observer learns its duration and whether the event was written (`written(result)`). */
export function timedAppend<T>(input: AuditInput, path: AuditAppendPath, run: () => Promise<T>, written: (result: T) => boolean = () => true): Promise<T> {
  const o = observer;
  return o ? timed(run, (seconds, result) => o(input, seconds, path, result.ok && written(result.value))) : run();
}

/**
 * Runs `run` and tells `report` its duration in seconds and how it ended, then settles as `run` did. For metrics
 * observers: a report that throws is swallowed, so an observer never changes the outcome it observes.
 */
export function timed<T>(run: () => Promise<T>, report: (seconds: number, result: { ok: true; value: T } | { ok: false; error: unknown }) => void): Promise<T> {
  const start = performance.now();
  const tell = (result: { ok: true; value: T } | { ok: false; error: unknown }) => {
    try {
      report((performance.now() - start) / 1000, result);
    } catch {
      // metrics never break what they observe
    }
  };
  return run().then(
    (value) => {
      tell({ ok: true, value });
      return value;
    },
    (error: unknown) => {
      tell({ ok: false, error });
      throw error;
    },
  );
}
