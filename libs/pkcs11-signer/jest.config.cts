module.exports = {
  displayName: 'pkcs11-signer',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/libs/pkcs11-signer',
  // SoftHSM reads SOFTHSM2_CONF from the real process environment, which jest's sandbox cannot change:
  // the global setup points it at a throwaway token directory before the workers start.
  globalSetup: '<rootDir>/jest.softhsm-setup.cjs',
  globalTeardown: '<rootDir>/jest.softhsm-teardown.cjs',
  testTimeout: 120000,
};
