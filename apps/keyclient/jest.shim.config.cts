// TEMPORARY (keyclient engineer): maps @keyserver/data-access to a shim until the lib's index exports the BFF repository.
const base = require('./jest.config.cts');
module.exports = { ...base, moduleNameMapper: { '^@keyserver/data-access$': '/tmp/kc-shim/data-access.ts' } };
