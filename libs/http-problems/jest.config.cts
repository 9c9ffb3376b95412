module.exports = {
  displayName: 'http-problems',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/libs/http-problems',
};
