module.exports = {
  displayName: 'pki',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/libs/pki',
};
