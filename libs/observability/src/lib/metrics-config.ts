import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { z } from 'zod';
import { ConfigError, isLoopbackHost } from '@keyserver/config';

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const unsetWhenEmpty = (v: unknown) => (v === '' ? undefined : v);

/**
 * The metrics listener's variables, spread into each server's config schema (docs/adr/0022-metrics-endpoint.md):
 * METRICS_PORT (unset = no metrics listener), METRICS_HOST (default 127.0.0.1) and METRICS_TOKEN_FILE (a bearer
 * token Prometheus must send; required when METRICS_HOST is not a loopback address).
 */
export const metricsEnvShape = {
  METRICS_HOST: z
    .string()
    .default('127.0.0.1')
    .refine((v) => /^[A-Za-z0-9.:-]+$/.test(v) && (isIP(v) !== 0 || HOSTNAME.test(v)), { message: 'must be an IP address (no zone, no brackets) or a host name' }),
  METRICS_PORT: z.preprocess(unsetWhenEmpty, z.coerce.number().int().min(0).max(65535).optional()),
  METRICS_TOKEN_FILE: z.preprocess(unsetWhenEmpty, z.string().min(1).optional()),
};

/** The metrics listener of one server; undefined when METRICS_PORT is unset. */
export interface MetricsConfig {
  host: string;
  port: number;
  /** Bearer token a scrape must present; undefined = none asked (loopback only). */
  token?: string;
}

/** A token Prometheus sends as `Authorization: Bearer <token>`: 32 to 512 visible ASCII characters. */
const TOKEN = /^[\x21-\x7e]{32,512}$/;

/** Checks the metrics variables as a whole; one ConfigError line naming the variable otherwise. */
export function metricsConfig(raw: { METRICS_HOST: string; METRICS_PORT?: number; METRICS_TOKEN_FILE?: string }): MetricsConfig | undefined {
  if (raw.METRICS_PORT === undefined) return undefined;
  let token: string | undefined;
  if (raw.METRICS_TOKEN_FILE !== undefined) {
    if (!existsSync(raw.METRICS_TOKEN_FILE)) throw new ConfigError('METRICS_TOKEN_FILE', `no such file: ${raw.METRICS_TOKEN_FILE}`);
    token = readFileSync(raw.METRICS_TOKEN_FILE, 'utf8').trim();
    if (!TOKEN.test(token)) throw new ConfigError('METRICS_TOKEN_FILE', 'the file must hold one token of 32 to 512 visible ASCII characters');
  } else if (!isLoopbackHost(raw.METRICS_HOST)) {
    // Deny by default: metrics name keys, routes and load; off the loopback interface only with a token.
    throw new ConfigError('METRICS_TOKEN_FILE', 'is required when METRICS_HOST is not a loopback address');
  }
  return { host: raw.METRICS_HOST, port: raw.METRICS_PORT, token };
}
