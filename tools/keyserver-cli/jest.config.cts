module.exports = {
  displayName: 'keyserver-cli',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/tools/keyserver-cli',
};
