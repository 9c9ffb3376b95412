// Test helpers of the PKI library (`@keyserver/pki/testing`); never imported by production code.
export { buildCsr, csrPem, extensionDer, extensionRequest, generateTestKey, nameDer, type NameEntry, type TestKey, type TestKeyType } from './csr-builder';
