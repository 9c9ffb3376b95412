export function pkcs11Signer(): string {
  return 'pkcs11-signer';
}
