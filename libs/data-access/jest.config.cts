const preset = require('../../jest.preset.js');

module.exports = {
  displayName: 'data-access',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/libs/data-access',
  // The WASM schema engine bindings are ESM; compile them like the other ESM-only packages.
  transformIgnorePatterns: preset.transformIgnorePatterns.map((p: string) =>
    p.replace('(?!(', '(?!(@prisma/schema-engine-wasm|'),
  ),
  // Real PostgreSQL races and migrations: give slow shared CI machines room.
  testTimeout: 120_000,
};
