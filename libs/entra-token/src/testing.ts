// Test helpers of the token validator (`@keyserver/entra-token/testing`): a real HTTP issuer that signs tokens of
// any shape. Kept out of the production entry point so that no app can ship or call it.
export { startTestIssuer, type TestIssuer, type TestSigningAlg, type TestSigningKey, type TestSignOptions } from './lib/testing/test-issuer';
