module.exports = {
  displayName: 'api-contract',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/libs/api-contract',
};
