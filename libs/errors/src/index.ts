export * from './lib/keyserver-error';
