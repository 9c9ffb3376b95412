import { PRODUCT_VERSION } from '@keyserver/api-contract/version';

/** What `ksctl --version` prints: the product version and the Node.js running it, one line (JSON for --json). */
export function versionText(json: boolean): string {
  const node = process.versions.node;
  return json ? `${JSON.stringify({ version: PRODUCT_VERSION, node })}\n` : `ksctl ${PRODUCT_VERSION} (Node.js ${node})\n`;
}
