import { connect } from 'node:net';

/** One response as the server wrote it on a raw socket. */
export interface RawResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  /** The media type of Content-Type, without parameters ('' when none). */
  type: string;
  body: Buffer;
  /** The problem's `code` when the body is JSON with one. */
  code?: string;
}

export interface RawExchange {
  responses: RawResponse[];
  /** The server closed the connection (rather than the test giving up waiting). */
  closed: boolean;
  ms: number;
}

/** Splits what the server wrote into responses (status line, headers, body by Content-Length). */
export function parseResponses(raw: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const head = raw.subarray(at, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0])?.[1] ?? 0);
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] ?? 0);
    const body = raw.subarray(end + 4, end + 4 + len);
    let code: string | undefined;
    try {
      code = (JSON.parse(body.toString('utf8')) as { code?: string }).code;
    } catch {
      code = undefined;
    }
    out.push({ status, headers, type: (headers['content-type'] ?? '').split(';')[0].trim(), body, code });
    at = end + 4 + len;
  }
  return out;
}

/**
 * Writes `parts` onto one socket to 127.0.0.1:`port` (pausing `gapMs` between them; `half`: then half-closes it),
 * then waits until the server closes or `waitMs` passes.
 */
export function rawExchange(port: number, parts: (Buffer | string)[], o: { gapMs?: number; waitMs?: number; half?: boolean } = {}): Promise<RawExchange> {
  const started = Date.now();
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ responses: parseResponses(Buffer.concat(chunks)), closed, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), o.waitMs ?? 5_000);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => finish(true));
    s.on('close', () => finish(true));
    s.on('connect', async () => {
      for (const [i, part] of parts.entries()) {
        if (i > 0 && o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs));
        if (s.destroyed) return;
        s.write(part);
      }
      if (o.half) s.end();
    });
  });
}

/** {@link RawExchange} of a request sent with `Expect: 100-continue`. */
export interface ContinueExchange extends RawExchange {
  /** The body was sent: the server answered 100 Continue first. */
  bodySent: boolean;
}

/**
 * Writes `head` (a header section with `Expect: 100-continue`) onto one socket to 127.0.0.1:`port` and waits for the
 * server's first answer: the body is written only after a `100 Continue`, never after a final status. Then waits
 * until the server closes or `waitMs` passes.
 */
export function continueExchange(port: number, head: string, body: Buffer, o: { waitMs?: number } = {}): Promise<ContinueExchange> {
  const started = Date.now();
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    let bodySent = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ responses: parseResponses(Buffer.concat(chunks)), closed, ms: Date.now() - started, bodySent });
    };
    const timer = setTimeout(() => finish(false), o.waitMs ?? 5_000);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      const first = parseResponses(Buffer.concat(chunks))[0];
      if (!bodySent && first?.status === 100) {
        bodySent = true;
        s.write(body);
      }
    });
    s.on('error', () => finish(true));
    s.on('close', () => finish(true));
    s.on('connect', () => s.write(head));
  });
}
