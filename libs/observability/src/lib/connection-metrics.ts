import { Counter, Gauge, type Registry } from 'prom-client';

/** Why a connection gate refused a connection (the gate's `ConnectionRefusal`; every one is a label from the start). */
const REASONS = ['total', 'per_ip', 'shutdown'] as const;

/**
 * The connection gate's metrics, one definition for the API and the keyclient (ADR 0011 addendum "connections", ADR
 * 0043 addendum "the keyclient's transport"): `http_connections_refused_total{reason}`, counted by the returned
 * function, and `http_connections_open`, read from `open()` when scraped.
 */
export function connectionMetrics(registry: Registry, open: () => number): (reason: (typeof REASONS)[number]) => void {
  const refused = new Counter({
    name: 'http_connections_refused_total',
    help: 'Connections refused at accept: over HTTP_MAX_CONNECTIONS (total), over HTTP_MAX_CONNECTIONS_PER_IP (per_ip), or while shutting down.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of REASONS) refused.labels(reason).inc(0);
  new Gauge({
    name: 'http_connections_open',
    help: 'Open HTTP connections of the public listener (admitted ones).',
    registers: [registry],
    collect() {
      this.set(open());
    },
  });
  return (reason) => refused.labels(reason).inc();
}
