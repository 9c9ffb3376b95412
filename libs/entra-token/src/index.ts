export * from './lib/entra-token';
