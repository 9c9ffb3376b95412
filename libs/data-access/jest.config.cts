module.exports = {
  displayName: 'data-access',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/libs/data-access',
};
