const path = require('node:path');
const nxPreset = require('@nx/jest/preset').default;

// ESM-only packages (jose, pkijs, openid-client, ...) are compiled to CommonJS for jest by swc.
const esmPackages = [
  'jose',
  'pkijs',
  'asn1js',
  'pvtsutils',
  'pvutils',
  'bytestreamjs',
  'openid-client',
  'oauth4webapi',
  '@noble',
  '@peculiar',
  'oidc-provider',
];

module.exports = {
  ...nxPreset,
  testEnvironment: 'node',
  // Suites start real servers, databases and tokens; on a busy 2-core machine hooks need more than 5 s.
  testTimeout: 30_000,
  transform: {
    '^.+\\.(ts|js|mjs|cjs)$': [
      '@swc/jest',
      {
        jsc: {
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true },
          target: 'es2022',
        },
        module: { type: 'commonjs' },
      },
    ],
  },
  transformIgnorePatterns: [`node_modules/(?!(${esmPackages.join('|')})/)`],
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  reporters: ['default', path.join(__dirname, 'tools/jest/summary-reporter.cjs')],
};
