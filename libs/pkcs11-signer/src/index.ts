export { HSM_ERROR_CODES, HsmError, type HsmErrorCode } from './lib/hsm-error';
export { createPkcs11Signer, Pkcs11Signer, type Pkcs11PoolStats, type Pkcs11SignerOptions } from './lib/pkcs11-signer';
