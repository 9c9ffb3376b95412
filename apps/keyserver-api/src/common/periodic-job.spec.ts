import { PeriodicJob } from './periodic-job';

describe(PeriodicJob.name, () => {
  const gate = () => {
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    return { open, opened };
  };

  it('runs one pass at a time: a caller during a pass gets that pass', async () => {
    const g = gate();
    let runs = 0;
    const job = new PeriodicJob(async () => {
      runs += 1;
      await g.opened;
      return runs;
    });
    const a = job.pass();
    const b = job.pass();
    expect(b).toBe(a);
    g.open();
    expect([await a, await b, runs]).toEqual([1, 1, 1]);
    expect(await job.pass()).toBe(2);
  });

  it('runs at start and on every tick, and stop() waits for the pass in flight and ends the ticks', async () => {
    jest.useFakeTimers();
    try {
      let runs = 0;
      let finished = 0;
      const job = new PeriodicJob(async () => {
        runs += 1;
        await Promise.resolve();
        finished += 1;
      });
      job.start(1_000);
      expect(runs).toBe(1);
      await jest.advanceTimersByTimeAsync(3_000);
      expect(runs).toBe(4);
      await jest.advanceTimersByTimeAsync(500);
      await job.stop();
      expect(finished).toBe(runs);
      await jest.advanceTimersByTimeAsync(5_000);
      expect(runs).toBe(4);
    } finally {
      jest.useRealTimers();
    }
  });
});
