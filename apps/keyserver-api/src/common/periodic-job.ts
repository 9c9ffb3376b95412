/**
 * A background pass every replica runs (usage reaper, CRL refresher, notification dispatcher): one now and then one
 * every `everyMs` (the timer does not keep the process alive); never two at once in a process, so a caller arriving
 * during a pass gets that pass; stop() waits for the pass in flight. `run` must not throw: a failed pass is retried
 * on the next tick.
 */
export class PeriodicJob<T> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<T> | undefined;

  constructor(private readonly run: () => Promise<T>) {}

  start(everyMs: number): void {
    void this.pass();
    this.timer = setInterval(() => void this.pass(), everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  pass(): Promise<T> {
    this.running ??= this.run().finally(() => (this.running = undefined));
    return this.running;
  }
}
