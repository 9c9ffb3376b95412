import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { rawProblemResponse } from '@keyserver/errors';
import { clientKey } from './client-key';

/**
 * Bounds of {@link ConnectionGate} (HTTP_MAX_CONNECTIONS, HTTP_MAX_CONNECTIONS_PER_IP, HTTP_SHUTDOWN_GRACE_MS). Shared by
 * the API and the keyclient (ADR 0011 addendum "connections", ADR 0043 addendum "the keyclient's transport").
 */
export interface ConnectionLimits {
  maxConnections: number;
  maxConnectionsPerIp: number;
  shutdownGraceMs: number;
}

/** Why a connection was refused: the process is full, the client's address is, or the process is shutting down. */
export type ConnectionRefusal = 'total' | 'per_ip' | 'shutdown';

/** Told of every refused connection (the metric, the bounded audit, a throttled log line). */
export type RefusalListener = (reason: ConnectionRefusal, remoteAddress: string) => void;

/**
 * Refused connections that may still be answered at once (a 503 written, the client's bytes read and dropped until
 * it closes or {@link LINGER_MS} passes). Beyond it a refused connection is closed without a word: a flood of
 * connections must not hold more descriptors than the limit allows, and a client that opens them faster than they
 * drain gains nothing from an answer.
 */
const MAX_LINGERING = 256;
const LINGER_MS = 1_000;
/**
 * How long, and how much of, an answered request's body is read and dropped before its connection is closed anyway
 * (a client on a slow link needs more than a refused connection's second to send what it already queued); during
 * the bounded shutdown {@link LINGER_MS}.
 */
const ANSWERED_LINGER_MS = 5_000;
const ANSWERED_LINGER_BYTES = 16 * 1024 * 1024;

const withRetryAfter = (raw: string): string => raw.replace('connection: close\r\n', 'connection: close\r\nretry-after: 1\r\n');

/** The codes of the gate's 503 answers (each server's own error vocabulary; the defaults are the API's). */
export interface GateCodes {
  /** The process holds HTTP_MAX_CONNECTIONS connections. */
  total: string;
  /** The client's address (an IPv6 /64) holds HTTP_MAX_CONNECTIONS_PER_IP connections. */
  perIp: string;
  /** After the shutdown grace, for a routed request still receiving its body. */
  serviceUnavailable: string;
  /** A request not routed before the shutdown (never ran). */
  shuttingDown: string;
}
export const DEFAULT_GATE_CODES: GateCodes = {
  total: 'connection_limit_reached',
  perIp: 'client_connection_limit_reached',
  serviceUnavailable: 'service_unavailable',
  shuttingDown: 'shutting_down',
};

/** Marks a routed request whose body the gate cut off (its handler records why the body ended). */
export type TransportRefusalMark = (req: IncomingMessage, code: string) => void;

/** Written before the client's request is read: the same bytes for every refusal, rendered once per gate. */
interface Answers {
  refusals: Record<Exclude<ConnectionRefusal, 'shutdown'>, string>;
  serviceUnavailable: string;
  shuttingDown: string;
}
function renderAnswers(codes: GateCodes): Answers {
  return {
    refusals: {
      total: withRetryAfter(rawProblemResponse(503, codes.total, 'Service Unavailable')),
      per_ip: withRetryAfter(rawProblemResponse(503, codes.perIp, 'Service Unavailable')),
    },
    serviceUnavailable: rawProblemResponse(503, codes.serviceUnavailable, 'Service Unavailable'),
    // After the grace, for a request whose header section is still arriving (never routed: nothing ran).
    shuttingDown: withRetryAfter(rawProblemResponse(503, codes.shuttingDown, 'Service Unavailable')),
  };
}

/**
 * What the server's public events tell about one connection: the responses not finished yet (oldest first; more than
 * one only when requests are pipelined, and the first is the one being written) and the last request routed on it.
 * Kept from the server's `request` event and each response's `finish`/`close`, so no Node internal of the socket is
 * read (`_httpMessage`, `parser.incoming`).
 */
interface Exchange {
  pending: ServerResponse[];
  last?: IncomingMessage;
  /** Answered with `Connection: close` while the body still arrives: read and dropped until it ends, then closed. */
  lingering?: boolean;
}
const exchanges = new WeakMap<Socket | Duplex, Exchange>();
/** Node's own destroySoon of each admitted socket (the gate's answers after the grace close as before). */
const nodeDestroySoon = new WeakMap<Socket, () => void>();

/**
 * Records a routed request until its response is finished (or its connection closed); false for a request pipelined
 * behind a body whose answer closed the connection (see {@link lingerAfterAnswer}): never served, the socket closed.
 */
function trackExchange(req: IncomingMessage, res: ServerResponse): boolean {
  let exchange = exchanges.get(req.socket);
  if (!exchange) exchanges.set(req.socket, (exchange = { pending: [] }));
  if (exchange.lingering) {
    req.socket.destroy();
    return false;
  }
  exchange.pending.push(res);
  exchange.last = req;
  // Nothing of a request is kept past its exchange (an idle keep-alive connection must not hold its parsed body).
  const forget = () => {
    if (exchange.last === req && req.complete && !exchange.pending.includes(res)) exchange.last = undefined;
  };
  const settle = () => {
    const at = exchange.pending.indexOf(res);
    if (at >= 0) exchange.pending.splice(at, 1);
    forget();
  };
  res.once('finish', settle);
  res.once('close', settle);
  req.once('end', forget);
  return true;
}

/** The response being written on a connection of a server the gate is installed on; none between requests. */
export function responseInFlight(socket: Socket | Duplex): ServerResponse | undefined {
  return exchanges.get(socket)?.pending[0];
}

/**
 * The body of a request already answered is still arriving (Node reads and drops it): the client has its answer.
 * Otherwise a connection with no response in flight that is not idle is receiving a new request's header section.
 */
const answeredBodyArriving = (socket: Socket): boolean => {
  const last = exchanges.get(socket)?.last;
  return !!last && !last.complete;
};

/**
 * A lingering close of a connection whose answer is written while the request's body still arrives: our side ends
 * (FIN after the answer), the rest of the body is read and dropped (Node's parser drops an answered request's body)
 * until it ends, {@link ANSWERED_LINGER_BYTES} were dropped or `ms` passed, then the socket is destroyed with
 * nothing unread, so the client reads its answer rather than a reset. A request pipelined behind that body is not
 * served ({@link trackExchange}).
 */
function lingerAfterAnswer(socket: Socket, ms: number): void {
  const exchange = exchanges.get(socket);
  const req = exchange?.last;
  if (!exchange || !req || exchange.lingering) return;
  exchange.lingering = true;
  let dropped = 0;
  const close = () => socket.destroy();
  const timer = setTimeout(close, ms);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > ANSWERED_LINGER_BYTES) close();
  });
  req.once('end', close);
  req.once('error', close);
  socket.end();
}

/**
 * Connection limits and a bounded shutdown for one HTTP server (ADR 0011 addendum "connections"). It sits in front
 * of Node's own `connection` listener, so a refused socket never gets a parser, a timeout or a place in the server's
 * connection list: it is answered with a pre-rendered 503 problem+json (`Connection: close`, `Retry-After: 1`) and
 * closed. The cost is per connection (a counter, one map entry per client address, one `close` listener), nothing
 * per request.
 */
export class ConnectionGate {
  private open = 0;
  private readonly perClient = new Map<string, number>();
  private readonly sockets = new Set<Socket>();
  private lingering = 0;
  private isClosing = false;
  private drained?: () => void;
  onRefused?: RefusalListener;
  private readonly answers: Answers;

  constructor(
    private readonly limits: ConnectionLimits,
    private readonly codes: GateCodes = DEFAULT_GATE_CODES,
    private readonly markRefusal: TransportRefusalMark = () => undefined,
  ) {
    this.answers = renderAnswers(codes);
  }

  /** Whether the bounded shutdown has begun: a request routed from now on is answered 503 shutting_down, not run. */
  get closing(): boolean {
    return this.isClosing;
  }

  /** Connections open now (admitted ones). */
  get openConnections(): number {
    return this.open;
  }

  /** Puts the gate in front of the server's `connection` listeners (Node's HTTP parser among them). */
  install(server: Server): void {
    const listeners = server.listeners('connection') as ((socket: Socket) => void)[];
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      if (!this.admit(socket)) return;
      for (const listener of listeners) listener.call(server, socket);
    });
    // Likewise in front of the `request` listeners (the application's): each request is tracked before it can be
    // answered, and one pipelined behind a lingering close never reaches them.
    const handlers = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
    server.removeAllListeners('request');
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (!trackExchange(req, res)) return;
      for (const handler of handlers) handler.call(server, req, res);
    });
  }

  private admit(socket: Socket): boolean {
    const key = clientKey(socket.remoteAddress);
    let reason: ConnectionRefusal | undefined;
    const n = this.perClient.get(key) ?? 0;
    if (this.isClosing) reason = 'shutdown';
    else if (this.open >= this.limits.maxConnections) reason = 'total';
    else if (n >= this.limits.maxConnectionsPerIp) reason = 'per_ip';
    if (reason) {
      this.refuse(socket, reason);
      return false;
    }
    this.open++;
    this.perClient.set(key, n + 1);
    this.sockets.add(socket);
    // Node closes a connection after an answer with `Connection: close` through destroySoon(): the answer flushed,
    // then the socket destroyed. With the client still sending a body, that close leaves unread bytes and the kernel
    // resets the connection, which can discard the answer before the client reads it (a 413 or 401 while uploading).
    // Such a connection lingers instead; there is no public hook for Node's close, hence the socket's own method.
    const destroySoon = socket.destroySoon.bind(socket);
    nodeDestroySoon.set(socket, destroySoon);
    socket.destroySoon = () => (answeredBodyArriving(socket) ? lingerAfterAnswer(socket, this.isClosing ? LINGER_MS : ANSWERED_LINGER_MS) : destroySoon());
    socket.once('close', () => {
      this.open--;
      const left = (this.perClient.get(key) ?? 1) - 1;
      if (left > 0) this.perClient.set(key, left);
      else this.perClient.delete(key);
      this.sockets.delete(socket);
      if (this.isClosing && this.sockets.size === 0) this.drained?.();
    });
    return true;
  }

  private refuse(socket: Socket, reason: ConnectionRefusal): void {
    socket.on('error', () => undefined);
    this.onRefused?.(reason, socket.remoteAddress ?? 'unknown');
    if (reason === 'shutdown' || this.lingering >= MAX_LINGERING) {
      socket.destroy();
      return;
    }
    // Answered, then the client's bytes are read and dropped until it closes: closing with unread bytes would be a
    // reset, which can discard the answer before the client reads it. At most LINGER_MS.
    this.lingering++;
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once('close', () => {
      this.lingering--;
      clearTimeout(timer);
    });
    socket.end(this.answers.refusals[reason]);
    socket.resume();
  }

  /**
   * The bounded shutdown (ADR 0011 addenda "connections" and "one client, and a request already started"): stops accepting; closes
   * at once every connection on which no request has started (idle keep-alive ones, and those that never sent a
   * byte); answers the requests in flight with `Connection: close`; a request whose header section is still
   * arriving is not dropped: once its headers are complete (within `shutdownGraceMs`) it is answered `503
   * shutting_down` without running (the server's request hook asks {@link closing}). After `shutdownGraceMs` a
   * request still receiving its body is answered 503 service_unavailable (its handler sees the body end and records
   * why), a header section still arriving 503 shutting_down, and the rest is closed. Resolves once every connection
   * is closed.
   */
  shutdown(server: Server): Promise<void> {
    this.isClosing = true;
    // Node closes the connections that are neither receiving a request nor waiting for a response (its "idle" ones).
    server.close(() => undefined);
    server.closeIdleConnections();
    const done = new Promise<void>((resolve) => {
      this.drained = resolve;
      if (this.sockets.size === 0) resolve();
    });
    for (const socket of [...this.sockets]) {
      if (socket.destroyed) continue;
      const res = responseInFlight(socket);
      if (!res) {
        // Connected but not a byte sent: nothing started. Otherwise a header section is arriving: kept for the grace.
        if (socket.bytesRead === 0) socket.destroy();
        continue;
      }
      if (!res.headersSent) res.shouldKeepAlive = false;
      res.once('finish', () => setImmediate(() => socket.destroySoon()));
    }
    if (this.sockets.size === 0) return Promise.resolve();
    const timer = setTimeout(() => {
      // Connections that went idle during the grace (a dropped body that ended) have nothing to be answered.
      server.closeIdleConnections();
      for (const socket of [...this.sockets]) {
        if (socket.destroyed) continue;
        const res = responseInFlight(socket);
        if (res && !res.headersSent && socket.writable) {
          this.markRefusal(res.req, this.codes.serviceUnavailable);
          this.answerAndClose(socket, this.answers.serviceUnavailable);
        } else if (!res && socket.writable && socket.bytesRead > 0 && !answeredBodyArriving(socket)) {
          this.answerAndClose(socket, this.answers.shuttingDown);
        } else socket.destroy();
      }
    }, this.limits.shutdownGraceMs);
    timer.unref();
    return done.finally(() => clearTimeout(timer));
  }

  private answerAndClose(socket: Socket, raw: string): void {
    socket.end(raw);
    (nodeDestroySoon.get(socket) ?? (() => socket.destroySoon()))();
    // A client that does not read its answer keeps nothing open.
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  }
}

/** Descriptors an API process needs besides its client connections: the database pools, the HSM, files, metrics. */
export const OTHER_DESCRIPTORS = 256;

/**
 * A boot warning when the process may open fewer files than HTTP_MAX_CONNECTIONS needs (`limits` is the text of
 * /proc/self/limits; Node has already raised its soft limit to the hard one): the limit would then not keep the
 * descriptors from running out first.
 */
export function descriptorWarning(maxConnections: number, limits: string): string | undefined {
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(limits)?.[1];
  if (soft === undefined || soft === 'unlimited') return undefined;
  const n = Number(soft);
  if (n >= maxConnections + OTHER_DESCRIPTORS) return undefined;
  return `the process may open ${n} files, fewer than HTTP_MAX_CONNECTIONS (${maxConnections}) + ${OTHER_DESCRIPTORS}: raise the nofile limit or lower HTTP_MAX_CONNECTIONS`;
}
