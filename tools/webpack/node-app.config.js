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
    // Only the exports a bundle uses: a named import of one field of a JSON file (the root package.json's version,
    // @keyserver/api-contract/version) then inlines that field, not the whole manifest. Nothing is minified.
    optimization: { usedExports: true },
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
