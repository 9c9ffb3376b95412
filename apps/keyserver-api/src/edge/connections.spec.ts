import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { ConnectionGate, descriptorWarning } from './connections';

describe(descriptorWarning.name, () => {
  const limits = (soft: string) => `Limit                     Soft Limit           Hard Limit           Units\nMax processes             62987                62987                processes\nMax open files            ${soft}              1048576              files\n`;
  it.each([
    ['ok a container default far above the limit', limits('1048576'), 4096, false],
    ['ok unlimited', limits('unlimited'), 4096, false],
    ['ok no such line (not Linux)', 'nothing here', 4096, false],
    ['fail the classic 1024 under the default limit', limits('1024'), 4096, true],
    ['fail room for the connections but not for the rest', limits('4200'), 4096, true],
  ])('%s', (_n, text, max, warned) => {
    expect(descriptorWarning(max, text) !== undefined).toBe(warned);
  });
});

describe(ConnectionGate.name, () => {
  /** A raw client: what it received, whether the server closed. */
  function client(port: number): Promise<{ socket: Socket; received: () => string; closed: () => boolean }> {
    return new Promise((resolve) => {
      let data = '';
      let closed = false;
      const socket = connect(port, '127.0.0.1', () => resolve({ socket, received: () => data, closed: () => closed }));
      socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => (closed = true));
    });
  }
  const statuses = (raw: string) => [...raw.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
  const codes = (raw: string) => [...raw.matchAll(/"code":"([a-z_]+)"/g)].map((m) => m[1]);

  let server: Server;
  let gate: ConnectionGate;
  let port: number;
  beforeEach(async () => {
    gate = new ConnectionGate({ maxConnections: 10, maxConnectionsPerIp: 10, shutdownGraceMs: 400 });
    // Answers at once, without reading the body (as a refusal does): Node then reads and drops the body itself.
    server = createServer((_req, res) => res.end('ok'));
    gate.install(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterEach(() => new Promise<void>((r) => server.close(() => r())));

  it('fail a header section still arriving when the grace ends: 503 shutting_down at the socket, then closed', async () => {
    const c = await client(port);
    c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    await gate.shutdown(server);
    expect(Date.now() - t0).toBeLessThan(2_000);
    await new Promise((r) => setTimeout(r, 50));
    expect([statuses(c.received()), codes(c.received()), c.closed()]).toEqual([[503], ['shutting_down'], true]);
  });

  it('ok the body of a request already answered that ends during the grace: no second answer, closed', async () => {
    const c = await client(port);
    c.socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345');
    await new Promise((r) => setTimeout(r, 50));
    const closed = gate.shutdown(server);
    await new Promise((r) => setTimeout(r, 100));
    c.socket.write('67890');
    await closed;
    await new Promise((r) => setTimeout(r, 50));
    expect([statuses(c.received()), c.closed()]).toEqual([[200], true]);
  });

  it('ok the body of a request already answered still arriving when the grace ends: closed, no second answer', async () => {
    const c = await client(port);
    c.socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345');
    await new Promise((r) => setTimeout(r, 50));
    await gate.shutdown(server);
    await new Promise((r) => setTimeout(r, 50));
    expect([statuses(c.received()), c.closed()]).toEqual([[200], true]);
  });

  it('ok a connection that never sent a byte is closed at once, without an answer', async () => {
    const c = await client(port);
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    await gate.shutdown(server);
    expect(Date.now() - t0).toBeLessThan(300);
    await new Promise((r) => setTimeout(r, 20));
    expect([c.received(), c.closed()]).toEqual(['', true]);
  });
});

describe(`${ConnectionGate.name}: a refusal answered while the body is still arriving`, () => {
  let server: Server;
  let port: number;
  let served: number;
  let gate: ConnectionGate;
  beforeEach(async () => {
    gate = new ConnectionGate({ maxConnections: 10, maxConnectionsPerIp: 10, shutdownGraceMs: 400 });
    // A 413 at once, the body never read, the connection not reused (as the firmware route's declared size over its cap).
    served = 0;
    server = createServer((_req, res) => {
      served++;
      res.writeHead(413, { 'content-type': 'application/problem+json', connection: 'close' });
      res.end(JSON.stringify({ status: 413, code: 'payload_too_large' }));
    });
    gate.install(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterEach(() => new Promise<void>((r) => server.close(() => r())));

  /**
   * Sends 8 MiB in 64 KiB pieces, 2 ms apart, and reads its answer once the body is sent (as most clients do): what
   * it received before the close. A reset while it sends destroys the socket with the answer unread.
   */
  function slowUpload(): Promise<string> {
    return new Promise((resolve) => {
      let data = '';
      const socket = connect(port, '127.0.0.1', () => {
        socket.pause();
        socket.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${8 << 20}\r\n\r\n`);
        const piece = Buffer.alloc(64 * 1024, 0x61);
        let sent = 0;
        const send = () => {
          if (!socket.writable) return;
          if (sent++ === 128) return void socket.resume();
          socket.write(piece);
          setTimeout(send, 2);
        };
        send();
      });
      socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(data));
    });
  }

  it('ok a client still sending a large body slowly receives the 413 problem+json every time (no reset before it is read)', async () => {
    const answers: string[] = [];
    for (let i = 0; i < 8; i++) answers.push(/"code":"([a-z_]+)"/.exec(await slowUpload())?.[1] ?? 'lost');
    expect(answers).toEqual(Array(8).fill('payload_too_large'));
  });

  it('fail a body that keeps trickling: the lingering ends after 5 s, the answer still read', async () => {
    // Half-open: it keeps sending after the server's FIN, as an uploading client does.
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let data = '';
    let closed = false;
    socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => (closed = true));
    socket.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${8 << 20}\r\n\r\n`);
    const trickle = setInterval(() => socket.writable && socket.write('a'.repeat(100)), 20);
    const t0 = Date.now();
    while (!closed && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
    clearInterval(trickle);
    const took = Date.now() - t0;
    expect([/"code":"([a-z_]+)"/.exec(data)?.[1], closed, took > 4_500 && took < 7_500]).toEqual(['payload_too_large', true, true]);
  });

  it('fail a request pipelined behind the refused body: never answered, the connection closed', async () => {
    // Half-open: it keeps sending after the server's FIN, as an uploading client does.
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let data = '';
    socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
    socket.on('error', () => undefined);
    socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345');
    await new Promise((r) => setTimeout(r, 50));
    socket.write('67890GET /second HTTP/1.1\r\nHost: x\r\n\r\n');
    const t0 = Date.now();
    while (gate.openConnections > 0 && Date.now() - t0 < 3_000) await new Promise((r) => setTimeout(r, 20));
    expect([[...data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])), gate.openConnections, Date.now() - t0 < 500]).toEqual([[413], 0, true]);
    expect(served).toBe(1);
    socket.destroy();
  });
});
