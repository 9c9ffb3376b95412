// The product version is the root package.json's "version", its one definition (docs/operations.md §9, as ksctl's):
// webpack inlines the value at build time, so the API reads no package.json at runtime.
// eslint-disable-next-line @nx/enforce-module-boundaries -- the root manifest is no project: it holds the product version
import { version } from '../../../../package.json';

/** The Keyserver release this API was built from (`keyserver_info{version}`, the boot log). */
export const PRODUCT_VERSION: string = version;
