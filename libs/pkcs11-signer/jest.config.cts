module.exports = {
  displayName: 'pkcs11-signer',
  preset: '../../jest.preset.js',
  coverageDirectory: '../../coverage/libs/pkcs11-signer',
};
