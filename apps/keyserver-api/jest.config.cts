module.exports = {
  displayName: 'keyserver-api',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/apps/keyserver-api',
};
