import { pkcs11Signer } from './pkcs11-signer';

describe('pkcs11Signer', () => {
  it('should work', () => {
    expect(pkcs11Signer()).toEqual('pkcs11-signer');
  })
})
