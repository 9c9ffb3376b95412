import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '@keyserver/testing';

const read = (file: string) => readFileSync(join(repoRoot, file), 'utf8');
const pkg = JSON.parse(read('package.json')) as { version: string; engines: { node: string; npm: string }; packageManager: string };
const nvmrc = read('.nvmrc').trim();
const [major, minor] = nvmrc.split('.').map(Number);
const npmPin = /^npm@(\d+\.\d+\.\d+)$/.exec(pkg.packageManager)?.[1] ?? '';

/** One Node LTS and one npm everywhere (docs/adr/0013-node-24-lts.md). */
describe('runtime versions', () => {
  it('.nvmrc pins an exact version of an even-numbered (LTS) Node line that engines.node admits', () => {
    expect(nvmrc).toMatch(/^\d+\.\d+\.\d+$/);
    expect(major % 2).toBe(0);
    const engine = /^\^(\d+)\.(\d+)\.(\d+)$/.exec(pkg.engines.node);
    expect(engine).not.toBeNull();
    expect(Number(engine?.[1])).toBe(major);
    expect(minor).toBeGreaterThanOrEqual(Number(engine?.[2]));
  });

  it('packageManager pins an npm that accepts the lockfile (>= 11.7) and engines.npm says so', () => {
    const [npmMajor, npmMinor] = npmPin.split('.').map(Number);
    expect(npmMajor * 1000 + npmMinor).toBeGreaterThanOrEqual(11_007);
    expect(pkg.engines.npm).toBe('>=11.7.0');
    expect((JSON.parse(read('package-lock.json')) as { lockfileVersion: number }).lockfileVersion).toBe(3);
  });

  it('the Dockerfile and docker-compose.yml build on that Node and that npm', () => {
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toContain(`ARG NODE_IMAGE=node:${nvmrc}-bookworm-slim`);
    expect(dockerfile).toContain(`ARG NPM_VERSION=${npmPin}`);
    expect(read('docker-compose.yml')).toContain(`NODE_IMAGE: \${NODE_IMAGE:-node:${nvmrc}-bookworm-slim}`);
  });

  it('the images carry the product version: the Dockerfile\'s KEYSERVER_VERSION (the org.opencontainers.image.version label) is package.json\'s version', () => {
    // The build stage also refuses to build when they differ (scripts/test-containers.sh reads the built labels).
    expect(read('Dockerfile')).toContain(`ARG KEYSERVER_VERSION=${pkg.version}\n`);
  });

  it('the README names the same Node line as the prerequisite', () => {
    expect(read('README.md')).toContain(`Node ${major} LTS`);
  });

  it('these tests run on that Node line (CI installs it when the machine has an older one)', () => {
    expect(process.versions.node.split('.')[0]).toBe(String(major));
  });
});
