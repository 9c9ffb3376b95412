import http from 'node:http';
import https from 'node:https';
import { Transform, type TransformCallback } from 'node:stream';
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import type { KeyclientConfig } from '../config/keyclient-config';
import { KeyclientError, KeyclientErrorCode } from '../errors/keyclient-error';
import { bodyCoding } from '@keyserver/http-problems';

/** Request headers passed to the API; everything else (Authorization, Cookie, Forwarded, X-Forwarded-*, hop-by-hop) is dropped. */
const FORWARDED_REQUEST_HEADERS = [
  'accept',
  'accept-language',
  'content-type',
  'content-length',
  'if-match',
  'if-none-match',
  'idempotency-key',
  // Names the administrative session a change is made in (four-eyes); the API checks it.
  'x-admin-session',
];

/**
 * Forwarded headers that name one value. Node keeps the first Content-Type and joins repeated other headers into one
 * ("a, b"), so the API, which refuses a repeated Idempotency-Key or Content-Type (ADR 0011), would see one header it
 * accepts: the keyclient refuses the repetition itself. Content-Length is Node's parser's own refusal.
 */
const SINGLE_VALUED_REQUEST_HEADERS = new Set(['content-type', 'idempotency-key', 'x-admin-session']);

/** The first forwarded single-valued header the request repeats, if any (any spelling of its name). */
function repeatedHeader(rawHeaders: string[]): string | undefined {
  const seen = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (!SINGLE_VALUED_REQUEST_HEADERS.has(name)) continue;
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}

/** Response headers passed back to the browser; Set-Cookie and hop-by-hop headers never are. */
const FORWARDED_RESPONSE_HEADERS = [
  'content-type',
  'content-length',
  'content-language',
  'etag',
  'last-modified',
  'location',
  'retry-after',
  'link',
  'x-total-count',
];

class ByteLimit extends Transform {
  private seen = 0;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) done(new KeyclientError(KeyclientErrorCode.PayloadTooLarge));
    else done(null, chunk);
  }
}

/**
 * The API answers a success, 304, or an error as problem+json (every refusal, ADR 0011). Anything else (a 3xx, an
 * HTML or text error page) comes from something in front of it and is not passed to the browser.
 */
function isApiAnswer(up: http.IncomingMessage): boolean {
  const status = up.statusCode ?? 0;
  if (status === 304 || (status >= 200 && status < 300)) return true;
  if (status < 400) return false;
  return (up.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase() === 'application/problem+json';
}

export interface UpstreamResult {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Streams allow-listed requests to the Keyserver API with the session's bearer token. */
export class ProxyService {
  private readonly base: URL;
  private readonly agent: http.Agent;

  constructor(
    private readonly config: KeyclientConfig,
    private readonly log: Logger,
  ) {
    this.base = new URL(config.keyserverApiUrl);
    // Idle sockets are dropped after 30 s (or a second before the API's announced Keep-Alive timeout, if shorter):
    // without a timeout the agent keeps them until the server closes one just as a request is written to it (502).
    const options = { keepAlive: true, timeout: 30_000 };
    this.agent = this.base.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
  }

  /**
   * The API's own origin and the request target exactly as the allow-list compared it: a path string, never a URL
   * parsed again (WHATWG parsing re-encodes quotes and brackets and cuts at '#'), so what the API routes is what was checked.
   */
  private send(pathAndQuery: string, method: string, headers: http.OutgoingHttpHeaders): http.ClientRequest {
    const lib = this.base.protocol === 'https:' ? https : http;
    return lib.request({
      protocol: this.base.protocol,
      hostname: this.base.hostname.replace(/^\[|\]$/g, ''),
      port: this.base.port || undefined,
      path: `${this.base.pathname.replace(/\/$/, '')}${pathAndQuery}`,
      method,
      headers,
      agent: this.agent,
      timeout: this.config.proxyTimeoutMs,
    });
  }

  /** Pipes the incoming request to the API and the API's answer back; errors become problem+json. */
  forward(req: Request, res: Response, pathAndQuery: string, accessToken: string, requestId: string): Promise<void> {
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > this.config.proxyMaxBodyBytes) {
      return Promise.reject(new KeyclientError(KeyclientErrorCode.PayloadTooLarge));
    }
    // Neither coding header is forwarded: the API would read the still-coded bytes as a plain body (bodyCoding).
    if (bodyCoding(req.headers)) return Promise.reject(new KeyclientError(KeyclientErrorCode.UnsupportedContentEncoding));
    const repeated = repeatedHeader(req.rawHeaders);
    if (repeated !== undefined) {
      return Promise.reject(new KeyclientError(KeyclientErrorCode.MalformedRequest, `the ${repeated} header must not be repeated`));
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    headers['authorization'] = `Bearer ${accessToken}`;
    headers['x-request-id'] = requestId;
    const hasBody = declared !== undefined || req.headers['transfer-encoding'] !== undefined;

    // The browser left while its request waited for the session store: nothing to ask the API.
    if (res.destroyed) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (err: KeyclientError) => {
        if (settled) return;
        settled = true;
        upstream.destroy();
        reject(err);
      };
      const upstream = this.send(pathAndQuery, req.method, headers);
      // The browser gone (tab closed, fetch aborted) before the whole answer reached it: the API request is abandoned
      // too, whether the API is still working on it or streaming its answer. Otherwise the paused upstream socket
      // stays open for as long as the API keeps it (for ever for a long answer), one per abandoned request.
      res.on('close', () => {
        if (res.writableFinished) return;
        settled = true;
        upstream.destroy();
        resolve();
      });
      upstream.on('timeout', () => {
        if (!settled) {
          fail(new KeyclientError(KeyclientErrorCode.UpstreamTimeout));
          return;
        }
        // The API stalled in the middle of its answer: end both sides rather than keep them open.
        upstream.destroy();
        res.destroy();
      });
      upstream.on('error', (err) => {
        if (!settled) this.log.warn({ event: 'upstream_error', err: err.message }, 'keyserver API request failed');
        fail(new KeyclientError(KeyclientErrorCode.UpstreamUnavailable));
      });
      upstream.on('response', (up) => {
        if (settled) {
          up.resume();
          return;
        }
        if (!isApiAnswer(up)) {
          // Not the API speaking (a load balancer's page, a redirect): its text and addresses stay here.
          this.log.warn({ event: 'upstream_not_api', status: up.statusCode, contentType: up.headers['content-type'] }, 'answer not from the keyserver API');
          up.resume();
          fail(new KeyclientError(KeyclientErrorCode.UpstreamUnavailable));
          return;
        }
        settled = true;
        res.status(up.statusCode ?? 502);
        for (const name of FORWARDED_RESPONSE_HEADERS) {
          const value = up.headers[name];
          if (typeof value === 'string') res.setHeader(name, value);
        }
        res.setHeader('cache-control', 'no-store');
        up.pipe(res);
        up.on('end', () => resolve());
        up.on('error', () => {
          res.destroy();
          resolve();
        });
      });

      if (!hasBody) {
        upstream.end();
        return;
      }
      const limit = new ByteLimit(this.config.proxyMaxBodyBytes);
      limit.on('error', (err) =>
        fail(err instanceof KeyclientError ? err : new KeyclientError(KeyclientErrorCode.UpstreamUnavailable)),
      );
      req.on('error', () => fail(new KeyclientError(KeyclientErrorCode.UpstreamUnavailable)));
      req.pipe(limit).pipe(upstream);
    });
  }

  /** A small buffered GET (used by /me for GET /api/v1/me). */
  fetchJson(path: string, accessToken: string, requestId: string): Promise<UpstreamResult> {
    return new Promise((resolve, reject) => {
      const upstream = this.send(path, 'GET', {
        accept: 'application/json',
        authorization: `Bearer ${accessToken}`,
        'x-request-id': requestId,
      });
      upstream.on('timeout', () => {
        upstream.destroy();
        reject(new KeyclientError(KeyclientErrorCode.UpstreamTimeout));
      });
      upstream.on('error', () => reject(new KeyclientError(KeyclientErrorCode.UpstreamUnavailable)));
      upstream.on('response', (up) => {
        const chunks: Buffer[] = [];
        let size = 0;
        up.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 1024 * 1024) upstream.destroy();
          else chunks.push(c);
        });
        up.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(up.headers)) if (typeof v === 'string') headers[k] = v;
          resolve({ status: up.statusCode ?? 502, headers, body: Buffer.concat(chunks) });
        });
        up.on('error', () => reject(new KeyclientError(KeyclientErrorCode.UpstreamUnavailable)));
      });
      upstream.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
