import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface UpstreamRecord {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * Stands in for the Keyserver API: records every request it receives (headers included) and
 * answers JSON. GET /api/v1/me answers 404 unless `me` is set.
 */
export class FakeUpstream {
  readonly received: UpstreamRecord[] = [];
  me: Record<string, unknown> | null = null;
  /** When set, answers instead of the default (the request is recorded first; its body is read). */
  respond: ((req: http.IncomingMessage, res: http.ServerResponse) => void) | null = null;
  private server?: http.Server;
  url = '';

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const record: UpstreamRecord = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
        this.received.push(record);
        if (this.respond) {
          this.respond(req, res);
          return;
        }
        if (req.url === '/api/v1/me') {
          if (!this.me) {
            res.writeHead(404, { 'content-type': 'application/problem+json' }).end('{"code":"not_found"}');
          } else {
            res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.me));
          }
          return;
        }
        res.writeHead(req.method === 'POST' ? 201 : 200, {
          'content-type': 'application/json',
          'set-cookie': 'upstream=1; Path=/',
          'x-upstream-secret': 'should-not-pass',
          etag: '"v1"',
        });
        res.end(JSON.stringify({ ok: true, method: req.method, url: req.url, bytes: record.body.length }));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  bearerTokens(): string[] {
    return this.received
      .map((r) => r.headers.authorization)
      .filter((h): h is string => typeof h === 'string' && h.startsWith('Bearer '))
      .map((h) => h.slice('Bearer '.length));
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
