// One webpack configuration for the Node apps (keyserver-api, keyclient): Nx's app plugin, tsc, no minification,
// a generated package.json and source maps. Each app passes its output folder and extra assets.
const { NxAppWebpackPlugin } = require('@nx/webpack/app-plugin');
const { join } = require('path');

/** @param {{ appDir: string, outputPath: string, extraAssets?: unknown[] }} o */
module.exports = function nodeAppConfig(o) {
  return {
    output: {
      path: join(o.appDir, o.outputPath),
      clean: true,
      ...(process.env.NODE_ENV !== 'production' && {
        devtoolModuleFilenameTemplate: '[absolute-resource-path]',
      }),
    },
    plugins: [
      new NxAppWebpackPlugin({
        target: 'node',
        compiler: 'tsc',
        main: './src/main.ts',
        tsConfig: './tsconfig.app.json',
        assets: ['./src/assets', ...(o.extraAssets ?? [])],
        optimization: false,
        outputHashing: 'none',
        generatePackageJson: true,
        sourceMap: true,
      }),
    ],
  };
};
