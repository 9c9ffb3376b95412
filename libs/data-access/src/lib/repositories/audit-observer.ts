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
  if (!o) return run();
  const start = performance.now();
  const report = (ok: boolean) => {
    try {
      o(input, (performance.now() - start) / 1000, path, ok);
    } catch {
      // metrics never break an audited decision
    }
  };
  return run().then(
    (result) => {
      report(written(result));
      return result;
    },
    (err: unknown) => {
      report(false);
      throw err;
    },
  );
}
