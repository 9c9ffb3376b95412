module.exports = {
  displayName: 'audit-chain',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/libs/audit-chain',
};
