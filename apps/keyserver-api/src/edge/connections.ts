import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { rawProblemResponse } from '@keyserver/errors';
import { ApiErrorCode, markTransportRefusal } from '../common/api-error';

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
const SHUTTING_DOWN = rawProblemResponse(503, ApiErrorCode.ServiceUnavailable, 'Service Unavailable');

/**
 * What counts as one client: an IPv4 address (an IPv4-mapped IPv6 one is the IPv4 address), or the /64 of an IPv6
 * address (one subscriber, one host, holds a whole /64: counting single addresses would count nothing).
 */
export function clientKey(address: string | undefined): string {
  if (!address) return 'unknown';
  if (!address.includes(':')) return address;
  const a = address.split('%')[0].toLowerCase();
  if (a.startsWith('::ffff:') && a.includes('.')) return a.slice(7);
  const gap = a.indexOf('::');
  let groups: string[];
  if (gap < 0) groups = a.split(':');
  else {
    const head = gap > 0 ? a.slice(0, gap).split(':') : [];
    const tail = a.slice(gap + 2) ? a.slice(gap + 2).split(':') : [];
    groups = [...head, ...Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail];
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

type Tracked = Socket & { _httpMessage?: ServerResponse | null };

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
  private closing = false;
  private drained?: () => void;
  onRefused?: RefusalListener;

  constructor(private readonly limits: ConnectionLimits) {}

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
    if (this.closing) reason = 'shutdown';
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
      if (this.closing && this.sockets.size === 0) this.drained?.();
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
   * The bounded shutdown: stops accepting, closes at once every connection without a request in flight (idle
   * keep-alive connections, and requests whose header section is still arriving: nothing was routed, a client may
   * retry them elsewhere), answers the requests in flight with `Connection: close`, and after `shutdownGraceMs`
   * answers whatever is still receiving its request 503 service_unavailable (its handler sees the body end and
   * records why) and closes the rest. Resolves once every connection is closed.
   */
  shutdown(server: Server): Promise<void> {
    this.closing = true;
    server.close(() => undefined);
    const done = new Promise<void>((resolve) => {
      this.drained = resolve;
      if (this.sockets.size === 0) resolve();
    });
    for (const socket of [...this.sockets]) {
      const res = socket._httpMessage;
      if (!res) {
        socket.destroy();
        continue;
      }
      if (!res.headersSent) res.shouldKeepAlive = false;
      res.once('finish', () => setImmediate(() => socket.destroySoon()));
    }
    if (this.sockets.size === 0) return Promise.resolve();
    const timer = setTimeout(() => {
      for (const socket of [...this.sockets]) {
        const res = socket._httpMessage;
        if (res && !res.headersSent && socket.writable) {
          markTransportRefusal(res.req, ApiErrorCode.ServiceUnavailable);
          socket.end(SHUTTING_DOWN);
          socket.destroySoon();
          // A client that does not read its answer keeps nothing open.
          setTimeout(() => socket.destroy(), LINGER_MS).unref();
        } else socket.destroy();
      }
    }, this.limits.shutdownGraceMs);
    timer.unref();
    return done.finally(() => clearTimeout(timer));
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
