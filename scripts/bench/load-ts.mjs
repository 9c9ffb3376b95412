// Loads a TypeScript bench driver (scripts/bench/*.ts) into this process: esbuild bundles it into `work`, with its
// packages resolved from the repository. libs/testing's platform.ts locates scripts/platform.cjs relative to its own
// directory, so __dirname in the bundle is rewritten to the real one. Shared by scripts/bench.mjs and bench-notify.mjs.
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export async function loadTsBench(root, entry, work) {
  const require = createRequire(join(root, 'package.json'));
  const bundle = join(work, 'run.cjs');
  await require('esbuild').build({
    entryPoints: [join(root, entry)],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    outfile: bundle,
    tsconfig: join(root, 'apps/keyserver-e2e/tsconfig.json'),
    packages: 'external',
    logLevel: 'error',
  });
  writeFileSync(bundle, readFileSync(bundle, 'utf8').replace(/__dirname/g, JSON.stringify(join(root, 'libs/testing/src/lib'))));
  process.env.NODE_PATH = join(root, 'node_modules');
  require('node:module').Module._initPaths();
  return require(bundle);
}
