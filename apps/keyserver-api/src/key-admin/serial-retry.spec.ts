import { DataAccessError } from '@keyserver/data-access';
import { SERIAL_ATTEMPTS } from '@keyserver/data-access';
import { retrySerial } from './serial-retry';

describe(retrySerial.name, () => {
  /** A certify-and-store step that fails with `errors` in turn, then answers 'stored'. */
  const step = (errors: Error[]) => {
    let calls = 0;
    const run = async () => {
      const e = errors[calls++];
      if (e) throw e;
      return 'stored';
    };
    return { run, calls: () => calls };
  };
  const inUse = () => new DataAccessError('serial_in_use', 'serial used');

  it.each([
    ['ok stored at once', [], 'stored', 1],
    ['ok a collision, then a fresh serial stored', [inUse()], 'stored', 2],
    ['ok two collisions, then stored on the last try', [inUse(), inUse()], 'stored', SERIAL_ATTEMPTS],
    ['fail a collision on every try: serial_in_use', [inUse(), inUse(), inUse()], 'serial_in_use', SERIAL_ATTEMPTS],
    ['fail another refusal: not tried again', [new DataAccessError('conflict', 'exists')], 'conflict', 1],
  ] as const)('%s', async (_name, errors, expected, calls) => {
    const s = step([...errors]);
    expect(await retrySerial(s.run).catch((e: DataAccessError) => e.code)).toBe(expected);
    expect(s.calls()).toBe(calls);
  });
});
