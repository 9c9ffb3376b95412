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
