module.exports = {
  displayName: 'entra-emulator',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/tools/entra-emulator',
};
