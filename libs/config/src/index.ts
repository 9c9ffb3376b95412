export * from './lib/config';
export * from './lib/redact';
export * from './lib/boot';
