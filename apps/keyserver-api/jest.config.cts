module.exports = {
  displayName: 'keyserver-api',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/apps/keyserver-api',
  // The medium tier's HSM-backed services sign on throwaway SoftHSM tokens (@keyserver/pkcs11-signer/testing):
  // SoftHSM reads SOFTHSM2_CONF from the real process environment, so the token directory is set up before the workers.
  globalSetup: '<rootDir>/../../libs/pkcs11-signer/jest.softhsm-setup.cjs',
  globalTeardown: '<rootDir>/../../libs/pkcs11-signer/jest.softhsm-teardown.cjs',
};
