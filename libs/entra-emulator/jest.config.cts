module.exports = {
  displayName: 'entra-emulator-core',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/libs/entra-emulator',
};
