import { createHash } from 'node:crypto';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { ApiErrorCode, markTransportRefusal } from '../common/api-error';
import { SCAVENGE_EVERY_BYTES, hashStream } from './firmware.service';

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

  const idle = () =>
    new Readable({
      read() {
        // nothing to produce: the test ends the stream
      },
    });

  it.each([
    ['fail a client that goes away mid-body', (s: Readable) => s.destroy(new Error('aborted')), 'request_aborted', 400],
    ['fail a stream closed without an error or an end', (s: Readable) => s.destroy(), 'request_aborted', 400],
    [
      'fail a body the server stopped reading (timed out)',
      (s: Readable) => {
        markTransportRefusal(s, ApiErrorCode.RequestTimeout);
        s.destroy(new Error('aborted'));
      },
      'request_timeout',
      408,
    ],
  ] as const)('%s', async (_n, end, code, status) => {
    const stream = idle();
    const p = hashStream(stream, 'sha256', 100);
    stream.push(Buffer.alloc(10));
    await new Promise((r) => setImmediate(r));
    end(stream);
    await expect(p).rejects.toMatchObject({ code, status });
  });

  it('frees the body Buffers of a large HTTP upload while it streams: 256 MiB leave under 32 MiB of them alive at once', async () => {
    // Node's HTTP parser copies every socket read into a new Buffer; without a young-generation collection they
    // stayed until V8's external-memory trigger (~64 MiB) ran a full mark-compact.
    const MiB = 1024 * 1024;
    const total = 256 * MiB;
    let peak = 0;
    let base = 0;
    let chunks = 0;
    const server = createServer((req, res) => {
      base = process.memoryUsage().arrayBuffers;
      req.on('data', () => {
        if (++chunks % 8 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
      });
      hashStream(req, 'sha256', total).then(
        (r) => res.end(Buffer.from(r.digest).toString('hex')),
        (e: Error) => res.writeHead(500).end(e.message),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const block = Buffer.alloc(MiB, 0x5a);
      const expected = createHash('sha256');
      for (let i = 0; i < total / MiB; i++) expected.update(block);
      const answer = await new Promise<string>((resolve, reject) => {
        const req = request({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', method: 'POST', headers: { 'content-length': total } }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(body));
        });
        req.on('error', reject);
        let sent = 0;
        const write = () => {
          while (sent < total) {
            sent += MiB;
            if (!req.write(block)) return void req.once('drain', write);
          }
          req.end();
        };
        write();
      });
      expect(answer).toBe(expected.digest('hex'));
      expect(chunks).toBeGreaterThan(total / (128 * 1024));
      expect(peak).toBeLessThan(4 * SCAVENGE_EVERY_BYTES);
      // The collector is reachable only from the firmware module, never as a global.
      expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
