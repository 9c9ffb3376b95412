import { createHash } from 'node:crypto';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import fc from 'fast-check';
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

  // The route is reached only after the token and the access cache were checked (milliseconds, or longer under
  // load): a client that left meanwhile has a request whose stream already closed. Nothing will be emitted again.
  it.each([
    ['fail a stream destroyed by an abort before it is hashed', (s: Readable) => s.destroy(new Error('aborted')), 'request_aborted', 400],
    ['fail a stream closed without an error before it is hashed', (s: Readable) => s.destroy(), 'request_aborted', 400],
    [
      'fail a stream the transport refused before it is hashed (its next bytes did not parse)',
      (s: Readable) => {
        markTransportRefusal(s, ApiErrorCode.MalformedRequest);
        s.destroy(new Error('aborted'));
      },
      'malformed_request',
      400,
    ],
  ] as const)('%s: settles at once with its code, never waits', async (_n, end, code, status) => {
    const stream = idle();
    stream.on('error', () => undefined);
    stream.push(Buffer.alloc(10));
    end(stream);
    await new Promise((r) => setImmediate(r));
    const settled = await Promise.race([hashStream(stream, 'sha256', 100).then(() => 'resolved', (e: unknown) => e), new Promise((r) => setTimeout(() => r('pending'), 500))]);
    expect(settled).toMatchObject({ code, status });
  });

  it('property: any split of any image, cap at, below or above its size: the digest of exactly its bytes, or payload_too_large iff longer than the cap', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }), fc.integer({ min: -2, max: 2 }), async (parts, delta) => {
        const image = Buffer.concat(parts.map((p) => Buffer.from(p)));
        const cap = Math.max(0, image.length + delta);
        const r = await hashStream(Readable.from(parts.map((p) => Buffer.from(p))), 'sha512', cap).then(
          (v) => ({ digest: Buffer.from(v.digest).toString('hex'), bytes: v.bytes }),
          (e: { code?: string }) => ({ code: e.code }),
        );
        expect(r).toEqual(image.length > cap ? { code: 'payload_too_large' } : { digest: createHash('sha512').update(image).digest('hex'), bytes: image.length });
      }),
      { numRuns: 200 },
    );
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
