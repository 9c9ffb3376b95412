import { createConnection, type Socket } from 'node:net';
import { Harness } from './harness';

/**
 * The keyclient's HTTP edge against raw sockets (ADR 0043 addendum "the keyclient's transport like the API's"): slow
 * senders answered 408 request_timeout and closed, the API's connection limits per process and per client address.
 */

interface RawExchange {
  socket: Socket;
  /** Everything the keyclient sent back so far. */
  text: () => string;
  /** Resolves with ms from the start until the keyclient closed the connection (Infinity after `waitMs`). */
  closed: (waitMs: number) => Promise<number>;
}

function open(port: number): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(port, '127.0.0.1');
    let text = '';
    const started = Date.now();
    let closedAt: number | undefined;
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => (closedAt = Date.now() - started));
    socket.once('connect', () =>
      resolve({
        socket,
        text: () => text,
        closed: (waitMs) =>
          new Promise((done) => {
            if (closedAt !== undefined) return done(closedAt);
            const t = setTimeout(() => done(Infinity), waitMs);
            socket.once('close', () => {
              clearTimeout(t);
              done(Date.now() - started);
            });
          }),
      }),
    );
    socket.once('error', reject);
  });
}

const statusLine = (text: string) => text.split('\r\n')[0];
const problemCode = (text: string) => (JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { code: string }).code;

describe('keyclient transport: slow senders', () => {
  const h = new Harness();
  let port = 0;
  let host = '';
  beforeAll(async () => {
    await h.start({ env: { HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_REQUEST_TIMEOUT_MS: '2000' } });
    port = Number(new URL(h.kc).port);
    host = new URL(h.kc).host;
  }, 60_000);
  afterAll(() => h.stop());

  it('fail a header section trickled past HTTP_HEADERS_TIMEOUT_MS: 408 request_timeout problem+json, then closed', async () => {
    const c = await open(port);
    c.socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\n`);
    const pump = setInterval(() => !c.socket.destroyed && c.socket.write('x-slow: 1\r\n'), 200);
    try {
      // Node checks every min(30 s, headers timeout / 2): closed well before the 30 s Node would take by default.
      expect(await c.closed(5_000)).toBeLessThan(4_000);
    } finally {
      clearInterval(pump);
      c.socket.destroy();
    }
    expect(statusLine(c.text())).toMatch(/^HTTP\/1\.1 408 /);
    expect(c.text()).toMatch(/content-type: application\/problem\+json/i);
    expect(problemCode(c.text())).toBe('request_timeout');
  });

  it('fail a header section trickled on a kept-alive connection after a served request: 408 request_timeout, then closed', async () => {
    const c = await open(port);
    c.socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    await new Promise((r) => setTimeout(r, 300));
    expect(statusLine(c.text())).toBe('HTTP/1.1 200 OK');
    const served = c.text().length;
    c.socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\n`);
    const pump = setInterval(() => !c.socket.destroyed && c.socket.write('x-slow: 1\r\n'), 100);
    try {
      expect(await c.closed(5_000)).toBeLessThan(5_000);
    } finally {
      clearInterval(pump);
      c.socket.destroy();
    }
    const second = c.text().slice(served);
    expect(statusLine(second)).toMatch(/^HTTP\/1\.1 408 /);
    expect(problemCode(second)).toBe('request_timeout');
  });

  it('fail a proxied body trickled past HTTP_REQUEST_TIMEOUT_MS: 408 request_timeout, closed, never completed upstream', async () => {
    const browser = h.browser();
    await h.login(browser);
    const cookie = `${h.sessionCookieName}=${browser.cookie(h.kcHost, h.sessionCookieName)?.value ?? ''}`;
    const before = h.upstream.received.length;
    const c = await open(port);
    c.socket.write(
      `POST /api/v1/operations HTTP/1.1\r\nHost: ${host}\r\nCookie: ${cookie}\r\nx-keyserver-csrf: 1\r\norigin: ${h.kc}\r\n` +
        'content-type: application/json\r\ncontent-length: 1000\r\n\r\n{',
    );
    const pump = setInterval(() => !c.socket.destroyed && c.socket.write(' '), 100);
    try {
      expect(await c.closed(6_000)).toBeLessThan(5_000);
    } finally {
      clearInterval(pump);
      c.socket.destroy();
    }
    expect(statusLine(c.text())).toMatch(/^HTTP\/1\.1 408 /);
    expect(problemCode(c.text())).toBe('request_timeout');
    expect(h.upstream.received.slice(before).some((r) => r.body.length === 1000)).toBe(false);
  });

  it('ok a prompt request on a fresh connection is served', async () => {
    const c = await open(port);
    c.socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\nconnection: close\r\n\r\n`);
    await c.closed(3_000);
    expect(statusLine(c.text())).toBe('HTTP/1.1 200 OK');
  });
});

describe('keyclient transport: connection limits', () => {
  const h = new Harness();
  let port = 0;
  let host = '';
  beforeAll(async () => {
    // METRICS_PORT set: the registry exists (main.ts would serve it on its own listener).
    await h.start({ env: { HTTP_MAX_CONNECTIONS: '8', HTTP_MAX_CONNECTIONS_PER_IP: '4', METRICS_PORT: '0' } });
    port = Number(new URL(h.kc).port);
    host = new URL(h.kc).host;
  }, 60_000);
  afterAll(() => h.stop());

  it('fail the connection over HTTP_MAX_CONNECTIONS_PER_IP: 503 client_connection_limit_reached, the others unaffected, a freed slot usable', async () => {
    const held = await Promise.all([1, 2, 3, 4].map(() => open(port)));
    try {
      const extra = await open(port);
      extra.socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      expect(await extra.closed(3_000)).toBeLessThan(2_500);
      expect(statusLine(extra.text())).toMatch(/^HTTP\/1\.1 503 /);
      expect(extra.text()).toMatch(/retry-after: 1/i);
      expect(problemCode(extra.text())).toBe('client_connection_limit_reached');
      // Counted as at the API, by reason.
      expect(h.keyclient.metrics).toBeDefined();
      const scraped = (await h.keyclient.metrics?.metrics()) ?? '';
      expect(scraped).toMatch(/^http_connections_refused_total\{reason="per_ip"\} 1$/m);
      expect(scraped).toMatch(/^http_connections_refused_total\{reason="total"\} 0$/m);
      expect(scraped).toMatch(/^http_connections_open \d+$/m);
      // The held connections still serve requests.
      held[0].socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\nconnection: close\r\n\r\n`);
      await held[0].closed(3_000);
      expect(statusLine(held[0].text())).toBe('HTTP/1.1 200 OK');
      // Its slot is free again.
      const again = await open(port);
      again.socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\nconnection: close\r\n\r\n`);
      await again.closed(3_000);
      expect(statusLine(again.text())).toBe('HTTP/1.1 200 OK');
    } finally {
      for (const c of held) c.socket.destroy();
    }
  });
});

describe('keyclient transport: bounded shutdown', () => {
  const h = new Harness();
  let port = 0;
  let host = '';
  beforeAll(async () => {
    // A header section may take 20 s; the shutdown may not.
    await h.start({ env: { HTTP_HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '20000', HTTP_SHUTDOWN_GRACE_MS: '1000' } });
    port = Number(new URL(h.kc).port);
    host = new URL(h.kc).host;
  }, 60_000);
  afterAll(() => h.stop(), 30_000);

  it('ok close() with a client trickling its header section finishes within HTTP_SHUTDOWN_GRACE_MS, not HTTP_HEADERS_TIMEOUT_MS: 503 shutting_down, closed', async () => {
    const idle = await open(port);
    idle.socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    const c = await open(port);
    c.socket.write(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\n`);
    const pump = setInterval(() => !c.socket.destroyed && c.socket.write('x-slow: 1\r\n'), 100);
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    try {
      const closed = await Promise.race([h.keyclient.close().then(() => Date.now() - started), new Promise<number>((r) => setTimeout(() => r(Infinity), 8_000))]);
      expect(closed).toBeLessThan(4_000);
      expect(await c.closed(2_000)).toBeLessThan(Infinity);
      expect(await idle.closed(1_000)).toBeLessThan(Infinity);
    } finally {
      clearInterval(pump);
      c.socket.destroy();
      idle.socket.destroy();
    }
    expect(statusLine(c.text())).toMatch(/^HTTP\/1\.1 503 /);
    expect(problemCode(c.text())).toBe('shutting_down');
  }, 30_000);

  it('fail a header section completed during the shutdown grace: 503 shutting_down, never routed', async () => {
    // The keyclient of this describe is closed by the case above; this one uses a fresh one.
    const k = new Harness();
    await k.start({ env: { HTTP_SHUTDOWN_GRACE_MS: '3000' } });
    try {
      const kPort = Number(new URL(k.kc).port);
      const kHost = new URL(k.kc).host;
      const before = k.upstream.received.length;
      const c = await open(kPort);
      c.socket.write(`GET /api/v1/me HTTP/1.1\r\nHost: ${kHost}\r\n`);
      await new Promise((r) => setTimeout(r, 200));
      const closing = k.keyclient.close();
      await new Promise((r) => setTimeout(r, 200));
      c.socket.write('\r\n');
      expect(await c.closed(5_000)).toBeLessThan(Infinity);
      await closing;
      expect(statusLine(c.text())).toMatch(/^HTTP\/1\.1 503 /);
      expect(problemCode(c.text())).toBe('shutting_down');
      expect(k.upstream.received.length).toBe(before);
    } finally {
      await k.stop();
    }
  }, 60_000);
});
