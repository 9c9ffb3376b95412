import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { rawProblemResponse } from '@keyserver/errors';
import { ApiErrorCode, markTransportRefusal } from '../common/api-error';
import { clientKey } from './client-key';

/** Bounds of {@link ConnectionGate} (HTTP_MAX_CONNECTIONS, HTTP_MAX_CONNECTIONS_PER_IP, HTTP_SHUTDOWN_GRACE_MS). */
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

const withRetryAfter = (raw: string): string => raw.replace('connection: close\r\n', 'connection: close\r\nretry-after: 1\r\n');
/** Written before the client's request is read: the same bytes for every refusal, rendered once. */
const REFUSALS: Record<Exclude<ConnectionRefusal, 'shutdown'>, string> = {
  total: withRetryAfter(rawProblemResponse(503, ApiErrorCode.ConnectionLimitReached, 'Service Unavailable')),
  per_ip: withRetryAfter(rawProblemResponse(503, ApiErrorCode.ClientConnectionLimitReached, 'Service Unavailable')),
};
const SERVICE_UNAVAILABLE = rawProblemResponse(503, ApiErrorCode.ServiceUnavailable, 'Service Unavailable');
/** After the grace, for a request whose header section is still arriving (never routed: nothing ran). */
const SHUTTING_DOWN = withRetryAfter(rawProblemResponse(503, ApiErrorCode.ShuttingDown, 'Service Unavailable'));

/** Node's fields on an HTTP server's socket: the response being written, and the parser with the message it reads. */
type Tracked = Socket & { _httpMessage?: ServerResponse | null; parser?: { incoming?: IncomingMessage | null } | null };

/** The body of a request already answered is still arriving (Node reads and drops it): the client has its answer. */
const answeredBodyArriving = (socket: Tracked): boolean => {
  const incoming = socket.parser?.incoming;
  return !!incoming && !incoming.complete;
};

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
  private readonly sockets = new Set<Tracked>();
  private lingering = 0;
  private isClosing = false;
  private drained?: () => void;
  onRefused?: RefusalListener;

  constructor(private readonly limits: ConnectionLimits) {}

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
  }

  private admit(socket: Tracked): boolean {
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
    socket.end(REFUSALS[reason]);
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
      const res = socket._httpMessage;
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
        const res = socket._httpMessage;
        if (res && !res.headersSent && socket.writable) {
          markTransportRefusal(res.req, ApiErrorCode.ServiceUnavailable);
          this.answerAndClose(socket, SERVICE_UNAVAILABLE);
        } else if (!res && socket.writable && socket.bytesRead > 0 && !answeredBodyArriving(socket)) {
          this.answerAndClose(socket, SHUTTING_DOWN);
        } else socket.destroy();
      }
    }, this.limits.shutdownGraceMs);
    timer.unref();
    return done.finally(() => clearTimeout(timer));
  }

  private answerAndClose(socket: Socket, raw: string): void {
    socket.end(raw);
    socket.destroySoon();
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
