const nodeAppConfig = require('../../tools/webpack/node-app.config');

module.exports = nodeAppConfig({ appDir: __dirname, outputPath: '../../dist/apps/keyclient' });
