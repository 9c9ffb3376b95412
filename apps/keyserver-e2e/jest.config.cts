// End-to-end tests: real processes (the built apps, started with the same commands as the images),
// the real PostgreSQL, a SoftHSM token in a temp dir and the Entra emulator. Run serially.
module.exports = {
  displayName: 'keyserver-e2e',
  preset: '../../jest.preset.js',
  testTimeout: 120_000,
  coverageDirectory: '../../coverage/apps/keyserver-e2e',
};
