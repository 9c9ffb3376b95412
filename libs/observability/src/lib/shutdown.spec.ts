import { Writable } from 'node:stream';
import pino from 'pino';
import { exitOnSignals } from './shutdown';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: pino({ base: { service: 'test' } }, stream) };
}

describe(exitOnSignals.name, () => {
  const before = { term: process.listenerCount('SIGTERM'), int: process.listenerCount('SIGINT') };
  let handlers: ((signal: NodeJS.Signals) => Promise<void>)[] = [];
  afterEach(() => {
    for (const h of handlers) {
      process.off('SIGTERM', h);
      process.off('SIGINT', h);
    }
    handlers = [];
    expect([process.listenerCount('SIGTERM'), process.listenerCount('SIGINT')]).toEqual([before.term, before.int]);
  });

  it('logs the signal and uptime, closes, logs stopped and exits 0', async () => {
    const { lines, logger } = capture();
    let now = 1_000_000;
    const exits: number[] = [];
    const order: string[] = [];
    const h = exitOnSignals(logger, async () => {
      order.push('close');
      now += 250;
    }, { now: () => now, exit: (c) => exits.push(c) });
    handlers.push(h);
    await h('SIGTERM');
    await new Promise((r) => setImmediate(r));
    expect(exits).toEqual([0]);
    expect(order).toEqual(['close']);
    expect(lines.find((l) => l['event'] === 'shutdown')).toMatchObject({ signal: 'SIGTERM', uptimeSeconds: expect.any(Number), service: 'test' });
    expect(lines.find((l) => l['event'] === 'stopped')).toMatchObject({ signal: 'SIGTERM', closeMs: 250 });
  });

  it.each([
    ['fail closing throws: logged, exit 1', 'throws'],
    ['fail a second signal while closing: exit 1 at once', 'second'],
  ])('%s', async (_name, kind) => {
    const { lines, logger } = capture();
    const exits: number[] = [];
    let release: () => void = () => undefined;
    const h = exitOnSignals(
      logger,
      () => (kind === 'throws' ? Promise.reject(new Error('pool gone')) : new Promise<void>((r) => (release = r))),
      { exit: (c) => exits.push(c) },
    );
    handlers.push(h);
    const first = h('SIGINT');
    if (kind === 'second') {
      await h('SIGINT');
      expect(exits).toEqual([1]);
      expect(lines.find((l) => l['event'] === 'shutdown_forced')).toMatchObject({ signal: 'SIGINT' });
      release();
    }
    await first;
    if (kind === 'throws') {
      expect(exits).toEqual([1]);
      expect(lines.find((l) => l['event'] === 'shutdown_failed')).toMatchObject({ err: 'pool gone' });
    }
  });
});
