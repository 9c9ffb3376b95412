import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { getPriority, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { lowerV8ThreadPriority, V8_PLATFORM_THREAD } from './thread-priority';

// Runs on this (jest) process's own threads: the same /proc and setpriority the API uses at boot.
const TASKS = '/proc/self/task';
const threads = () => readdirSync(TASKS).map((tid) => ({ tid: Number(tid), name: readFileSync(join(TASKS, tid, 'comm'), 'utf8').trim() }));

describe(lowerV8ThreadPriority.name, () => {
  const before = new Map(threads().map((t) => [t.tid, getPriority(t.tid)]));
  afterAll(() => {
    // Root in CI may raise a priority again; elsewhere the worker keeps the lower one until it exits.
    for (const [tid, nice] of before) {
      try {
        setPriority(tid, nice);
      } catch {
        /* not permitted, or the thread ended */
      }
    }
  });

  it('sets every V8 platform thread to the nice given and leaves the other threads alone', () => {
    const v8 = threads().filter((t) => t.name === V8_PLATFORM_THREAD);
    expect(v8.length).toBeGreaterThan(0);
    expect(lowerV8ThreadPriority(7)).toBe(v8.length);
    for (const t of threads()) expect([t.name, getPriority(t.tid)]).toEqual([t.name, t.name === V8_PLATFORM_THREAD ? 7 : before.get(t.tid)]);
  });

  it('changes nothing with nice 0', () => {
    expect(lowerV8ThreadPriority(0)).toBe(0);
  });

  it('changes nothing where threads are not listed (not Linux)', () => {
    expect(lowerV8ThreadPriority(10, join(tmpdir(), 'no-such-task-dir'))).toBe(0);
  });

  it('skips a thread that ended while the list was read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tasks-'));
    try {
      mkdirSync(join(dir, '999999999'));
      expect(lowerV8ThreadPriority(10, dir)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
