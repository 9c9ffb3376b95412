import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';

/** The name Node gives V8's platform threads: background (TurboFan) compilation and the GC's helper tasks. */
export const V8_PLATFORM_THREAD = 'V8Worker';

/**
 * Runs V8's platform threads at `nice` (ADR 0039). On the 2-core machine of issue 20 a burst of background
 * compilation took ~1.25 cores for ~140 ms in the middle of a load, and every request in flight waited for it: the
 * event loop, the HSM lanes and a co-located PostgreSQL stayed runnable but had no core. At a lower priority that
 * work still runs whenever a core is free, and yields it to them when none is. Linux only (a thread's nice is set
 * by its id, listed in /proc/self/task); elsewhere, or with nice 0, nothing changes. Returns the threads changed.
 */
export function lowerV8ThreadPriority(nice: number, taskDir = '/proc/self/task'): number {
  if (nice === 0 || !existsSync(taskDir)) return 0;
  let changed = 0;
  for (const tid of readdirSync(taskDir)) {
    let name: string;
    try {
      name = readFileSync(`${taskDir}/${tid}/comm`, 'utf8').trim();
    } catch {
      continue; // the thread ended meanwhile
    }
    if (name !== V8_PLATFORM_THREAD) continue;
    setPriority(Number(tid), nice);
    changed++;
  }
  return changed;
}
