import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PRODUCT_VERSION } from '@keyserver/api-contract/version';
import { versionText } from './version';

const repoRoot = join(__dirname, '..', '..', '..', '..');
/** The product version's one definition (docs/operations.md §9), read from the file itself. */
const rootVersion = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

/** The built ksctl run the way `npx ksctl` runs it: the launcher rebuilds dist/.../main.js first when it is stale. */
function ksctl(...args: string[]) {
  return spawnSync(process.execPath, [join(repoRoot, 'tools', 'keyserver-cli', 'bin', 'ksctl.cjs'), ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { PATH: process.env['PATH'] ?? '' },
    timeout: 60_000,
  });
}

describe(versionText.name, () => {
  it('is the product version of the root package.json, a real release number and not the 0.0.0 placeholder', () => {
    expect(rootVersion).toMatch(/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
    expect(rootVersion).not.toBe('0.0.0');
    expect(PRODUCT_VERSION).toBe(rootVersion);
  });

  it.each([
    ['ok a line for people', false, `ksctl ${rootVersion} (Node.js ${process.versions.node})\n`],
    ['ok one JSON document for scripts', true, `${JSON.stringify({ version: rootVersion, node: process.versions.node })}\n`],
  ])('%s', (_n, json, want) => {
    expect(versionText(json)).toBe(want);
  });

  it.each([
    ['ok --version', ['--version'], `ksctl ${rootVersion} (Node.js ${process.versions.node})\n`],
    ['ok -V --json', ['-V', '--json'], `${JSON.stringify({ version: rootVersion, node: process.versions.node })}\n`],
  ])('is what the built ksctl prints: %s', (_n, args, want) => {
    const r = ksctl(...args);
    expect([r.status, r.stderr, r.stdout]).toEqual([0, '', want]);
  });
});
