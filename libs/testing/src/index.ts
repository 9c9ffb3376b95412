export * from './lib/platform';
export * from './lib/test-database';
