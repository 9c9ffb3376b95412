import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import pino from 'pino';
import type { KeyclientConfig } from '../config/keyclient-config';
import { ProxyService } from './proxy.service';

describe(ProxyService.name, () => {
  let server: http.Server;
  let proxy: ProxyService | undefined;

  afterEach(async () => {
    proxy?.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('lets go of an idle API connection before the API closes it (no request lands on a closing socket)', async () => {
    server = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    // Announces "Keep-Alive: timeout=2" and closes after 2.5 s: the agent must close first, at 1 s.
    server.keepAliveTimeout = 2_500;
    const firstToClose = new Promise<'keyclient' | 'api'>((resolve) =>
      server.once('connection', (socket: Socket) => {
        socket.once('end', () => resolve('keyclient'));
        socket.once('close', () => resolve('api'));
      }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const config = { keyserverApiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, proxyTimeoutMs: 5_000 } as KeyclientConfig;
    proxy = new ProxyService(config, pino({ level: 'silent' }));

    expect((await proxy.fetchJson('/api/v1/me', 'token', 'r1')).status).toBe(200);
    expect(await firstToClose).toBe('keyclient');
  });

  it.each([
    ['fail an answer over 1 MiB', (res: http.ServerResponse) => res.writeHead(200, { 'content-type': 'application/json' }).end(Buffer.alloc(2 * 1024 * 1024, 32))],
    ['fail an answer the API breaks off', (res: http.ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' }).write('{"partial":');
      setTimeout(() => res.destroy(), 50);
    }],
  ])('%s: settles at once with upstream_unavailable (never hangs until the timeout)', async (_n, answer) => {
    server = http.createServer((_req, res) => answer(res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const config = { keyserverApiUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, proxyTimeoutMs: 20_000 } as KeyclientConfig;
    proxy = new ProxyService(config, pino({ level: 'silent' }));
    const started = Date.now();
    const code = await proxy.fetchJson('/api/v1/me', 'token', 'r1').then(() => 'ok', (e: { code?: string }) => e.code);
    expect([code, Date.now() - started < 5_000]).toEqual(['upstream_unavailable', true]);
  });
});
