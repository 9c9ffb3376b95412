export * from './lib/hsm-signer';
export * from './lib/pki-error';
export * from './lib/der';
export * from './lib/sign';
export * from './lib/certificates';
export * from './lib/csr';
export * from './lib/cms';
export * from './lib/crl';
