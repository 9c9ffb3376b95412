// The Keyserver's product version is the "version" of the repository's root package.json, its one definition
// (docs/operations.md §9), shared by the API (`keyserver_info{version}`, the boot log) and ksctl (`--version`). A
// named import of that one field: the bundlers inline the string at build time (esbuild for ksctl; webpack with
// usedExports for the API), so no build reads a package.json at runtime nor carries the rest of the root manifest.
// eslint-disable-next-line @nx/enforce-module-boundaries -- the root manifest is no project: it holds the product version
import { version } from '../../../../package.json';

/** The Keyserver release this build comes from (the root package.json's version, not a workspace package's 0.0.0). */
export const PRODUCT_VERSION: string = version;
