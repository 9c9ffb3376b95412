module.exports = {
  displayName: 'timestamp-token',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/libs/timestamp-token',
};
