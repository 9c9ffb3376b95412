const nodeAppConfig = require('../../tools/webpack/node-app.config');

// The migrations ship with the API (it migrates at boot and on `migrate`).
module.exports = nodeAppConfig({
  appDir: __dirname,
  outputPath: '../../dist/apps/keyserver-api',
  extraAssets: [{ input: '../../libs/data-access/prisma/migrations', glob: '**/*', output: 'migrations' }],
});
