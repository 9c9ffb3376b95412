import { Gauge, Registry } from 'prom-client';
import type { Pool } from 'pg';
import { collectProcessMetrics } from '@keyserver/observability';

/**
 * The keyclient's metrics registry (docs/adr/0022-metrics-endpoint.md): process metrics, its session database
 * pool read at scrape time, and the HTTP request metrics its middleware adds (`httpMetrics`).
 */
export function keyclientMetrics(db: { readonly pool: Pool }): Registry {
  const registry = new Registry();
  const r = [registry];
  collectProcessMetrics(registry);
  new Gauge({
    name: 'keyserver_db_pool_connections',
    help: "The keyclient's PostgreSQL pool (sessions): connections by state (idle, in_use).",
    labelNames: ['state'] as const,
    registers: r,
    collect() {
      this.set({ state: 'idle' }, db.pool.idleCount);
      this.set({ state: 'in_use' }, db.pool.totalCount - db.pool.idleCount);
    },
  });
  new Gauge({
    name: 'keyserver_db_pool_max',
    help: 'Size limit of the PostgreSQL pool.',
    registers: r,
    collect() {
      this.set(db.pool.options.max ?? 10);
    },
  });
  new Gauge({
    name: 'keyserver_db_pool_waiting',
    help: 'Queries waiting for a pooled PostgreSQL connection.',
    registers: r,
    collect() {
      this.set(db.pool.waitingCount);
    },
  });
  return registry;
}
