export * from './lib/data-access';
