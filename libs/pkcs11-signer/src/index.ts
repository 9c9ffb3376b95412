export * from './lib/hsm-error';
export * from './lib/pkcs11-signer';
