import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { hashStream } from './firmware.service';

describe(hashStream.name, () => {
  const chunks = (n: number, size: number) => Array.from({ length: n }, (_, i) => Buffer.alloc(size, i));

  it('hashes every chunk in order and counts the bytes', async () => {
    const parts = chunks(5, 1000);
    const r = await hashStream(Readable.from(parts), 'sha256', 5000);
    expect(Buffer.from(r.digest).toString('hex')).toBe(createHash('sha256').update(Buffer.concat(parts)).digest('hex'));
    expect(r.bytes).toBe(5000);
  });

  it('refuses a stream longer than the cap with payload_too_large without erroring the stream', async () => {
    const stream = Readable.from(chunks(5, 1000));
    await expect(hashStream(stream, 'sha384', 4999)).rejects.toMatchObject({ code: 'payload_too_large', status: 413 });
    expect(stream.errored).toBeNull();
  });

  it('turns a failing upload into validation_failed', async () => {
    const stream = new Readable({
      read() {
        // nothing to produce: the test destroys the stream
      },
    });
    const p = hashStream(stream, 'sha256', 100);
    stream.destroy(new Error('aborted'));
    await expect(p).rejects.toMatchObject({ code: 'validation_failed' });
  });
});
