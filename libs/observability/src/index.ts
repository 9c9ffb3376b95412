export * from './lib/bounded-label';
export * from './lib/http-metrics';
export * from './lib/metrics-config';
export * from './lib/metrics-server';
export * from './lib/shutdown';
export * from './lib/process-metrics';
