import { z } from 'zod';
import { ConfigError, KEEP_ALIVE_IDLE_MS } from './config';

/**
 * The transport's settings shared by the API and the keyclient, one meaning each (ADR 0011 addenda "the transport"
 * and "connections", ADR 0043 addendum "the keyclient's transport").
 */

/** The transport's timeouts unless configured: Node's request timeout; headers outlast the keep-alive idle time. */
export const HTTP_TIMEOUT_DEFAULTS = { headersTimeoutMs: KEEP_ALIVE_IDLE_MS + 1_000, requestTimeoutMs: 300_000 };
/**
 * Connections per process and per client address unless configured (ADR 0011 addendum "connections"). Behind a
 * load balancer every connection comes from its address: the per-address default leaves room for an Envoy-style
 * upstream pool of 1024 connections, far above what a replica can serve at once; the total stays well under the file
 * descriptors Node raises its limit to.
 */
export const HTTP_CONNECTION_DEFAULTS = { maxConnections: 4096, maxConnectionsPerIp: 1024, shutdownGraceMs: 30_000 };

/** The environment variables of {@link httpEdgeSettings}. */
export const httpEdgeEnvShape = {
  // How long a client may take to send its header section, and its whole request (a slow sender is answered 408
  // request_timeout and closed). Node's request default; headers outlast the keep-alive idle time.
  HTTP_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(HTTP_TIMEOUT_DEFAULTS.headersTimeoutMs),
  HTTP_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1000).max(3_600_000).default(HTTP_TIMEOUT_DEFAULTS.requestTimeoutMs),
  // Open connections per process and per client address (an IPv6 client is its /64); one over either is answered
  // 503 connection_limit_reached / client_connection_limit_reached and closed. The address is the socket's peer
  // (X-Forwarded-For is never believed): behind a load balancer it is the balancer's.
  HTTP_MAX_CONNECTIONS: z.coerce.number().int().min(1).max(1_000_000).default(HTTP_CONNECTION_DEFAULTS.maxConnections),
  HTTP_MAX_CONNECTIONS_PER_IP: z.coerce.number().int().min(1).max(1_000_000).optional(),
  // On SIGTERM: idle and not-yet-routed connections close at once; requests in flight get this long to finish.
  HTTP_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).max(600_000).default(HTTP_CONNECTION_DEFAULTS.shutdownGraceMs),
};

/** Validated transport settings. */
export interface HttpEdgeSettings {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** The connection gate's bounded shutdown (HTTP_SHUTDOWN_GRACE_MS). */
  shutdownGraceMs: number;
}

/** The transport settings from parsed {@link httpEdgeEnvShape} values; throws ConfigError naming the bad variable. */
export function httpEdgeSettings(raw: {
  HTTP_HEADERS_TIMEOUT_MS: number;
  HTTP_REQUEST_TIMEOUT_MS: number;
  HTTP_MAX_CONNECTIONS: number;
  HTTP_MAX_CONNECTIONS_PER_IP?: number;
  HTTP_SHUTDOWN_GRACE_MS: number;
}): HttpEdgeSettings {
  // Node refuses a server whose request timeout is shorter than its headers timeout.
  if (raw.HTTP_REQUEST_TIMEOUT_MS < raw.HTTP_HEADERS_TIMEOUT_MS) throw new ConfigError('HTTP_REQUEST_TIMEOUT_MS', 'must not be shorter than HTTP_HEADERS_TIMEOUT_MS');
  if (raw.HTTP_MAX_CONNECTIONS_PER_IP !== undefined && raw.HTTP_MAX_CONNECTIONS_PER_IP > raw.HTTP_MAX_CONNECTIONS) {
    throw new ConfigError('HTTP_MAX_CONNECTIONS_PER_IP', 'must not be larger than HTTP_MAX_CONNECTIONS');
  }
  return {
    headersTimeoutMs: raw.HTTP_HEADERS_TIMEOUT_MS,
    requestTimeoutMs: raw.HTTP_REQUEST_TIMEOUT_MS,
    maxConnections: raw.HTTP_MAX_CONNECTIONS,
    maxConnectionsPerIp: raw.HTTP_MAX_CONNECTIONS_PER_IP ?? Math.min(HTTP_CONNECTION_DEFAULTS.maxConnectionsPerIp, raw.HTTP_MAX_CONNECTIONS),
    shutdownGraceMs: raw.HTTP_SHUTDOWN_GRACE_MS,
  };
}

/**
 * How often Node checks its header and request timeouts: every 30 s by default, which let a sender overstay its
 * limit by up to 30 s; min(30 s, headers timeout / 2) instead.
 */
export const connectionsCheckingInterval = (headersTimeoutMs: number): number => Math.min(30_000, Math.floor(headersTimeoutMs / 2));

/**
 * Applies the timeouts and the keep-alive idle time to a Node HTTP server that is not listening yet: Node reads
 * `connectionsCheckingInterval` when the server starts listening (the interval is then fixed).
 */
export function applyHttpTimeouts(
  server: { keepAliveTimeout: number; headersTimeout: number; requestTimeout: number; connectionsCheckingInterval?: number; listening: boolean },
  t: { headersTimeoutMs: number; requestTimeoutMs: number },
): void {
  if (server.listening) throw new Error('applyHttpTimeouts: the server is already listening (its timeout check interval is fixed)');
  server.keepAliveTimeout = KEEP_ALIVE_IDLE_MS;
  server.headersTimeout = t.headersTimeoutMs;
  server.requestTimeout = t.requestTimeoutMs;
  server.connectionsCheckingInterval = connectionsCheckingInterval(t.headersTimeoutMs);
}
