export * from './lib/pki';
