// Size limits of the API contract that clients check before they send (ksctl, the PKCS#11 module's KS_MAX_MESSAGE):
// no runtime dependency, so a client imports `@keyserver/api-contract/limits` without zod.

/** Largest message a message sign order carries, in bytes once decoded (PureEdDSA signs it whole, in one HSM call). */
export const MAX_SIGN_MESSAGE_BYTES = 64 * 1024;
