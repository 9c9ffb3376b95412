export * from './lib/entra-emulator-core';
