export * from './lib/config';
export * from './lib/redact';
