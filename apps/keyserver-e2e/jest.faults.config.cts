// Fault-injection tests (kill -9, PostgreSQL restart, HSM object loss): real processes like the e2e suite, but
// disruptive (the PostgreSQL restart touches the shared server), so they are not part of `npm test`.
// Run: npm run test:faults  (= jest -c apps/keyserver-e2e/jest.faults.config.cts --runInBand)
module.exports = {
  displayName: 'keyserver-faults',
  preset: '../../jest.preset.js',
  rootDir: __dirname,
  testMatch: ['<rootDir>/src/faults/**/*.fault.ts'],
  testTimeout: 180_000,
  coverageDirectory: '../../coverage/apps/keyserver-faults',
};
