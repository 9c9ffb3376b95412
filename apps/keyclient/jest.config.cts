module.exports = {
  displayName: 'keyclient',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/apps/keyclient',
};
