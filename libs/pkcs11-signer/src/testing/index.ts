// Test helpers of the HSM layer (`@keyserver/pkcs11-signer/testing`); never imported by production code.
export { createTempToken, SOFTHSM_MODULE, type TempToken } from './temp-token';
