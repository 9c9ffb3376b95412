export * from './lib/pkcs11-signer';
