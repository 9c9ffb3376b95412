// The Keyserver's product version is the "version" of the repository's root package.json, its one definition
// (docs/operations.md §9). A named import of that field: esbuild inlines the string alone into the bundle at build
// time, so the built ksctl reads no package.json at runtime (nor does it carry the rest of the root manifest).
// eslint-disable-next-line @nx/enforce-module-boundaries -- the root manifest is no project: it holds the product version
import { version } from '../../../../package.json';

/** The product version this ksctl was built from (the root package.json's, not the workspace package's 0.0.0). */
export const PRODUCT_VERSION: string = version;

/** What `ksctl --version` prints: the product version and the Node.js running it, one line (JSON for --json). */
export function versionText(json: boolean): string {
  const node = process.versions.node;
  return json ? `${JSON.stringify({ version: PRODUCT_VERSION, node })}\n` : `ksctl ${PRODUCT_VERSION} (Node.js ${node})\n`;
}
