export { BoundedLabel, methodLabel, statusLabel } from './lib/bounded-label';
export {
  HTTP_BUCKETS,
  httpMetrics,
  requestMetrics,
  type RequestMetrics,
  routeTemplate,
  setMetricsRoute,
  UNMATCHED_ROUTE,
} from './lib/http-metrics';
export { metricsConfig, type MetricsConfig, metricsEnvShape } from './lib/metrics-config';
export { hasBearer, type MetricsServer, startMetricsServer } from './lib/metrics-server';
export { exitOnSignals } from './lib/shutdown';
export { collectProcessMetrics } from './lib/process-metrics';
export { connectionMetrics } from './lib/connection-metrics';
