module.exports = {
  displayName: 'entra-token',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/libs/entra-token',
};
