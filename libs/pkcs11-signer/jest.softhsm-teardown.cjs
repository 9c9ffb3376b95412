const { rmSync } = require('node:fs');

module.exports = async () => {
  if (process.env.KS_TEST_HSM_DIR) rmSync(process.env.KS_TEST_HSM_DIR, { recursive: true, force: true });
};
