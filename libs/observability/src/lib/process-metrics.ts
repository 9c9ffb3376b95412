import { collectDefaultMetrics, type Registry } from 'prom-client';

/** prom-client defaults that are gauges named like counters (`promtool check metrics` refuses them). */
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/**
 * prom-client's process and Node metrics (CPU, memory, event-loop lag, GC, handles) without the three gauges it
 * names `_total`, so the whole exposition passes promtool's lint; `nodejs_active_handles` etc. carry the same
 * numbers by type.
 */
export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name);
}
